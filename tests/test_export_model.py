"""Exporting a run's model: a small workdir that evaluate reads as it is and that a new run starts from."""

import os

import jax
import numpy as np
import pytest

from landmarks_jax import evaluate
from landmarks_jax import export_model
from landmarks_jax.configs import test as test_config
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import train_state
from landmarks_jax.weights import pretrained


def _bytes(tree):
  return sum(np.asarray(leaf).nbytes for leaf in jax.tree_util.tree_leaves(tree))


def test_an_export_holds_only_the_generator_and_evaluates_and_initialises_as_the_run(tiny_mocap_data_dir, tmp_path):
  config = test_config.get_config()
  config.data_dir = tiny_mocap_data_dir
  run = os.fspath(tmp_path / 'run')
  state = train_state.create_train_state(config)
  checkpoints.Checkpoints(run).save(7, state, meta={checkpoints.OPTIONS_KEY: config_checks.plain_config(config)})
  checkpoints.write_config(run, config)
  out = os.fspath(tmp_path / 'shared')
  assert export_model.export(run, out) == 7

  saved, meta = checkpoints.Checkpoints(out).restore_raw()
  assert sorted(saved) == ['generator'] and meta['step'] == 7
  whole, _ = checkpoints.Checkpoints(run).restore_raw()
  assert _bytes(saved) < 0.5 * _bytes(whole)  # no optimizer states, no discriminator
  exported = checkpoints.read_config(out)
  assert exported.data_dir == '' and exported.n_landmarks == config.n_landmarks
  for a, b in zip(
    jax.tree_util.tree_leaves(saved['generator']), jax.tree_util.tree_leaves(state.generator), strict=True
  ):
    np.testing.assert_array_equal(a, np.asarray(b))

  # evaluate reads it as a workdir, with the data found where this machine keeps it.
  exported.data_dir = tiny_mocap_data_dir
  ours, theirs = evaluate.run(out, exported), evaluate.run(run)
  assert ours['step'] == theirs['step'] == 7
  assert ours['test']['mean_pixel_error'] == pytest.approx(theirs['test']['mean_pixel_error'], rel=1e-6)
  # A new run starts from its weights.
  start = pretrained.generator_variables(out, config)
  np.testing.assert_array_equal(jax.tree_util.tree_leaves(start)[0], jax.tree_util.tree_leaves(state.generator)[0])
  with pytest.raises(export_model.ExportError, match='is not empty'):
    export_model.export(run, out)
