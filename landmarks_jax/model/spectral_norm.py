"""A spectrally normalised convolution with torch's `spectral_norm` semantics.

The kernel is divided by sigma = u . (W v), W the kernel reshaped to (out, in * kh * kw) in torch's order. The
vectors u, v live in the 'spectral' collection (buffers, not parameters). In training one power iteration
refreshes them first (without gradient); in evaluation the stored vectors are used as they are.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from landmarks_jax.model import convolution
from landmarks_jax.model import layers

NORMALIZE_EPS = 1e-12


def _normalize(v: jax.Array) -> jax.Array:
  return v / jnp.maximum(jnp.linalg.norm(v), NORMALIZE_EPS)


def _random_unit(rng: jax.Array, n: int) -> jax.Array:
  return _normalize(jax.random.normal(rng, (n,), jnp.float32))


class SpectralConv(nn.Module):
  """torch Conv2d(kernel, padding) wrapped in spectral norm, on NHWC inputs."""

  features: int
  kernel: int
  padding: int = 0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    in_features = x.shape[-1]
    kernel = self.param(
      'kernel', layers.xavier_uniform, (self.kernel, self.kernel, in_features, self.features), jnp.float32
    )
    fan = in_features * self.kernel * self.kernel
    u = self.variable('spectral', 'u', lambda: _random_unit(self.make_rng('params'), self.features))
    v = self.variable('spectral', 'v', lambda: _random_unit(self.make_rng('params'), fan))

    # (kh, kw, in, out) -> (out, in, kh, kw) -> (out, in * kh * kw): torch's flattening order.
    matrix = jnp.transpose(kernel, (3, 2, 0, 1)).reshape(self.features, fan)
    precision = jax.lax.Precision.HIGHEST
    u_vec, v_vec = u.value, v.value
    if train and not self.is_initializing():
      frozen = jax.lax.stop_gradient(matrix)
      v_vec = _normalize(jnp.dot(u_vec, frozen, precision=precision))
      u_vec = _normalize(jnp.dot(frozen, v_vec, precision=precision))
      u.value, v.value = u_vec, v_vec
    sigma = jnp.dot(u_vec, jnp.dot(matrix, v_vec, precision=precision), precision=precision)

    p = self.padding
    y = convolution.conv2d(x, (kernel / sigma).astype(x.dtype), 1, p)
    if self.use_bias:
      y = y + self.param('bias', layers.bias_init, (self.features,), jnp.float32).astype(y.dtype)
    return y
