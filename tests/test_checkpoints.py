"""Checkpoints: what is refused (other options, other shapes, non-finite arrays) and how damage is reported."""

import os
import shutil
import time

import numpy as np
import pytest

from landmarks_jax.configs import test as test_config
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import train_state
from landmarks_jax.weights import pretrained
from landmarks_jax.weights.original_checkpoints import weight_mapping


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
  """A workdir with a fresh test-config state saved as steps 1 and 2 (options recorded); tests copy it."""
  workdir = str(tmp_path_factory.mktemp('saved') / 'run')
  config = test_config.get_config()
  store = checkpoints.Checkpoints(workdir)
  state = train_state.create_train_state(config)
  for step in (1, 2):
    store.save(step, state, {checkpoints.OPTIONS_KEY: config_checks.plain_config(config)})
  store.close()
  return workdir


def _copy(saved, tmp_path):
  workdir = str(tmp_path / 'copy')
  shutil.copytree(saved, workdir)
  return workdir


def _largest_data_file(workdir, step):
  folder = os.path.join(workdir, 'checkpoints', str(step), 'state', 'ocdbt.process_0', 'd')
  return max((os.path.join(folder, name) for name in os.listdir(folder)), key=os.path.getsize)


def _restore(workdir, step=None):
  return checkpoints.Checkpoints(workdir, writer=False).restore(
    train_state.create_train_state(test_config.get_config()), step
  )


def test_nothing_is_created_before_the_first_save(tmp_path):
  store = checkpoints.Checkpoints(str(tmp_path / 'new'))
  assert store.all_steps() == [] and store.latest_step() is None
  assert not (tmp_path / 'new').exists()


@pytest.mark.parametrize('damage', ['truncate', 'delete'])
def test_a_damaged_data_file_names_the_step_the_file_and_the_older_steps(saved, tmp_path, capfd, damage):
  workdir = _copy(saved, tmp_path)
  path = _largest_data_file(workdir, 2)
  if damage == 'truncate':
    os.truncate(path, os.path.getsize(path) // 2)
  else:
    os.unlink(path)
  with pytest.raises(checkpoints.CheckpointUnreadable) as caught:
    _restore(workdir)
  message = str(caught.value)
  assert caught.value.step == 2
  assert f'Checkpoint 2 in {os.path.join(os.path.abspath(workdir), "checkpoints")} is unreadable' in message
  assert 'Damaged: a data file under' in message and os.path.join('checkpoints', '2', 'state') in message
  assert 'Older checkpoints: steps 1.' in message
  assert f'python -m landmarks_jax.evaluate --workdir={workdir} --step=1' in message
  time.sleep(0.5)  # tensorstore's late reads report after the error
  assert 'Event loop is closed' not in capfd.readouterr().err
  state, meta = _restore(workdir, 1)  # the older step still reads
  assert meta['step'] == 1 and int(state.step) == 0


@pytest.mark.parametrize('name', ['meta/metadata', 'state/_METADATA'])
def test_a_cut_json_file_is_named(saved, tmp_path, name):
  workdir = _copy(saved, tmp_path)
  path = os.path.join(workdir, 'checkpoints', '2', name)
  os.truncate(path, 7)
  expected = rf'(?s)Checkpoint 2 .*Damaged: .*2/{name} \(not valid JSON\)'
  with pytest.raises(checkpoints.CheckpointUnreadable, match=expected):
    _restore(workdir)


def test_options_saved_with_a_checkpoint_are_checked(saved):
  store = checkpoints.Checkpoints(saved, writer=False)
  config = test_config.get_config()
  config.num_train_steps = 1000  # a resumable option
  store.check_options(2, config)
  config.img_size = 64
  with pytest.raises(checkpoints.CheckpointMismatch, match='img_size: checkpoint has 32, this run has 64'):
    store.check_options(2, config)
  store.check_options(2, config, names=('n_landmarks',))  # only the options asked for


def test_shapes_are_checked_when_no_options_were_saved(tmp_path):
  config = test_config.get_config()
  store = checkpoints.Checkpoints(str(tmp_path))
  store.save(3, train_state.create_train_state(config), {})
  store.check_options(3, config)  # nothing recorded, nothing to compare
  config.n_landmarks = 5
  expected = r'(?s)Checkpoint 3 .*does not fit.*appearance_encoder.*is \(96,\) in the checkpoint but \(104,\)'
  with pytest.raises(checkpoints.CheckpointMismatch, match=expected):
    store.restore(train_state.create_train_state(config))


def test_a_state_with_a_non_finite_array_is_not_saved(tmp_path):
  state = train_state.create_train_state(test_config.get_config())
  kernel = state.generator['params']['image_decoder']['fc']['kernel']
  params = dict(
    state.generator['params'],
    image_decoder=dict(state.generator['params']['image_decoder'], fc=dict(kernel=np.full(kernel.shape, np.inf))),
  )
  bad = state.replace(generator=dict(state.generator, params=params))
  store = checkpoints.Checkpoints(str(tmp_path / 'run'))
  with pytest.raises(checkpoints.NonFiniteState, match='Not saving step 5: 1 arrays .*image_decoder/fc/kernel'):
    store.save(5, bad, {})
  assert store.all_steps() == []
  assert not (tmp_path / 'run').exists()


def test_set_aside_moves_an_unreadable_step_out_of_the_way(saved, tmp_path):
  workdir = _copy(saved, tmp_path)
  store = checkpoints.Checkpoints(workdir)
  moved = store.set_aside(2)
  assert moved == os.path.join(workdir, checkpoints.UNREADABLE_DIR, '2') and os.path.isdir(moved)
  assert store.all_steps() == [1]


def test_weights_from_another_workdir_load_when_they_fit_and_name_each_difference_when_not(saved):
  config = test_config.get_config()
  variables = pretrained.generator_variables(saved, config)
  expected = train_state.create_train_state(config).generator
  assert checkpoints.shape_differences(variables, expected) == []
  config.n_landmarks += 1
  with pytest.raises(
    weight_mapping.StateDictMismatch,
    match=r'generator weights in .* do not fit this configuration:\n  \S+ is \(.*\) in the '
    r'checkpoint but \(.*\) for the config[\s\S]*Train or evaluate with the configuration',
  ):
    pretrained.generator_variables(saved, config)


def test_an_option_added_after_a_run_was_saved_counts_as_its_default():
  saved = {'n_landmarks': 16}  # a record from before dataset_seed existed
  assert checkpoints.option_differences(saved, {'n_landmarks': 16, 'dataset_seed': 0}) == []
  assert checkpoints.option_differences(saved, {'n_landmarks': 16, 'dataset_seed': 2}) == [
    '  dataset_seed: saved 0, this run has 2'
  ]
