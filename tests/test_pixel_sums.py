"""Pixel sums as products with ones, and the bias and instance norm gradients built on them, against the plain
reductions and JAX's own gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.model import bias
from landmarks_jax.model import layers
from landmarks_jax.model import pixel_sums

SHAPE = (3, 9, 7, 5)


def _activations(seed=0, scale=3.0, offset=1.0):
  return jax.random.normal(jax.random.PRNGKey(seed), SHAPE) * scale + offset


def _plain_instance_norm(x):
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  centred = x - mean
  return centred * jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=(1, 2), keepdims=True) + 1e-5)


def test_sums_equal_float64_sums():
  x = _activations()
  expected = np.asarray(x, np.float64)
  np.testing.assert_allclose(pixel_sums.over_batch(x), expected.sum(axis=(0, 1, 2)), rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(pixel_sums.per_image(x), expected.sum(axis=(1, 2)), rtol=1e-6, atol=1e-5)


def test_bfloat16_sums_accumulate_in_float32():
  x = jnp.full((1, 64, 64, 2), 1.0, jnp.bfloat16)  # 4096 ones: bfloat16 alone would stall at 256
  assert pixel_sums.over_batch(x).dtype == jnp.float32
  np.testing.assert_array_equal(pixel_sums.per_image(x), np.full((1, 2), 4096.0))


def test_cpu_sums_are_products_not_reductions():
  lowered = jax.jit(pixel_sums.per_image).lower(_activations()).as_text()
  assert 'dot_general' in lowered and 'reduce' not in lowered


def test_bias_gradient_equals_jax_gradient():
  x, weights = _activations(), _activations(seed=1, scale=1.0, offset=0.0)
  b = jnp.arange(SHAPE[-1], dtype=jnp.float32)
  loss = lambda add: lambda x, b: jnp.sum(jnp.sin(add(x, b)) * weights)
  ours = jax.grad(loss(bias.add_bias), (0, 1))(x, b)
  plain = jax.grad(loss(lambda x, b: x + b), (0, 1))(x, b)
  for got, expected in zip(ours, plain):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('seed', [0, 1])
def test_instance_norm_and_its_gradient_equal_the_plain_formula(seed):
  x, weights = _activations(seed), _activations(seed + 10, scale=1.0, offset=0.0)
  np.testing.assert_allclose(layers.instance_norm(x), _plain_instance_norm(x), rtol=1e-5, atol=1e-5)
  loss = lambda norm: lambda x: jnp.sum(jnp.sin(norm(x)) * weights)
  ours = jax.grad(loss(layers.instance_norm))(x)
  plain = jax.grad(loss(_plain_instance_norm))(x)
  np.testing.assert_allclose(ours, plain, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(plain))))


def test_instance_norm_of_bfloat16_keeps_its_dtype_through_the_gradient():
  x = _activations().astype(jnp.bfloat16)
  gradient = jax.grad(lambda x: jnp.sum(layers.instance_norm(x).astype(jnp.float32) ** 2))(x)
  assert layers.instance_norm(x).dtype == jnp.bfloat16 and gradient.dtype == jnp.bfloat16
  # The output's squares sum to pixels x channels per image, whatever x, so the gradient is zero up to rounding.
  assert float(jnp.max(jnp.abs(gradient.astype(jnp.float32)))) < 0.1
