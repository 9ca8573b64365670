"""oneDNN's CPU convolutions against XLA's: forward, input and kernel gradients, which gradients are computed,
the dtypes and strides it takes, and where the networks' conv2d uses it."""

import os
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.cpu import banded_gradient
from landmarks_jax.cpu import kernels
from landmarks_jax.cpu import onednn_convolution
from landmarks_jax.model import convolution

import convolution_cases

FORWARD, INPUT_GRADIENT, KERNEL_GRADIENT = (
  onednn_convolution.target_name(target) for target in onednn_convolution.TARGETS
)
needs_onednn = pytest.mark.skipif(
  not onednn_convolution.supports(jnp.float32), reason='oneDNN convolutions are not built here'
)


def xla_conv(stride, padding):
  return lambda x, w: banded_gradient.xla_conv2d(x, w, stride, padding)


def random_case(shape, kernel, dtype=jnp.float32):
  batch, height, width, channels, features = shape
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, height, width, channels), dtype)
  w = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, channels, features), dtype) * 0.3
  return x, w


def test_the_custom_calls_are_built_on_x86_linux():
  if platform.system() != 'Linux' or platform.machine() != 'x86_64':
    pytest.skip('the oneDNN wheels are built for x86-64 Linux only')
  assert onednn_convolution.supports(jnp.float32)


@needs_onednn
@pytest.mark.parametrize('shape, kernel, padding, stride', convolution_cases.CASES)
def test_forward_and_both_gradients_equal_xla(shape, kernel, padding, stride):
  x, w = random_case(shape, kernel)
  assert onednn_convolution.handles(x, w, stride, padding)
  expected_y, expected_vjp = jax.vjp(xla_conv(stride, padding), x, w)
  y, vjp = jax.vjp(lambda x, w: onednn_convolution.conv2d(x, w, stride, padding), x, w)
  grad_y = jax.random.normal(jax.random.PRNGKey(2), y.shape)
  for got, expected in zip((y, *vjp(grad_y)), (expected_y, *expected_vjp(grad_y))):
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(expected))))


@needs_onednn
def test_a_stride_that_leaves_rows_unread_stays_with_xla():
  x, w = random_case((1, 8, 8, 2, 3), 1)  # 1x1, stride 2, no padding: the last row and column are skipped
  assert not onednn_convolution.handles(x, w, 2, 0)
  jaxpr = str(jax.make_jaxpr(lambda x, w: convolution.conv2d(x, w, 2, 0))(x, w))
  assert FORWARD not in jaxpr and 'conv_general_dilated' in jaxpr


@needs_onednn
def test_float64_stays_with_xla():
  with jax.enable_x64():
    x, w = random_case((1, 8, 8, 2, 3), 3, jnp.float64)
    assert not onednn_convolution.handles(x, w, 1, 1)


@needs_onednn
def test_an_empty_batch_gives_empty_outputs_and_a_zero_kernel_gradient():
  x, w = jnp.zeros((0, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  y, backward = jax.vjp(lambda x, w: onednn_convolution.conv2d(x, w, 1, 1), x, w)
  grad_x, grad_w = backward(jnp.ones_like(y))
  assert y.shape == (0, 8, 8, 4) and grad_x.shape == x.shape
  np.testing.assert_array_equal(grad_w, np.zeros(w.shape))


@needs_onednn
def test_only_the_wanted_gradients_are_computed():
  x, w = random_case((2, 12, 12, 3, 4), 3)
  loss = lambda x, w: jnp.sum(jnp.sin(onednn_convolution.conv2d(x, w, 1, 1)))
  kernel_only = str(jax.make_jaxpr(jax.grad(loss, 1))(x, w))  # an image input, as the networks' first layer
  assert KERNEL_GRADIENT in kernel_only and INPUT_GRADIENT not in kernel_only
  input_only = str(jax.make_jaxpr(jax.grad(loss, 0))(x, w))  # a fixed kernel, as the perceptual loss's VGG
  assert INPUT_GRADIENT in input_only and KERNEL_GRADIENT not in input_only
  expected = jax.grad(lambda x: jnp.sum(jnp.sin(xla_conv(1, 1)(x, w))))(x)
  np.testing.assert_allclose(jax.grad(loss)(x, w), expected, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(expected))))


@needs_onednn
def test_bfloat16_is_close_to_float32():
  if not onednn_convolution.supports(jnp.bfloat16):
    pytest.skip('this processor has no bfloat16 convolutions in oneDNN')
  x, w = random_case((2, 16, 16, 8, 6), 3)
  loss = lambda x, w: jnp.sum(jnp.sin(onednn_convolution.conv2d(x, w, 1, 1).astype(jnp.float32)))
  expected = jax.grad(loss, (0, 1))(x, w)
  got = jax.grad(loss, (0, 1))(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
  for a, b in zip(got, expected):
    assert a.dtype == jnp.bfloat16
    np.testing.assert_allclose(a.astype(jnp.float32), b, rtol=0, atol=2e-2 * float(jnp.max(jnp.abs(b))))


@needs_onednn
def test_runs_on_every_device_under_pmap():
  devices = jax.local_device_count()
  x, w = random_case((2 * devices, 8, 8, 3, 4), 3)
  x = x.reshape(devices, 2, 8, 8, 3)
  got = jax.pmap(lambda x: onednn_convolution.conv2d(x, w, 1, 1))(x)
  expected = jax.vmap(xla_conv(1, 1), (0, None))(x, w)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(expected))))


@needs_onednn
def test_vmap_over_images_and_over_kernels_equals_xla():
  x, w = random_case((6, 8, 8, 3, 4), 3)
  images, kernels = x.reshape(3, 2, 8, 8, 3), jnp.stack([w, 2 * w, -w])
  loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w)))
  for in_axes, args in (((0, None), (images, w)), ((0, 0), (images, kernels)), ((None, 0), (x, kernels))):
    per_group = lambda conv: jax.vmap(jax.value_and_grad(loss(conv), (0, 1)), in_axes)(*args)
    got = per_group(lambda x, w: onednn_convolution.conv2d(x, w, 1, 1))
    expected = per_group(xla_conv(1, 1))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(b))))


@needs_onednn
def test_the_networks_convolve_with_onednn_on_cpus_and_with_xla_when_counting_flops():
  x, w = random_case((1, 8, 8, 2, 3), 3)
  assert FORWARD in str(jax.make_jaxpr(lambda x, w: convolution.conv2d(x, w, 1, 1))(x, w))
  with kernels.plain_xla():
    assert FORWARD not in str(jax.make_jaxpr(lambda x, w: convolution.conv2d(x, w, 1, 1))(x, w))


@needs_onednn
def test_kernel_gradients_from_blocked_layouts_equal_xla():
  # Without AVX-512, kernel gradients read their operands in oneDNN's blocked layouts; ONEDNN_MAX_CPU_ISA=AVX2
  # makes this processor one such, in a process of its own (oneDNN reads it once).
  environ = dict(os.environ, ONEDNN_MAX_CPU_ISA='AVX2', ONEDNN_VERBOSE='1')
  finished = subprocess.run(
    [
      sys.executable,
      '-m',
      'pytest',
      '-q',
      '-s',
      '-n',
      '0',
      '-p',
      'no:cacheprovider',
      f'{__file__}::test_forward_and_both_gradients_equal_xla',
    ],
    env=environ,
    capture_output=True,
    text=True,
    check=False,
    cwd=os.path.dirname(__file__),
  )
  assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
  kernel_gradients = [line for line in finished.stdout.splitlines() if ',backward_weights,' in line]
  assert any('src_f32::blocked:acdb' not in line for line in kernel_gradients), finished.stdout[-3000:]
