"""Forward passes outside the train step: reconstructions for pictures, and the validation loss.

The validation pass follows the original's: the model reconstructs each validation frame from its jittered
copy (input_a) and its thin-plate-spline warp (input_b), and the perceptual loss (without vgg_lambda; the
pixel MSE when use_vgg is off) is averaged over the examples.
"""

import os
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarks_jax import pictures
from landmarks_jax.data.augment import pairs
from landmarks_jax.model import losses
from landmarks_jax.model.landmark_model import model_from_config
from landmarks_jax.model.vgg import VGGFeatures
from landmarks_jax.training import device_layout
from landmarks_jax.training import train_step

AXIS = device_layout.AXIS
PICTURE_KEYS = (
  'reconstruction',
  'vis_centers',
  'input_b_gauss_params',
  'input_a_heatmaps',
  'background_recon',
  'decoded_foreground',
  'input_a_fg_mask',
  'input_b_fg_mask',
)


def _reconstruct(
  generator: Any, batch: dict, rng: jax.Array, config: ml_collections.ConfigDict, warped_only: bool
) -> tuple[dict, dict]:
  """Training-style inputs and the model's outputs on them (evaluation mode)."""
  rng = jax.random.fold_in(rng, jax.lax.axis_index(AXIS))
  inputs = pairs.make_training_inputs(rng, batch, config)
  if warped_only:
    a, b = inputs['input_a'], inputs['input_b']
  else:
    a, b, _ = train_step.model_inputs(inputs, config)
    a, b = a[: inputs['target'].shape[0]], b[: inputs['target'].shape[0]]
  outputs = model_from_config(config).apply(generator, a, b)
  return {'target': inputs['target'], 'input_a': a, 'input_b': b}, outputs


def make_p_pictures(config: ml_collections.ConfigDict):
  """pmapped (generator, batch, rng) -> numpy-ready dict of inputs and outputs for `train_visuals`."""

  def forward(generator, batch, rng):
    inputs, outputs = _reconstruct(generator, batch, rng, config, warped_only=False)
    return dict(inputs, **{k: outputs[k] for k in PICTURE_KEYS if k in outputs})

  return device_layout.data_parallel(forward)


def make_p_validation_loss(config: ml_collections.ConfigDict):
  """pmapped (generator, batch, vgg_params, rng) -> (loss sum, example count, target, reconstruction)."""
  vgg = VGGFeatures(config.vgg, config.compute_dtype)

  def per_example_loss(vgg_params, prediction, target):
    if not config.use_vgg:
      return jnp.mean(jnp.square(jnp.where(target == 0, 0.0, prediction) - target))
    features = lambda x: vgg.apply({'params': vgg_params}, x)
    return losses.perceptual_loss(features, prediction[None], target[None], config.reduced_w)

  def step(generator, batch, vgg_params, rng):
    inputs, outputs = _reconstruct(generator, batch, rng, config, warped_only=True)
    loss = jax.vmap(per_example_loss, in_axes=(None, 0, 0))(vgg_params, outputs['reconstruction'], inputs['target'])
    valid = batch['valid'].astype(jnp.float32)
    total = jax.lax.psum(jnp.sum(loss * valid), AXIS)
    count = jax.lax.psum(jnp.sum(valid), AXIS)
    return total, count, inputs['target'], outputs['reconstruction']

  return device_layout.data_parallel(step)


def run_validation(
  p_loss, generator: Any, vgg_params: Any, batches: Iterable[dict], render_dir: str | None, num_renders: int
) -> float:
  """Mean validation loss over all processes' examples; writes target | reconstruction PNGs to render_dir."""
  total, count, rendered = 0.0, 0.0, 0
  rng = device_layout.replicate(jax.random.PRNGKey(0))
  for batch in batches:
    batch_total, batch_count, targets, reconstructions = p_loss(generator, batch, vgg_params, rng)
    total += float(device_layout.local_rows(batch_total)[0])
    count += float(device_layout.local_rows(batch_count)[0])
    if render_dir and rendered < num_renders:
      rendered += _write_renders(render_dir, rendered, num_renders, batch, targets, reconstructions)
  return total / max(count, 1.0)


def _write_renders(render_dir, start, limit, batch, targets, reconstructions) -> int:
  os.makedirs(render_dir, exist_ok=True)
  valid = np.asarray(batch['valid']).reshape(-1)
  targets = np.asarray(device_layout.local_rows(targets)).reshape((-1,) + targets.shape[2:])
  reconstructions = np.asarray(device_layout.local_rows(reconstructions)).reshape((-1,) + reconstructions.shape[2:])
  written = 0
  for i in np.flatnonzero(valid)[: limit - start]:
    pair = pictures.tile_grid(
      [pictures.to_uint8_image(targets[i]), pictures.to_uint8_image(reconstructions[i])], columns=2
    )
    pictures.save_image(os.path.join(render_dir, f'{start + written:03d}.png'), pair)
    written += 1
  return written
