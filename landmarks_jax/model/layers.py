"""Convolution and normalisation building blocks shared by the networks.

Convolutions pad symmetrically as torch's `Conv2d(padding=p)` does, and start from the original's training
initialisation: Xavier-uniform kernels and biases of 0.1. Parameters are float32; a convolution computes in its
input's dtype, so a network whose input is cast to bfloat16 runs its convolutions in bfloat16 (`compute_dtype`)
while its parameters, the optimizer and the statistics stay float32. Instance norm takes its statistics in at
least float32 whatever the input.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from landmarks_jax.model import convolution

INSTANCE_NORM_EPS = 1e-5
BIAS_INIT_VALUE = 0.1

xavier_uniform = nn.initializers.xavier_uniform()
bias_init = nn.initializers.constant(BIAS_INIT_VALUE)


class Conv(nn.Module):
  """A 2D convolution laid out like torch's Conv2d(kernel, stride, padding), in its input's dtype.

  Its variables are those of `flax.linen.Conv`: 'kernel' (k, k, in, out) and 'bias' (out,), float32.
  """

  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', xavier_uniform, (self.kernel, self.kernel, x.shape[-1], self.features), jnp.float32)
    p = self.padding
    y = convolution.conv2d(x, kernel.astype(x.dtype), self.stride, p)
    if self.use_bias:
      y = y + self.param('bias', bias_init, (self.features,), jnp.float32).astype(y.dtype)
    return y


def conv(
  features: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = True, name: str | None = None
) -> Conv:
  """A 2D convolution laid out like torch's Conv2d(kernel, stride, padding)."""
  return Conv(features, kernel, stride, padding, use_bias, name=name)


def instance_norm(x: jax.Array) -> jax.Array:
  """Instance norm of (B, H, W, C) without affine parameters: biased variance, eps 1e-5, in x's dtype, its
  statistics in at least float32."""
  x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + INSTANCE_NORM_EPS)).astype(x.dtype)


def leaky_relu(x: jax.Array) -> jax.Array:
  """Leaky ReLU with slope 0.2, as the generator and discriminator use."""
  return nn.leaky_relu(x, 0.2)


class ConvNormReLU(nn.Module):
  """Convolution, optional instance norm, ReLU."""

  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  use_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = conv(self.features, self.kernel, self.stride, self.padding, name='conv')(x)
    if self.use_norm:
      x = instance_norm(x)
    return nn.relu(x)
