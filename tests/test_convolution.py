"""The CPU's banded kernel gradient (where oneDNN is not built) against XLA's own, and the rule that chooses it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.bench import step_benchmark
from landmarks_jax.cpu import banded_gradient
from landmarks_jax.cpu import kernels
from landmarks_jax.cpu import onednn_convolution
from landmarks_jax.model import convolution

import convolution_cases


@pytest.fixture
def without_onednn(monkeypatch):
  """Where oneDNN is built, the CPU kernels take it before the banded gradient; these tests are about the latter."""
  monkeypatch.setattr(onednn_convolution, 'handles', lambda *args: False)


@pytest.mark.parametrize('shape, kernel, padding, stride', convolution_cases.CASES)
def test_kernel_gradient_equals_xla(shape, kernel, padding, stride):
  batch, height, width, channels, features = shape
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, height, width, channels))
  w = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, channels, features))
  y, vjp = jax.vjp(lambda w: banded_gradient.xla_conv2d(x, w, stride, padding), w)
  grad_y = jax.random.normal(jax.random.PRNGKey(2), y.shape)
  (expected,) = vjp(grad_y)
  banded = banded_gradient.kernel_gradient(x, grad_y, (kernel, kernel), padding, stride)
  np.testing.assert_allclose(banded, expected, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(expected))))


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.usefixtures('without_onednn')
def test_conv2d_takes_the_banded_gradient_above_the_thresholds_and_matches_xla(monkeypatch, stride):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 32 * stride, 32 * stride, 4))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 4, 5))
  loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w)))
  expected = jax.grad(loss(lambda x, w: banded_gradient.xla_conv2d(x, w, stride, 1)), (0, 1))(x, w)
  monkeypatch.setattr(banded_gradient, 'MIN_BANDED_FLOPS', 0)
  assert banded_gradient.pays(x.shape, w.shape, 1, stride)
  banded_loss = loss(lambda x, w: kernels.conv2d(x, w, stride, 1))
  assert 'scan' in str(jax.make_jaxpr(jax.grad(banded_loss, 1))(x, w))  # the banded loop, not XLA's gradient
  got = jax.grad(banded_loss, (0, 1))(x, w)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(b))))
  model_loss = loss(lambda x, w: convolution.conv2d(x, w, stride, 1))
  assert 'scan' in str(jax.make_jaxpr(jax.grad(model_loss, 1))(x, w))  # the model's convolution takes it
  with kernels.plain_xla():
    assert 'scan' not in str(jax.make_jaxpr(jax.grad(model_loss, 1))(x, w))


def test_the_rule_leaves_small_images_and_small_products_to_xla():
  assert banded_gradient.pays((8, 128, 128, 64), (3, 3, 64, 64), 1)  # the BBC Pose generator's
  assert banded_gradient.pays((8, 64, 64, 216), (3, 3, 216, 432), 1, stride=2)  # a U-Net's, 32 x 32 out
  assert not banded_gradient.pays((8, 16, 16, 256), (3, 3, 256, 256), 1)  # 16 x 16 outputs
  assert not banded_gradient.pays((8, 32, 32, 256), (3, 3, 256, 512), 1, stride=2)  # 16 x 16 outputs
  assert not banded_gradient.pays((8, 64, 64, 8), (3, 3, 8, 8), 1)  # 38 MFLOP


def test_bands_divide_the_rows_and_fit_the_budget():
  assert banded_gradient.band_rows(128, 128, 576) == 16  # 16 x 128 x 576 float32 = 4.5 MiB
  assert banded_gradient.band_rows(13, 9, 28) == 13  # all rows fit, and 13 divides only by 1 and 13
  assert banded_gradient.band_rows(127, 4096, 4096) == 1  # nothing fits: one row at a time


@pytest.mark.usefixtures('without_onednn')
def test_the_benchmark_counts_every_band_of_the_gradient(monkeypatch):
  monkeypatch.setattr(banded_gradient, 'MIN_BANDED_FLOPS', 0)
  batch, size, channels, features = 2, 32, 8, 16
  x = jnp.ones((batch, size, size, channels))
  w = jnp.ones((3, 3, channels, features))
  value_and_grad = jax.value_and_grad(lambda w, x: jnp.sum(convolution.conv2d(x, w, 1, 1)))
  figures, _ = step_benchmark.compile_and_time(value_and_grad, (w, x), num_runs=1)
  forward = 2 * batch * size * size * channels * features * 9  # padded taps count as multiply-adds
  # The forward convolution and its kernel gradient (the input gradient is not asked for).
  assert figures['gflop'] == pytest.approx(2 * forward / 1e9, rel=0.05)


@pytest.mark.usefixtures('without_onednn')
def test_a_kernel_that_is_not_differentiated_gets_no_kernel_gradient(monkeypatch):
  monkeypatch.setattr(banded_gradient, 'MIN_BANDED_FLOPS', 0)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 4))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 4, 5))
  input_only = jax.grad(lambda x: jnp.sum(jnp.sin(kernels.conv2d(x, w, 1, 1))))  # a fixed kernel, as VGG's
  assert 'scan' not in str(jax.make_jaxpr(input_only)(x))
  expected = jax.grad(lambda x: jnp.sum(jnp.sin(banded_gradient.xla_conv2d(x, w, 1, 1))))(x)
  np.testing.assert_allclose(input_only(x), expected, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(expected))))
