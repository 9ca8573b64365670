"""Convolution and normalisation building blocks shared by the networks.

Convolutions pad symmetrically as torch's `Conv2d(padding=p)` does, and start from the original's training
initialisation: Xavier-uniform kernels and biases of 0.1.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

INSTANCE_NORM_EPS = 1e-5
BIAS_INIT_VALUE = 0.1

xavier_uniform = nn.initializers.xavier_uniform()
bias_init = nn.initializers.constant(BIAS_INIT_VALUE)


def conv(features: int, kernel: int, stride: int = 1, padding: int = 0, use_bias: bool = True,
         name: str | None = None) -> nn.Conv:
  """A 2D convolution laid out like torch's Conv2d(kernel, stride, padding)."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((padding, padding), (padding, padding)), use_bias=use_bias,
                 kernel_init=xavier_uniform, bias_init=bias_init, name=name)


def instance_norm(x: jax.Array) -> jax.Array:
  """Instance norm of (B, H, W, C) without affine parameters: biased variance, eps 1e-5."""
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  centred = x - mean
  var = jnp.mean(jnp.square(centred), axis=(1, 2), keepdims=True)
  return centred * jax.lax.rsqrt(var + INSTANCE_NORM_EPS)


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
