"""Winograd's F(4x4, 3x3) in oneDNN's custom calls: its three passes against XLA's, where it applies and where
the convolution stays direct."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.cpu import banded_gradient
from landmarks_jax.cpu import onednn_convolution
from landmarks_jax.model import convolution

needs_onednn = pytest.mark.skipif(
  not onednn_convolution.supports(jnp.float32), reason='oneDNN convolutions are not built here'
)

# Its rounding is about 1e-5 of the output's scale (measured at the step's shapes); ten times that as the bound.
TOLERANCE = 1e-4


def three_passes(x, w, grad_y, stride, padding, winograd):
  """Forward pass, input gradient and kernel gradient by the custom calls, Winograd allowed or not."""
  call = onednn_convolution._call  # pylint: disable=protected-access
  y = call('forward', grad_y.shape, x, w, stride, padding, winograd)
  grad_x = call('input_gradient', x.shape, grad_y, w, stride, padding, winograd)
  grad_w = call('kernel_gradient', w.shape, x, grad_y, stride, padding, winograd)
  return y, grad_x, grad_w


def case(batch, height, width, channels, features, stride=1, padding=1, dtype=jnp.float32):
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, height, width, channels), dtype)
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, channels, features), dtype) * 0.1
  out = onednn_convolution.output_shape(x.shape, w.shape, stride, padding)
  grad_y = jax.random.normal(jax.random.PRNGKey(2), out, dtype)
  return x, w, grad_y


@needs_onednn
@pytest.mark.parametrize(
  'shape',
  [
    (3, 17, 18, 64, 72),  # sizes that are not multiples of the 4x4 tile; a batch convolved in parts
    (2, 16, 16, 96, 64),  # fewer output than input channels
    (1, 21, 16, 64, 65),  # a last row of tiles one pixel high
  ],
)
def test_winograd_passes_equal_xla_and_differ_from_direct(shape):
  x, w, grad_y = case(*shape)
  y, vjp = jax.vjp(lambda x, w: banded_gradient.xla_conv2d(x, w, 1, 1), x, w)
  expected = (y, *vjp(grad_y))
  winograd = three_passes(x, w, grad_y, 1, 1, True)
  direct = three_passes(x, w, grad_y, 1, 1, False)
  for name, got, other, want in zip(('forward', 'input gradient', 'kernel gradient'), winograd, direct, expected):
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE * scale, err_msg=name)
    # Another algorithm ran: the same sums, rounded differently.
    assert not np.array_equal(np.asarray(got), np.asarray(other)), name


@needs_onednn
@pytest.mark.parametrize(
  'shape, stride, padding, dtype',
  [
    ((2, 16, 16, 32, 64), 1, 1, jnp.float32),  # too few input channels
    ((2, 16, 16, 64, 3), 1, 1, jnp.float32),  # too few output channels (an RGB output)
    ((2, 16, 8, 64, 64), 1, 1, jnp.float32),  # too narrow an image
    ((2, 16, 16, 64, 64), 2, 1, jnp.float32),  # stride 2
    ((2, 16, 16, 64, 64), 1, 0, jnp.float32),  # no padding
    ((2, 16, 16, 64, 64), 1, 1, jnp.bfloat16),  # bfloat16
  ],
)
def test_other_convolutions_stay_direct(shape, stride, padding, dtype):
  if not onednn_convolution.supports(dtype):
    pytest.skip(f'oneDNN does not convolve {jnp.dtype(dtype).name} here')
  x, w, grad_y = case(*shape, stride=stride, padding=padding, dtype=dtype)
  for allowed, direct in zip(
    three_passes(x, w, grad_y, stride, padding, True), three_passes(x, w, grad_y, stride, padding, False)
  ):
    np.testing.assert_array_equal(np.asarray(allowed, np.float32), np.asarray(direct, np.float32))


@needs_onednn
def test_winograd_under_vmap_with_a_kernel_per_group():
  x, w, grad_y = case(4, 16, 17, 64, 64)
  kernels = jnp.stack([w, -0.5 * w])
  images = jnp.stack([x, x[::-1]])
  got = jax.vmap(lambda x, w: onednn_convolution.conv2d(x, w, 1, 1))(images, kernels)
  want = jax.vmap(lambda x, w: banded_gradient.xla_conv2d(x, w, 1, 1))(images, kernels)
  np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE * float(jnp.max(jnp.abs(want))))


@needs_onednn
def test_the_networks_convolutions_ask_for_winograd():
  x, w, _ = case(1, 16, 16, 64, 64)
  assert "('winograd', True)" in str(jax.make_jaxpr(lambda x, w: convolution.conv2d(x, w, 1, 1))(x, w))
