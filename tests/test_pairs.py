"""Tests of the on-device training inputs: which image is jittered, which is warped, and pmap."""

import jax
import jax.numpy as jnp
import numpy as np

from landmarks_jax.configs import test as test_config
from landmarks_jax.data.augment import color_jitter as cj
from landmarks_jax.data.augment import pairs
from landmarks_jax.data.augment import tps
from landmarks_jax.training import device_layout

SIZE = 64


def _config(**overrides):
  config = test_config.get_config()
  config.img_size = SIZE
  config.update(overrides)
  return config


def _zero_warp(**overrides):
  return _config(rot_lb=0.0, rot_ub=0.0, scale_lb=1.0, scale_ub=1.0, trans_lb=0, trans_ub=0, **overrides)


def _smooth_images(seed, batch=3):
  """Low-frequency colour images in [-1, 1], so that small warps change them little."""
  y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
  phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, (batch, 1, 1, 3))
  return jnp.asarray(
    0.8 * np.sin(2 * np.pi * x[None, ..., None] * 0.7 + phases) * np.cos(3 * y[None, ..., None]), jnp.float32
  )


def _batch(seed=0, batch=3):
  return {
    'target': _smooth_images(seed, batch),
    'input_temporal': _smooth_images(seed + 1, batch),
    'frame': jnp.arange(batch),
  }


def _warp_with_the_documented_key(rng, images, config):
  warp_key = jax.random.split(rng, 3)[2]
  return tps.random_tps_warp(
    warp_key,
    images,
    (config.rot_lb, config.rot_ub),
    (config.scale_lb, config.scale_ub),
    (config.trans_lb, config.trans_ub),
    perturb=config.tps_perturb,
    margin=config.tps_margin,
  )


def test_without_jitter_and_warp_ranges_the_inputs_are_the_target():
  batch, rng, config = _batch(), jax.random.PRNGKey(0), _zero_warp(color_jitter=False, color_jitter_targets=False)
  out = pairs.make_training_inputs(rng, batch, config)
  np.testing.assert_array_equal(np.asarray(out['input_a']), np.asarray(batch['target']))
  np.testing.assert_array_equal(np.asarray(out['target']), np.asarray(batch['target']))
  np.testing.assert_array_equal(np.asarray(out['input_temporal']), np.asarray(batch['input_temporal']))
  np.testing.assert_array_equal(np.asarray(out['frame']), np.asarray(batch['frame']))
  # Only the original's fixed +-2 px control-point perturbation remains.
  np.testing.assert_allclose(np.asarray(out['input_b']), np.asarray(batch['target']), atol=0.25)
  np.testing.assert_allclose(
    np.asarray(out['input_b']), np.asarray(_warp_with_the_documented_key(rng, batch['target'], config)), atol=1e-6
  )


def test_warp_constants_come_from_the_config():
  batch, rng = _batch(3), jax.random.PRNGKey(3)
  still = pairs.make_training_inputs(rng, batch, _zero_warp(color_jitter=False, tps_perturb=0.0))
  np.testing.assert_allclose(np.asarray(still['input_b']), np.asarray(batch['target']), atol=1e-5)
  config = _config(color_jitter=False, tps_margin=4.0, tps_perturb=1.0)
  moved = pairs.make_training_inputs(rng, batch, config)
  np.testing.assert_allclose(
    np.asarray(moved['input_b']), np.asarray(_warp_with_the_documented_key(rng, batch['target'], config)), atol=1e-6
  )
  default = pairs.make_training_inputs(rng, batch, _config(color_jitter=False))
  assert np.abs(np.asarray(moved['input_b']) - np.asarray(default['input_b'])).max() > 1e-2


def test_jitter_changes_input_a_but_input_b_warps_the_unjittered_target():
  batch, rng = _batch(1), jax.random.PRNGKey(1)
  config = _config(color_jitter=True, color_jitter_targets=False)
  jittered = pairs.make_training_inputs(rng, batch, config)
  plain = pairs.make_training_inputs(rng, batch, _config(color_jitter=False, color_jitter_targets=False))
  assert np.abs(np.asarray(jittered['input_a']) - np.asarray(batch['target'])).mean() > 1e-2
  np.testing.assert_array_equal(np.asarray(jittered['input_b']), np.asarray(plain['input_b']))
  np.testing.assert_allclose(
    np.asarray(jittered['input_b']), np.asarray(_warp_with_the_documented_key(rng, batch['target'], config)), atol=1e-6
  )
  np.testing.assert_array_equal(np.asarray(jittered['target']), np.asarray(batch['target']))
  assert np.abs(np.asarray(jittered['input_b']) - np.asarray(batch['target'])).mean() > 1e-2


def test_zero_warp_with_jitter_keeps_the_mean_colour_of_input_b():
  batch = _batch(2)
  out = pairs.make_training_inputs(
    jax.random.PRNGKey(2), batch, _zero_warp(color_jitter=True, color_jitter_targets=False)
  )
  target_mean = np.asarray(batch['target']).mean(axis=(1, 2))
  np.testing.assert_allclose(np.asarray(out['input_b']).mean(axis=(1, 2)), target_mean, atol=0.03)
  assert np.abs(np.asarray(out['input_a']).mean(axis=(1, 2)) - target_mean).max() > 0.03


def test_color_jitter_targets_recolours_target_and_temporal_alike():
  target = _smooth_images(3)
  batch = {'target': target, 'input_temporal': target}
  rng, config = jax.random.PRNGKey(3), _config(color_jitter=True, color_jitter_targets=True)
  out = pairs.make_training_inputs(rng, batch, config)
  np.testing.assert_array_equal(np.asarray(out['target']), np.asarray(out['input_temporal']))
  assert np.abs(np.asarray(out['target']) - np.asarray(target)).mean() > 1e-2
  # Everything else derives from the re-coloured target.
  np.testing.assert_allclose(
    np.asarray(out['input_b']), np.asarray(_warp_with_the_documented_key(rng, out['target'], config)), atol=1e-6
  )
  jitter_key = jax.random.split(rng, 3)[1]
  np.testing.assert_allclose(
    np.asarray(out['input_a']), np.asarray(cj.color_jitter(jitter_key, out['target'])), atol=1e-6
  )


def test_runs_under_jit_and_pmap():
  config = _config(color_jitter=True, color_jitter_targets=True)
  devices = jax.local_device_count()
  assert devices == 2
  per_device = [_batch(10 + index, batch=2) for index in range(devices)]
  stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *per_device)
  rngs = jax.random.split(jax.random.PRNGKey(4), devices)

  pmapped = device_layout.data_parallel(lambda rng, batch: pairs.make_training_inputs(rng, batch, config))(
    rngs, stacked
  )
  jitted = jax.jit(lambda rng, batch: pairs.make_training_inputs(rng, batch, config))
  for name in ('target', 'input_a', 'input_b', 'input_temporal'):
    assert pmapped[name].shape == (devices, 2, SIZE, SIZE, 3)
    for index in range(devices):
      expected = jitted(rngs[index], per_device[index])[name]
      np.testing.assert_allclose(np.asarray(pmapped[name][index]), np.asarray(expected), atol=1e-5)
  # Each device draws its own augmentation.
  assert np.abs(np.asarray(pmapped['input_a'][0]) - np.asarray(pmapped['input_a'][1])).mean() > 1e-2
