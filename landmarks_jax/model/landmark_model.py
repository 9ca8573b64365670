"""The part-factorised landmark model: shape, appearance, generator, and optional foreground/background.

input_a (pose source, colour-jittered) and input_b (appearance source: a warped or another frame of the same
video) go through one shape encoder; input_a's landmarks, rendered as Gaussians, condition the SPADE generator;
input_b's per-part appearance, pooled with its own part maps, is projected onto input_a's Gaussians. With
foreground masks, a mask network on the Gaussians (or, with gaussian_fg_mask, their pixelwise maximum) blends
the generator's foreground with a background U-Net's reconstruction of input_b's unmasked pixels.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from landmarks_jax.model import gaussians
from landmarks_jax.model import resize
from landmarks_jax.model.generator import SPADEGenerator
from landmarks_jax.model.unet import UNet


class LandmarkModel(nn.Module):
  """The generator side of the original's PartFactorizedModel, on NHWC images in [-1, 1].

  `__call__(input_a)` encodes only (with `with_mask`, also input_a's rendered Gaussians and foreground mask);
  `__call__(input_a, input_b)` also reconstructs input_a. Outputs keep the
  original's names; images (B, H, W, C), part maps (B, H/2, W/2, K), Gaussian maps (B, H, W, K), means (B, K),
  covariances (B, K, 2, 2).
  """

  n_landmarks: int = 30
  n_filters: int = 32
  img_size: int = 128
  use_identity_covariance: bool = False
  fixed_covar: float = 0.05
  use_fg_bg_mask: bool = False
  low_res_mask: bool = False
  nsf: int = 6
  naf: int = 0
  ngc: int = 64
  shape_decoder_widths: Sequence[int] = (512, 256, 128)
  appearance_decoder_width: int = 64
  background_filters: int = 32
  background_decoder_widths: Sequence[int] = (32, 64, 128)
  mask_filters: int = 32
  mask_decoder_widths: Sequence[int] = (32, 32, 32)
  low_res_mask_width: int = 32
  spade_hidden: int = 128
  gaussian_fg_mask: bool = False
  # The dtype of the networks' convolutions and matmuls ('float32' or 'bfloat16'). Parameters, the Gaussians'
  # statistics (softmax, means, covariances, rendering) and every output stay float32.
  compute_dtype: str = 'float32'

  def _in_compute_dtype(self, x: jax.Array) -> jax.Array:
    return x if self.compute_dtype == 'float32' else x.astype(self.compute_dtype)

  def setup(self):
    self.shape_encoder = UNet(tuple(self.shape_decoder_widths) + (self.n_landmarks,), 4, 3, self.nsf)
    self.appearance_encoder = UNet((self.appearance_decoder_width, self.n_filters), 1, 1, self.naf)
    self.image_decoder = SPADEGenerator(self.ngc, self.spade_hidden)
    if self.use_fg_bg_mask:
      self.bg_net = UNet(tuple(self.background_decoder_widths) + (3,), 3, 3, self.background_filters)
    if self.use_fg_bg_mask and not self.gaussian_fg_mask:  # Else the mask is the Gaussians' union.
      if self.low_res_mask:
        self.fg_mask_net = UNet((self.low_res_mask_width, 1), 3, 1, self.mask_filters)
      else:
        self.fg_mask_net = UNet(tuple(self.mask_decoder_widths) + (1,), 3, 3, self.mask_filters)

  def _gaussians(self, logits: jax.Array):
    fixed = self.fixed_covar if self.use_identity_covariance else None
    return gaussians.estimate_gaussians(logits, fixed)

  def _foreground_mask(self, maps: jax.Array) -> jax.Array:
    if self.gaussian_fg_mask:
      return jnp.max(maps, axis=-1, keepdims=True)
    logits = self.fg_mask_net(self._in_compute_dtype(maps)).astype(maps.dtype)
    if self.low_res_mask:
      logits = resize.upsample_bilinear(logits, 4, align_corners=False)
    return jax.nn.sigmoid(logits)

  def __call__(
    self, input_a: jax.Array, input_b: jax.Array | None = None, train: bool = False, with_mask: bool = False
  ) -> dict:
    compute = self._in_compute_dtype
    output_dtype = input_a.dtype
    if input_b is None:
      heatmaps, mean_x, mean_y, covariance = self._gaussians(self.shape_encoder(compute(input_a)))
      outputs = {'vis_centers': (mean_x, mean_y), 'vis_cov': covariance, 'input_a_heatmaps': heatmaps}
      if with_mask and self.use_fg_bg_mask:
        maps = gaussians.render_gaussians(mean_x, mean_y, covariance, self.img_size)
        outputs.update(input_a_gauss_maps=maps, input_a_fg_mask=self._foreground_mask(maps))
      return outputs

    b = input_a.shape[0]
    logits, first_features = self.shape_encoder(compute(jnp.concatenate([input_a, input_b])), return_first=True)
    heatmaps, mean_x, mean_y, covariance = self._gaussians(logits)
    params_a = (mean_x[:b], mean_y[:b], covariance[:b])
    params_b = (mean_x[b:], mean_y[b:], covariance[b:])
    heatmaps_a, heatmaps_b = heatmaps[:b], heatmaps[b:]
    maps = gaussians.render_gaussians(mean_x, mean_y, covariance, self.img_size)
    maps_a = maps[:b]  # input_b's maps make its foreground mask, below

    appearance = self.appearance_encoder(compute(jnp.concatenate([heatmaps_b, first_features[b:]], axis=-1)))
    vectors = gaussians.pool_appearance(appearance.astype(heatmaps_b.dtype), heatmaps_b)
    decoded = self.image_decoder(compute(maps_a), compute(gaussians.project_appearance(vectors, maps_a)), train)
    decoded = decoded.astype(output_dtype)

    outputs = {
      'reconstruction': decoded,
      'vis_centers': params_a[:2],
      'input_a_gauss_params': params_a,
      'input_a_heatmaps': heatmaps_a,
      'input_a_gauss_maps': maps_a,
      'input_b_gauss_params': params_b,
      'input_b_heatmaps': heatmaps_b,
    }
    if self.use_fg_bg_mask:
      masks = self._foreground_mask(maps)
      mask_a, mask_b = masks[:b], masks[b:]
      background = self.bg_net(compute((1.0 - mask_b) * input_b)).astype(output_dtype)
      outputs.update(
        {
          'reconstruction': background * (1.0 - mask_a) + decoded * mask_a,
          'background_recon': background,
          'decoded_foreground': decoded,
          'input_a_fg_mask': mask_a,
          'input_b_fg_mask': mask_b,
        }
      )
    return outputs


MODEL_FIELDS = (
  'n_landmarks',
  'n_filters',
  'img_size',
  'use_identity_covariance',
  'fixed_covar',
  'use_fg_bg_mask',
  'low_res_mask',
  'nsf',
  'naf',
  'ngc',
  'shape_decoder_widths',
  'appearance_decoder_width',
  'background_filters',
  'background_decoder_widths',
  'mask_filters',
  'mask_decoder_widths',
  'low_res_mask_width',
  'spade_hidden',
  'gaussian_fg_mask',
)


def model_from_config(config: ml_collections.ConfigDict) -> LandmarkModel:
  """The landmark model a configuration describes (what it computes with on a CPU is the process's choice:
  landmarks_jax/cpu/kernels.py, `select_for`)."""
  kwargs = {name: config[name] for name in MODEL_FIELDS}
  for name in ('shape_decoder_widths', 'background_decoder_widths', 'mask_decoder_widths'):
    kwargs[name] = tuple(kwargs[name])
  # Not a model field: the same weights run at either precision.
  return LandmarkModel(**kwargs, compute_dtype=config.get('compute_dtype', 'float32'))
