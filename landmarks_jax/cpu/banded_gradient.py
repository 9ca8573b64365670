"""A convolution whose kernel gradient is taken band by band, for CPUs without oneDNN's calls.

XLA:CPU computes a convolution's kernel gradient as one convolution whose window is the whole image, far slower
than its forward convolution; the gradient here is instead a loop over bands of output rows: each band's input
windows (im2col) are laid out in cache and multiplied with the band's output gradient, and the products are
summed; where the output has fewer channels than the input, the two swap roles (`kernel_gradient`). The forward
pass and the input gradient stay XLA's. docs/benchmarks.md ("The banded kernel gradient") has the measurements
behind the rule (`pays`).
"""

import functools

import jax
import jax.numpy as jnp

DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')
# Bytes of one band's im2col: large enough for long matrix products, small enough to stay near the cores.
BAND_BYTES = 8 * 2**20


# Below these sizes XLA's own kernel gradient is as fast or faster (docs/benchmarks.md).
MIN_BANDED_PIXELS = 32 * 32  # output pixels of one image
MIN_BANDED_FLOPS = 5e8  # of the kernel gradient, the whole batch


def pays(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], padding: int, stride: int = 1) -> bool:
  """Whether a convolution of these shapes is faster with the banded kernel gradient."""
  batch, height, width, _ = x_shape
  kh, kw, channels, features = kernel_shape
  out_h, out_w = (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
  pixels = out_h * out_w
  flops = 2 * batch * pixels * kh * kw * channels * features
  return pixels >= MIN_BANDED_PIXELS and flops >= MIN_BANDED_FLOPS


def xla_conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """XLA's own convolution, torch's Conv2d(stride, padding) on NHWC x with an HWIO kernel."""
  return jax.lax.conv_general_dilated(
    x, kernel, (stride, stride), ((padding, padding), (padding, padding)), dimension_numbers=DIMENSIONS
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """XLA's convolution, its kernel gradient taken band by band."""
  return xla_conv2d(x, kernel, stride, padding)


def _forward(x, kernel, stride, padding):
  # With symbolic zeros, x and kernel arrive wrapped, saying whether each is differentiated: a kernel that is
  # not (the perceptual loss's fixed VGG) gets no kernel gradient, told by a missing (None) residual.
  y = xla_conv2d(x.value, kernel.value, stride, padding)
  return y, (x.value, kernel.value, x.value if kernel.perturbed else None)


def _backward(stride, padding, saved, grad_y):
  x, kernel, x_for_kernel_gradient = saved
  if isinstance(grad_y, jax.custom_derivatives.SymbolicZero):
    return None, None
  _, input_vjp = jax.vjp(lambda inputs: xla_conv2d(inputs, kernel, stride, padding), x)
  (grad_x,) = input_vjp(grad_y)
  if x_for_kernel_gradient is None:
    return grad_x, None
  grad_kernel = kernel_gradient(x_for_kernel_gradient, grad_y, kernel.shape[:2], padding, stride)
  return grad_x, grad_kernel.astype(kernel.dtype)


conv2d.defvjp(_forward, _backward, symbolic_zeros=True)


def band_rows(out_height: int, out_width: int, window: int) -> int:
  """Output rows per band: the largest divisor of out_height whose im2col (rows x width x window, float32)
  fits in BAND_BYTES, and at least one."""
  fitting = max(1, BAND_BYTES // (4 * out_width * window))
  return max(rows for rows in range(1, out_height + 1) if out_height % rows == 0 and rows <= fitting)


def kernel_gradient(
  x: jax.Array, grad_y: jax.Array, kernel_size: tuple[int, int], padding: int, stride: int = 1
) -> jax.Array:
  """d(loss)/d(kernel) of a convolution, (kh, kw, in, out), from its input and output gradient.

  With stride 1 and fewer output than input channels, the windows are taken over the output gradient instead
  (fewer channels to lay out, a taller product, so faster): dW[i, j] = sum over input pixels q of outer(x[q],
  g[q + padding - (i, j)]), which is the kernel gradient of an unpadded convolution of the output gradient,
  zero-padded by kh - 1 - padding rows and kw - 1 - padding columns, with x as its output gradient, taps
  reversed.
  """
  kh, kw = kernel_size
  if stride == 1 and grad_y.shape[-1] < x.shape[-1]:
    # lax.pad, since the padding is negative (a crop) where padding > kh - 1.
    margins = ((0, 0, 0), (kh - 1 - padding, kh - 1 - padding, 0), (kw - 1 - padding, kw - 1 - padding, 0), (0, 0, 0))
    extended = jax.lax.pad(grad_y, jnp.zeros((), grad_y.dtype), margins)
    swapped = _banded_kernel_gradient(extended, x, kernel_size, 0, 1)  # (kh, kw, out, in)
    return jnp.swapaxes(swapped[::-1, ::-1], 2, 3)
  return _banded_kernel_gradient(x, grad_y, kernel_size, padding, stride)


def _banded_kernel_gradient(x, grad_y, kernel_size, padding, stride):
  kh, kw = kernel_size
  batch, _, _, channels = x.shape
  _, out_h, out_w, features = grad_y.shape
  window = kh * kw * channels
  rows = band_rows(out_h, out_w, window)
  bands = out_h // rows
  padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  # Band n of image b reads padded rows [n * rows * stride, n * rows * stride + band_height); output row r of
  # the band, tap i, is the band's row r * stride + i.
  band_height = (rows - 1) * stride + kh
  row_index = jnp.arange(bands)[:, None] * rows * stride + jnp.arange(band_height)[None, :]
  x_bands = jnp.moveaxis(padded[:, row_index], 1, 0).reshape(bands * batch, band_height, -1, channels)
  g_bands = jnp.moveaxis(grad_y.reshape(batch, bands, rows, out_w, features), 1, 0)
  g_bands = g_bands.reshape(bands * batch, rows * out_w, features)

  def add_band(total, band):
    x_band, g_band = band
    taps = [
      x_band[i : i + (rows - 1) * stride + 1 : stride, j : j + (out_w - 1) * stride + 1 : stride]
      for i in range(kh)
      for j in range(kw)
    ]
    columns = jnp.concatenate(taps, axis=-1).reshape(rows * out_w, window)
    product = jnp.dot(g_band.T, columns, preferred_element_type=total.dtype)
    return total + product, None

  accumulate = jnp.promote_types(x.dtype, jnp.float32)
  total, _ = jax.lax.scan(add_band, jnp.zeros((features, window), accumulate), (x_bands, g_bands))
  # Columns run (tap i, tap j, input channel), the kernel's HWI order.
  return total.T.reshape(kh, kw, channels, features)
