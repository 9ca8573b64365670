"""SPADE normalisation and the spectral-norm ResNet block built on it.

SPADE normalises features with a parameter-free instance norm, then scales and shifts them with maps predicted
from the landmark maps, resized bilinearly (align_corners=False, no antialiasing) to the features' size.
"""

import flax.linen as nn
import jax

from landmarks_jax.model import layers
from landmarks_jax.model import resize
from landmarks_jax.model import spectral_norm


class SPADE(nn.Module):
  """out = instance_norm(x) * (1 + gamma(seg)) + beta(seg), on (B, H, W, C) features."""

  hidden: int = 128

  @nn.compact
  def __call__(self, x: jax.Array, seg: jax.Array) -> jax.Array:
    normalized = layers.instance_norm(x)
    seg = resize.resize_bilinear(seg, x.shape[1:3], align_corners=False)
    actv = nn.relu(layers.conv(self.hidden, 3, padding=1, name='mlp_shared')(seg))
    gamma = layers.conv(x.shape[-1], 3, padding=1, name='mlp_gamma')(actv)
    beta = layers.conv(x.shape[-1], 3, padding=1, name='mlp_beta')(actv)
    return normalized * (1.0 + gamma) + beta


class SPADEResnetBlock(nn.Module):
  """Two SPADE-normalised spectral-norm 3x3 convolutions plus a (learned when widths differ) shortcut."""

  features: int
  hidden: int = 128

  @nn.compact
  def __call__(self, x: jax.Array, seg: jax.Array, train: bool = False) -> jax.Array:
    fin = x.shape[-1]
    middle = min(fin, self.features)
    if fin != self.features:
      shortcut = SPADE(self.hidden, name='norm_s')(x, seg)
      shortcut = spectral_norm.SpectralConv(self.features, 1, use_bias=False, name='conv_s')(shortcut, train)
    else:
      shortcut = x
    dx = layers.leaky_relu(SPADE(self.hidden, name='norm_0')(x, seg))
    dx = spectral_norm.SpectralConv(middle, 3, padding=1, name='conv_0')(dx, train)
    dx = layers.leaky_relu(SPADE(self.hidden, name='norm_1')(dx, seg))
    dx = spectral_norm.SpectralConv(self.features, 3, padding=1, name='conv_1')(dx, train)
    return shortcut + dx
