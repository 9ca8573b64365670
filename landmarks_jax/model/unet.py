"""The parameterised U-Net behind the shape encoder, appearance encoder, background and mask networks.

Encoder: two 3x3 convolutions (filters, 2 * filters), then `num_downsamples` blocks of a stride-2 and a
stride-1 convolution, the first to 4 * filters and each later one doubling. Decoder: a 1x1 convolution on the
deepest features, then `num_upsamples` blocks (3x3 conv, bilinear x2 with align_corners=True, 3x3 conv), each
fed the previous output plus a 1x1 projection of the matching encoder output; a final 1x1 convolution gives
`decoder_widths[-1]` channels. The output has 2**(num_downsamples - num_upsamples) times less resolution than
the input.
"""

from typing import Sequence

import flax.linen as nn
import jax

from landmarks_jax.model import layers
from landmarks_jax.model import resize


class EncoderBlock(nn.Module):
  """A stride-2 and a stride-1 3x3 convolution, each with instance norm and ReLU."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = layers.ConvNormReLU(self.features, 3, stride=2, padding=1, name='down')(x)
    return layers.ConvNormReLU(self.features, 3, padding=1, name='conv')(x)


class DecoderBlock(nn.Module):
  """3x3 convolution, bilinear x2 upsampling (align_corners=True), 3x3 convolution."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = layers.ConvNormReLU(self.features, 3, padding=1, name='conv_in')(x)
    x = resize.upsample_bilinear(x, 2, align_corners=True)
    return layers.ConvNormReLU(self.features, 3, padding=1, name='conv_out')(x)


class UNet(nn.Module):
  """U-Net on (B, H, W, C_in) giving (B, H', W', decoder_widths[-1]).

  Attributes:
    decoder_widths: widths of the decoder blocks, then the output channels (num_upsamples + 1 values).
    num_downsamples: encoder blocks, each halving the resolution.
    num_upsamples: decoder blocks, each doubling it.
    filters: width of the first convolution; 0 means twice the input channels.
  """

  decoder_widths: Sequence[int]
  num_downsamples: int
  num_upsamples: int
  filters: int = 0

  def first_features_width(self, in_channels: int) -> int:
    """Channels of the first encoder block's output, returned by `__call__(..., return_first=True)`."""
    return 4 * (self.filters or 2 * in_channels)

  @nn.compact
  def __call__(self, x: jax.Array, return_first: bool = False):
    if len(self.decoder_widths) != self.num_upsamples + 1:
      raise ValueError(
        f'decoder_widths needs num_upsamples + 1 = {self.num_upsamples + 1} values, got {tuple(self.decoder_widths)}'
      )
    filters = self.filters or 2 * x.shape[-1]
    x = layers.ConvNormReLU(filters, 3, padding=1, name='stem_0')(x)
    x = layers.ConvNormReLU(2 * filters, 3, padding=1, name='stem_1')(x)
    width = 4 * filters
    encoded = [EncoderBlock(width, name='encoder_0')(x)]
    for i in range(1, self.num_downsamples):
      width *= 2
      encoded.append(EncoderBlock(width, name=f'encoder_{i}')(encoded[-1]))

    x = layers.ConvNormReLU(width, 1, name='bottleneck')(encoded[-1])
    for i in range(self.num_upsamples):
      skip = layers.ConvNormReLU(x.shape[-1], 1, use_norm=False, name=f'skip_{i}')(encoded[-1 - i])
      x = DecoderBlock(self.decoder_widths[i], name=f'decoder_{i}')(x + skip)
    x = layers.conv(self.decoder_widths[-1], 1, name='output')(x)
    if return_first:
      return x, encoded[0]
    return x
