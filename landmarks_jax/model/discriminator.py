"""The multiscale PatchGAN discriminator.

Each scale is a stack of 4x4 convolutions padded by 2: a strided one with leaky ReLU, `n_layers - 1` strided
ones with instance norm, one more at stride 1 with instance norm, and a stride-1 convolution to one channel.
Scale 0 sees the image, scale i the image average-pooled i times (3x3, stride 2, padding 1, padding excluded).
"""

from typing import Sequence

import flax.linen as nn
import jax

from landmarks_jax.model import layers
from landmarks_jax.model import resize

MAX_WIDTH = 512


class PatchDiscriminator(nn.Module):
  """(B, H, W, C) image -> (B, H', W', 1) patch logits."""

  base_width: int = 64
  n_layers: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = layers.leaky_relu(layers.conv(self.base_width, 4, stride=2, padding=2, name='conv_0')(x))
    width = self.base_width
    for i in range(1, self.n_layers + 1):
      width = min(2 * width, MAX_WIDTH)
      stride = 2 if i < self.n_layers else 1
      x = layers.conv(width, 4, stride=stride, padding=2, name=f'conv_{i}')(x)
      x = layers.leaky_relu(layers.instance_norm(x))
    return layers.conv(1, 4, padding=2, name=f'conv_{self.n_layers + 1}')(x)


class MultiscaleDiscriminator(nn.Module):
  """Runs `num_scales` patch discriminators on successively pooled images; returns their logits (in the
  input's dtype, computed in compute_dtype)."""

  base_width: int = 64
  n_layers: int = 3
  num_scales: int = 2
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, x: jax.Array) -> Sequence[jax.Array]:
    output_dtype = x.dtype
    x = x.astype(self.compute_dtype) if self.compute_dtype != 'float32' else x
    outputs = []
    for i in range(self.num_scales):
      outputs.append(PatchDiscriminator(self.base_width, self.n_layers, name=f'scale_{i}')(x).astype(output_dtype))
      if i + 1 < self.num_scales:
        x = resize.avg_pool_3x3_s2_exclude_pad(x)
    return outputs
