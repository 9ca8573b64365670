"""VGG feature taps for the perceptual loss: relu1_2, relu2_2, relu3_2 and relu4_2.

Both ImageNet layouts are supported up to conv4_2: VGG19 (the original's; four convolutions in block 3) and
VGG16 (three). Images go in as they are, in [-1, 1], as the original feeds them.
"""

import flax.linen as nn
import jax

from landmarks_jax.model import layers

# Convolutions per block up to conv4_2, and their widths.
BLOCKS = {'vgg19': (2, 2, 4, 2), 'vgg16': (2, 2, 3, 2)}
WIDTHS = (64, 128, 256, 512)
TAPS = ('relu1_2', 'relu2_2', 'relu3_2', 'relu4_2')


def conv_names(layout: str) -> list[str]:
  """Names of the convolutions computed, in order: conv1_1, conv1_2, conv2_1, ..."""
  return [f'conv{b + 1}_{i + 1}' for b, n in enumerate(BLOCKS[layout]) for i in range(n)]


def _max_pool(x: jax.Array) -> jax.Array:
  """2x2 max pool, stride 2, an odd last row or column dropped (torch's MaxPool2d(2)), as a reshape and a
  maximum: XLA fuses that maximum's gradient into its neighbours, where `nn.max_pool`'s (a select-and-scatter)
  becomes index arrays as large as the input. The two split tied maxima differently, but the pools follow ReLUs,
  whose gradient is zero where ties occur (at 0)."""
  b, h, w, c = x.shape
  x = x[:, : h - h % 2, : w - w % 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class VGGFeatures(nn.Module):
  """(B, H, W, 3) -> [relu1_2, relu2_2, relu3_2, relu4_2] feature maps (float32, computed in compute_dtype)."""

  layout: str = 'vgg16'
  compute_dtype: str = 'float32'

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    if self.layout not in BLOCKS:
      raise ValueError(f'Unknown VGG layout {self.layout!r}; use one of {sorted(BLOCKS)}.')
    output_dtype = x.dtype
    x = x.astype(self.compute_dtype) if self.compute_dtype != 'float32' else x
    taps = []
    for block, (count, width) in enumerate(zip(BLOCKS[self.layout], WIDTHS)):
      if block:
        x = _max_pool(x)
      for i in range(count):
        x = nn.relu(layers.conv(width, 3, padding=1, name=f'conv{block + 1}_{i + 1}')(x))
        if i == 1:
          taps.append(x.astype(output_dtype))
    return taps
