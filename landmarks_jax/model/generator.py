"""The SPADE image generator: renders an image from landmark maps and the appearance projected onto them.

It starts from the appearance map resized (nearest) to 1/16 and 1/8 of the image, runs a shared input
convolution and first block on both, averages them at 1/8, and doubles the resolution four times.
"""

import flax.linen as nn
import jax

from landmarks_jax.model import layers
from landmarks_jax.model import resize
from landmarks_jax.model.spade import SPADEResnetBlock


class SPADEGenerator(nn.Module):
  """(seg (B, H, W, K), appearance (B, H, W, C)) -> image (B, H, W, 3), H and W multiples of 16.

  Attributes:
    base_width: the original's ngf (`ngc` in the config).
    spade_hidden: hidden width of every SPADE block.
  """

  base_width: int = 64
  spade_hidden: int = 128

  @nn.compact
  def __call__(self, seg: jax.Array, appearance: jax.Array, train: bool = False) -> jax.Array:
    nf, hidden = self.base_width, self.spade_hidden
    h, w = seg.shape[1:3]
    fc = layers.conv(4 * nf, 3, padding=1, name='fc')
    head = SPADEResnetBlock(4 * nf, hidden, name='head_0')
    coarse = head(fc(resize.resize_nearest(appearance, (h // 16, w // 16))), seg, train)
    fine = head(fc(resize.resize_nearest(appearance, (h // 8, w // 8))), seg, train)

    x = 0.5 * resize.upsample_bilinear(coarse, 2, align_corners=False) + 0.5 * fine
    x = SPADEResnetBlock(4 * nf, hidden, name='G_middle_0')(x, seg, train)
    x = SPADEResnetBlock(4 * nf, hidden, name='G_middle_1')(x, seg, train)
    for name, width in (('up_0', 2 * nf), ('up_1', nf), ('up_4', nf // 2)):
      x = resize.upsample_bilinear(x, 2, align_corners=False)
      x = SPADEResnetBlock(width, hidden, name=name)(x, seg, train)
    return layers.conv(3, 3, padding=1, name='conv_img')(layers.leaky_relu(x))
