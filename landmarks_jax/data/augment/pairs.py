"""The training inputs of one step, built on the device from the host's cropped frames.

Follows the PyTorch original's dataset: `input_a` is the colour-jittered target (the appearance view),
`input_b` the thin-plate-spline warp of the un-jittered target (the pose view), and with
`color_jitter_targets` one paired jitter first changes target and temporal frame alike.
"""

from typing import Any, Mapping

import jax

from landmarks_jax.data import pixels
from landmarks_jax.data.augment import color_jitter as color_jitter_lib
from landmarks_jax.data.augment import tps


def make_training_inputs(rng: jax.Array, batch: Mapping[str, jax.Array], config: Any) -> dict[str, jax.Array]:
  """Builds input_a, input_b (and possibly re-coloured target and temporal frame) for a batch.

  The rng is split as `targets_key, jitter_key, warp_key = jax.random.split(rng, 3)`: targets_key drives the
  paired jitter of color_jitter_targets, jitter_key the jitter of input_a, warp_key the warp of input_b.

  Args:
    rng: PRNG key, different per step and device.
    batch: 'target' and 'input_temporal', (B, H, W, 3) uint8 (or floats in [-1, 1]); other entries pass
      through unchanged.
    config: ConfigDict with color_jitter, color_jitter_targets, rot_lb, rot_ub, scale_lb, scale_ub, trans_lb,
      trans_ub, tps_margin and tps_perturb.

  Returns:
    The batch's entries with 'target', 'input_a', 'input_b' and 'input_temporal', each (B, H, W, 3) float in
    [-1, 1].
  """
  for key in ('target', 'input_temporal'):
    if key not in batch:
      raise KeyError(
        f"make_training_inputs needs batch['{key}'], a (B, H, W, 3) image batch; got keys {sorted(batch)}."
      )
  targets_key, jitter_key, warp_key = jax.random.split(rng, 3)
  target, temporal = pixels.to_signed(batch['target']), pixels.to_signed(batch['input_temporal'])
  if config.color_jitter_targets:
    target, temporal = color_jitter_lib.paired_color_jitter(targets_key, target, temporal)
  input_a = color_jitter_lib.color_jitter(jitter_key, target) if config.color_jitter else target
  input_b = tps.random_tps_warp(
    warp_key,
    target,
    rot_range=(config.rot_lb, config.rot_ub),
    scale_range=(config.scale_lb, config.scale_ub),
    trans_range=(config.trans_lb, config.trans_ub),
    perturb=config.tps_perturb,
    margin=config.tps_margin,
  )
  return {**batch, 'target': target, 'input_a': input_a, 'input_b': input_b, 'input_temporal': temporal}
