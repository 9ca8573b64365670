"""oneDNN's convolutions on CPUs, called by XLA as custom calls, with their own gradients.

oneDNN (Intel's library, which PyTorch uses) runs the networks' convolutions, forward and backward, faster than
XLA:CPU in float32, and in bfloat16 uses the processor's AMX units where it has them (docs/benchmarks.md has
the figures). The custom calls are
compiled at install time from `native/onednn_convolution.cc` against the `onednn-cpu-gomp` wheel's library,
which is loaded here when first needed. Each call splits its batch into parts that oneDNN convolves on one
thread each, on XLA's own intra-op threads, so that convolutions and XLA's other work share the cores rather
than contend for them. Where that library or the compiled calls are missing, or where a dtype is not supported by
the processor, convolutions stay XLA's (`kernels.py`).

In float32, 3x3 convolutions at stride 1 with padding 1, 64 channels or more in and out and images of 16 x 16
or more run by Winograd's F(4x4, 3x3) (`native/winograd.cc`) on processors with AVX2, all three passes: 36
products a channel pair for each 4x4 output tile where the direct convolution takes 144. Its rounding differs
from the direct convolution's by about 1e-5 of the output's scale (PyTorch's own GPU convolutions, in TF32 by
default, differ by 1e-3). docs/benchmarks.md has its speed and how the thresholds were chosen.
"""

import ctypes
import functools
import importlib.metadata
import logging

import jax
import jax.numpy as jnp
import numpy as np

from landmarks_jax.cpu import native_calls

LIBRARY_DISTRIBUTION = 'onednn-cpu-gomp'
EXTENSION_MODULE = 'landmarks_jax.cpu._onednn_ffi'
# Custom-call targets, by pass, and the symbols of native/onednn_convolution.cc that implement them.
TARGETS = {
  'forward': 'LandmarksOnednnConvForward',
  'input_gradient': 'LandmarksOnednnConvInputGradient',
  'kernel_gradient': 'LandmarksOnednnConvKernelGradient',
}


def _load_onednn() -> None:
  """Loads oneDNN, its symbols global, for the compiled custom calls to find."""
  try:
    files = importlib.metadata.distribution(LIBRARY_DISTRIBUTION).files or []
  except importlib.metadata.PackageNotFoundError as error:
    raise OSError(f'the {LIBRARY_DISTRIBUTION} package is not installed') from error
  library = next((f for f in files if f.name.startswith('libdnnl.so')), None)
  if library is None:
    raise OSError(f'the {LIBRARY_DISTRIBUTION} package has no libdnnl.so')
  ctypes.CDLL(str(library.locate()), mode=ctypes.RTLD_GLOBAL)


@functools.cache
def _registered() -> bool:
  """Whether the custom calls are loaded and registered with XLA (once per process)."""
  return native_calls.register(
    EXTENSION_MODULE,
    {target_name(t): symbol for t, symbol in TARGETS.items()},
    'oneDNN convolutions unavailable, XLA convolves instead',
    preload=_load_onednn,
  )


def target_name(target: str) -> str:
  """The custom-call target of a pass (a key of TARGETS)."""
  return f'landmarks_jax_onednn_conv_{target}'


@functools.cache
def supports(dtype) -> bool:
  """Whether oneDNN convolves this dtype here: the calls are registered, and a tiny convolution runs (bfloat16
  needs AVX-512 or AMX)."""
  if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)) or not _registered():
    return False
  try:
    with jax.ensure_compile_time_eval():
      ones = jax.device_put(np.ones((1, 4, 4, 2), dtype), jax.devices('cpu')[0])
      y = _call('forward', (1, 4, 4, 1), ones, ones[0, :3, :3, :, None], 1, 1)
      centre = float(np.asarray(y, np.float32)[0, 1, 1, 0])
  except Exception as error:  # pylint: disable=broad-except
    logging.info('oneDNN does not convolve %s here, XLA does: %s', jnp.dtype(dtype).name, error)
    return False
  return centre == 18.0  # nine taps of two channels of ones


def _call(target, out_shape, first, second, stride, padding, winograd=True):
  out = jax.ShapeDtypeStruct(out_shape, first.dtype)
  # Under vmap, the calls take the batched axes in front (of size 1 where an operand is not batched).
  call = jax.ffi.ffi_call(target_name(target), out, vmap_method='expand_dims')
  return call(first, second, stride=np.int64(stride), padding=np.int64(padding), winograd=bool(winograd))


def output_shape(x_shape, kernel_shape, stride: int, padding: int) -> tuple[int, int, int, int]:
  """The NHWC output shape of torch's Conv2d(stride, padding) (floor division, as XLA's)."""
  batch, height, width, _ = x_shape
  kh, kw, _, features = kernel_shape
  return (batch, (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1, features)


def handles(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> bool:
  """Whether `conv2d` below takes this convolution: a dtype oneDNN convolves here, and every input row and
  column read (a stride that skips the last ones leaves oneDNN a negative right padding)."""
  if x.ndim != 4 or kernel.ndim != 4 or x.dtype != kernel.dtype or not supports(x.dtype):
    return False
  _, out_h, out_w, _ = output_shape(x.shape, kernel.shape, stride, padding)
  return all(
    (out - 1) * stride + k - size - padding >= 0
    for out, k, size in ((out_h, kernel.shape[0], x.shape[1]), (out_w, kernel.shape[1], x.shape[2]))
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """torch's Conv2d(stride, padding) on NHWC `x` with an HWIO `kernel`, by oneDNN (check `handles` first)."""
  return _call('forward', output_shape(x.shape, kernel.shape, stride, padding), x, kernel, stride, padding)


def _forward(x, kernel, stride, padding):
  # Symbolic zeros say which inputs are differentiated: an image that is not (the networks' inputs) gets no
  # input gradient and a fixed kernel (the perceptual loss's VGG) no kernel gradient. The backward pass is told
  # by a missing (None) residual.
  y = conv2d(x.value, kernel.value, stride, padding)
  return y, (x.value, kernel.value, x.value if x.perturbed else None, kernel.value if kernel.perturbed else None)


def _backward(stride, padding, saved, grad_y):
  x, kernel, input_gradient_wanted, kernel_gradient_wanted = saved
  if isinstance(grad_y, jax.custom_derivatives.SymbolicZero):
    return None, None
  grad_y = grad_y.astype(x.dtype)
  grad_x = None if input_gradient_wanted is None else _call('input_gradient', x.shape, grad_y, kernel, stride, padding)
  grad_kernel = (
    None if kernel_gradient_wanted is None else _call('kernel_gradient', kernel.shape, x, grad_y, stride, padding)
  )
  return grad_x, grad_kernel


conv2d.defvjp(_forward, _backward, symbolic_zeros=True)
