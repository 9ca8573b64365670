"""Training: the pmapped step, exact resume, NaN handling, the command line and its config overrides."""

import errno
import functools
import glob
import logging
import os
import shutil
import sys

from absl import flags
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from landmarks_jax.configs import test as test_config
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import device_layout
from landmarks_jax.training import train
from landmarks_jax.training import train_state
from landmarks_jax.training import train_step
from landmarks_jax.training import workdir_lock
from landmarks_jax.weights import vgg_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def data_dir(tiny_mocap_data_dir):
  return tiny_mocap_data_dir


@pytest.fixture(scope='module')
def four_steps(data_dir, tmp_path_factory):
  """A workdir trained 4 steps with checkpoints 2 and 4; tests copy it before changing anything."""
  workdir = str(tmp_path_factory.mktemp('four') / 'run')
  train.train_and_evaluate(quick_config(data_dir, num_train_steps=4), workdir)
  return workdir


def copy_of(workdir, tmp_path):
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  return copy


def listing(workdir):
  """Every file below `workdir` with its size and modification time, but the lock (each run names itself in it)."""
  return {
    os.path.join(root, name): (os.path.getsize(os.path.join(root, name)), os.path.getmtime(os.path.join(root, name)))
    for root, _, names in os.walk(workdir)
    for name in names
    if name != workdir_lock.LOCK_FILE
  }


def quick_config(data_dir, **overrides):
  """The test config without evaluation, validation or pictures, unless asked."""
  config = test_config.get_config()
  config.data_dir = data_dir
  config.eval_at_end = False
  config.val_every_steps = -1
  config.log_images_every_steps = 0
  for name, value in overrides.items():
    config[name] = value
  return config


# Steps in which the tiny model visibly learns a fixed batch (its loss falls below 0.7 of the start's).
STEPS_TO_LEARN = 20


def leaves_close(a, b, atol):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_step_keeps_replicas_identical_and_lowers_the_loss_in_float32_and_bfloat16():
  assert jax.local_device_count() == 2
  rng = np.random.default_rng(0)
  # Smooth random colour fields, different on each device: something a tiny model learns in a few steps.
  coarse = rng.integers(0, 256, (2, 2, 4, 4, 3)).astype(np.float32)
  frames = np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3).astype(np.uint8)
  assert not np.array_equal(frames[0], frames[1])
  batch = device_layout.to_devices({'target': frames, 'input_temporal': frames[:, ::-1].copy()})
  curves = {}
  for dtype in ('float32', 'bfloat16'):
    config = test_config.get_config()
    config.update(compute_dtype=dtype, use_gan=False, learning_rate=3e-3)
    state = device_layout.replicate(train_state.create_train_state(config))
    vgg = device_layout.replicate(vgg_weights.vgg_params(config))
    p_step = train_step.make_p_train_step(config)
    losses = []
    for _ in range(STEPS_TO_LEARN):
      state, metrics = p_step(state, batch, vgg)
      losses.append(float(device_layout.local_rows(metrics['loss_G'])[0]))
    assert int(device_layout.unreplicate(state.step)) == STEPS_TO_LEARN
    trained = jax.tree_util.tree_leaves((state.generator, state.generator_opt_state))
    for leaf in trained:
      rows = device_layout.local_rows(leaf)
      np.testing.assert_array_equal(rows[0], rows[1])  # the devices' gradients were averaged
    # Parameters and optimizer states stay float32 whatever the compute dtype.
    assert {x.dtype for x in trained if np.issubdtype(x.dtype, np.floating)} == {np.dtype(np.float32)}
    curves[dtype] = losses
  for dtype, losses in curves.items():
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), (dtype, losses)
  assert np.mean(curves['bfloat16'][-5:]) == pytest.approx(np.mean(curves['float32'][-5:]), rel=0.25)


def test_resume_matches_a_straight_run(data_dir, four_steps, tmp_path):
  straight, resumed = four_steps, str(tmp_path / 'resumed')
  train.train_and_evaluate(quick_config(data_dir, num_train_steps=2), resumed)
  assert checkpoints.Checkpoints(resumed).all_steps() == [2]
  train.train_and_evaluate(quick_config(data_dir, num_train_steps=4), resumed)
  a, meta_a = checkpoints.Checkpoints(straight).restore_raw(4)
  b, meta_b = checkpoints.Checkpoints(resumed).restore_raw(4)
  assert meta_a['input_position'] == meta_b['input_position'] == 4
  leaves_close(a, b, atol=1e-6)
  start, _ = checkpoints.Checkpoints(resumed).restore_raw(2)
  assert not np.allclose(
    start['generator']['params']['image_decoder']['fc']['kernel'],
    b['generator']['params']['image_decoder']['fc']['kernel'],
  )


def test_time_limit_stops_saves_evaluates_and_the_next_run_trains_on(data_dir, tmp_path, monkeypatch):
  evaluated = []
  monkeypatch.setattr(train.Trainer, 'evaluate_landmarks', lambda self, step: evaluated.append(step) or {})
  # A limit shorter than building the model: each run trains one step, then stops.
  config = quick_config(data_dir, num_train_steps=5, save_every_steps=100, time_limit_minutes=1e-6, eval_at_end=True)
  workdir = str(tmp_path / 'limited')
  train.train_and_evaluate(config, workdir)
  assert checkpoints.Checkpoints(workdir).all_steps() == [1]
  train.train_and_evaluate(config, workdir)
  assert checkpoints.Checkpoints(workdir).all_steps() == [1, 2]
  assert evaluated == [1, 2]
  _, meta = checkpoints.Checkpoints(workdir).restore_raw(2)
  assert meta['input_position'] == 2


def test_progress_line_counts_down_to_the_sooner_of_the_last_step_and_the_time_limit():
  assert train._console_line(10, 110, {}, 1.0).endswith('ETA 0:01:40')
  assert train._console_line(10, 110, {}, 1.0, seconds_left=30.4).endswith('ETA 0:00:30')
  assert train._console_line(10, 110, {}, 1.0, seconds_left=500).endswith('ETA 0:01:40')
  assert train._console_line(10, 110, {}, 0.0, seconds_left=-5).endswith('ETA 0:00:00')


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
  original = train_step.make_p_train_step

  def poisoned(config, devices=None):
    step_fn, calls = original(config, devices), []

    def step(state, batch, vgg):
      calls.append(1)
      if len(calls) == 3:  # step 3 starts from NaN weights
        state = state.replace(generator=jax.tree_util.tree_map(lambda x: x * np.nan, state.generator))
      return step_fn(state, batch, vgg)

    return step

  monkeypatch.setattr(train_step, 'make_p_train_step', poisoned)
  workdir = str(tmp_path / 'nan')
  expected = r'Non-finite loss at step 3, the first bad one of steps 3\.\.4 .*loss_vgg=nan.*last checkpoint \(step 2\)'
  with pytest.raises(train.NonFiniteLossError, match=expected):
    train.train_and_evaluate(quick_config(data_dir, num_train_steps=6, save_every_steps=2, log_every_steps=2), workdir)
  ckpts = checkpoints.Checkpoints(workdir)
  assert ckpts.all_steps() == [2]
  state, _ = ckpts.restore_raw(2)
  assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(state['generator']))


def test_the_loop_reads_the_devices_only_at_reports_and_compiles_its_step_once(data_dir, tmp_path, monkeypatch):
  traces = []
  original = train_step.train_step

  def counted(*args, **kwargs):
    traces.append(1)  # runs once per trace, that is once per compilation
    return original(*args, **kwargs)

  monkeypatch.setattr(train_step, 'train_step', counted)
  # A memory of compiled steps of its own, so that no step another test compiled is reused.
  fresh = functools.lru_cache(maxsize=8)(train_step._p_train_step.__wrapped__)  # pylint: disable=protected-access
  monkeypatch.setattr(train_step, '_p_train_step', fresh)
  config = quick_config(
    data_dir, num_train_steps=6, log_every_steps=3, save_every_steps=3, log_images_every_steps=3, val_every_steps=3
  )
  trainer = train.Trainer(config, str(tmp_path / 'run'))
  reads = []
  original_collect = trainer._collect
  trainer._collect = lambda pending: reads.append([step for step, _ in pending]) or original_collect(pending)
  try:
    with jax.transfer_guard_device_to_host('disallow_explicit'):  # any read outside a report fails
      trainer.run()
  finally:
    trainer.ckpts.close()
    trainer.writer.close()
  assert reads == [[1, 2, 3], [4, 5, 6]]
  assert len(traces) == 1
  assert checkpoints.Checkpoints(str(tmp_path / 'run')).all_steps() == [3, 6]


def test_runs_that_differ_only_in_loop_settings_share_one_traced_step():
  config = test_config.get_config()
  longer = test_config.get_config()
  longer.update(num_train_steps=99, save_every_steps=7, val_every_steps=-1, eval_at_end=False, data_dir='/elsewhere')
  assert train_step.make_p_train_step(longer) is train_step.make_p_train_step(config)
  faster = test_config.get_config()
  faster.learning_rate = 2 * config.learning_rate
  assert train_step.make_p_train_step(faster) is not train_step.make_p_train_step(config)
  # Two fresh states of one configuration have one pytree structure, so the step traced for one runs the other.
  first, second = (jax.tree_util.tree_structure(train_state.create_train_state(config)) for _ in range(2))
  assert first == second


def test_weights_that_overflow_before_any_loss_stop_training_unsaved(data_dir, tmp_path):
  """With learning rate 1e39 and no clipping, step 1's loss is finite but its update overflows the weights."""
  workdir = str(tmp_path / 'overflow')
  config = quick_config(
    data_dir, num_train_steps=3, save_every_steps=1, learning_rate=1e39, no_grad_clip=True, use_gan=False
  )
  with pytest.raises(train.NonFiniteLossError, match=r'Weights became NaN or infinite at step 1\b.*nothing was saved'):
    train.train_and_evaluate(config, workdir)
  assert checkpoints.Checkpoints(workdir).all_steps() == []


def test_a_start_that_does_not_fit_the_checkpoint_leaves_the_workdir_as_it_was(data_dir, four_steps, tmp_path):
  workdir = copy_of(four_steps, tmp_path)
  os.unlink(os.path.join(workdir, checkpoints.CONFIG_FILE))
  before = listing(workdir)
  with pytest.raises(checkpoints.CheckpointMismatch, match='n_landmarks: checkpoint has 4, this run has 5'):
    train.train_and_evaluate(quick_config(data_dir, num_train_steps=6, n_landmarks=5), workdir)
  assert listing(workdir) == before
  # config.json edited after training: the checkpoint's own record refuses the edited value.
  edited = quick_config(data_dir, num_train_steps=6, img_size=64)
  checkpoints.write_config(workdir, edited)
  with pytest.raises(checkpoints.CheckpointMismatch, match='img_size: checkpoint has 32, this run has 64'):
    train.train_and_evaluate(edited, workdir)


def test_an_unreadable_checkpoint_is_skipped_for_the_older_one_and_moved_aside(data_dir, four_steps, tmp_path, caplog):
  workdir = copy_of(four_steps, tmp_path)
  folder = os.path.join(workdir, 'checkpoints', '4', 'state', 'ocdbt.process_0', 'd')
  largest = max((os.path.join(folder, name) for name in os.listdir(folder)), key=os.path.getsize)
  os.truncate(largest, os.path.getsize(largest) // 2)
  train.train_and_evaluate(quick_config(data_dir, num_train_steps=6), workdir)
  assert 'Resumed from step 2, the newest readable checkpoint' in caplog.text
  assert checkpoints.Checkpoints(workdir).all_steps() == [2, 4, 6]
  assert os.path.isdir(os.path.join(workdir, checkpoints.UNREADABLE_DIR, '4', 'state'))
  # Resumed from 2, so the new step 4 is the straight run's step 4.
  leaves_close(
    checkpoints.Checkpoints(workdir).restore_raw(4)[0], checkpoints.Checkpoints(four_steps).restore_raw(4)[0], atol=1e-6
  )


def test_a_global_batch_splits_over_the_devices_as_the_per_device_batch_would(data_dir, four_steps, tmp_path, caplog):
  workdir = str(tmp_path / 'global')
  caplog.set_level(logging.INFO)
  train.train_and_evaluate(quick_config(data_dir, num_train_steps=2, global_batch_size=4, batch_size=7), workdir)
  assert 'global batch 4 = 2 per device x 2 devices' in caplog.text
  leaves_close(
    checkpoints.Checkpoints(workdir).restore_raw(2)[0], checkpoints.Checkpoints(four_steps).restore_raw(2)[0], atol=1e-6
  )
  with pytest.raises(
    config_checks.ConfigError,
    match=r'global_batch_size=3 does not split over 2 devices.*=2 '
    r'or 4',
  ):
    train.train_and_evaluate(quick_config(data_dir, global_batch_size=3), str(tmp_path / 'odd'))


def test_a_temporal_range_the_videos_cannot_honour_is_refused(data_dir, tmp_path):
  workdir = str(tmp_path / 'range')
  with pytest.raises(ValueError, match=r'temporal_range=\(60, 100\).*longest video \(\d+\) has 50 frames'):
    train.train_and_evaluate(quick_config(data_dir, temporal_range=(60, 100)), workdir)
  assert not os.path.exists(workdir)


def test_a_workdir_refuses_a_different_configuration(tmp_path):
  config = test_config.get_config()
  checkpoints.write_or_check_config(str(tmp_path), config)
  config.num_train_steps = 100  # may change on resume
  checkpoints.write_or_check_config(str(tmp_path), config)
  config.n_landmarks = 7
  with pytest.raises(checkpoints.ConfigMismatch, match='n_landmarks: workdir has 4, this run has 7'):
    checkpoints.write_or_check_config(str(tmp_path), config)


def test_schedule_falls_back_to_the_original_epochs():
  config = test_config.get_config()
  config.num_train_steps, config.epochs = -1, 3
  config.save_every_steps, config.save_freq = 0, 2
  config.val_every_steps = -1
  schedule = train.Schedule.from_config(config, steps_per_epoch=25)
  assert (schedule.num_steps, schedule.save_every, schedule.val_every) == (75, 50, 0)
  config.num_train_steps = 10
  assert train.Schedule.from_config(config, steps_per_epoch=25).num_steps == 10


def _run_main(monkeypatch, argv):
  """Runs landmarks_jax.main's main() in this process with `argv` parsed as its command line."""
  from landmarks_jax import main  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(sys, 'argv', argv)  # config_flags reads its overrides from sys.argv
  try:
    flags.FLAGS(argv)
    main.main(['main'])
  finally:
    flags.FLAGS.unparse_flags()


def test_config_overrides_on_the_command_line(monkeypatch, tmp_path):
  seen = {}
  monkeypatch.setattr(train, 'train_and_evaluate', lambda config, workdir: seen.update(config=config, workdir=workdir))
  _run_main(
    monkeypatch,
    [
      'main',
      f'--config={REPO}/configs/test.py',
      f'--workdir={tmp_path}',
      '--config.use_gan=False',
      '--config.use_warped=false',
      '--config.color_jitter=True',
      '--config.n_landmarks=6',
      '--config.learning_rate=0.002',
      '--config.shape_decoder_widths=(8,8,8)',
      '--xla_cache_dir=',
    ],
  )
  config = seen['config']
  assert (config.use_gan, config.use_warped, config.color_jitter) == (False, False, True)
  assert (config.n_landmarks, config.learning_rate, tuple(config.shape_decoder_widths)) == (6, 0.002, (8, 8, 8))
  assert seen['workdir'] == str(tmp_path)
  with pytest.raises(AttributeError):
    config.no_such_option = 1  # lock_config: typos are errors, not new options


def test_main_prints_the_final_evaluation(monkeypatch, tmp_path, capsys):
  metrics = {
    'step': 4,
    'dataset': 'bbc_pose',
    'n_landmarks': 4,
    'test': {'accuracy': 0.5, 'baseline': {'accuracy': 0.125}},
  }
  monkeypatch.setattr(train, 'train_and_evaluate', lambda config, workdir: metrics)
  _run_main(monkeypatch, ['main', f'--config={REPO}/configs/test.py', f'--workdir={tmp_path}', '--xla_cache_dir='])
  printed = capsys.readouterr().out
  assert 'test: 50.0% of joints within 6 px (mean training pose: 12.5%)' in printed
  assert os.path.join(str(tmp_path), 'eval', 'metrics.json') in printed


def event_tags(workdir):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  tags = set()
  for path in glob.glob(os.path.join(workdir, 'events.out.tfevents.*')):
    accumulator = event_accumulator.EventAccumulator(path, size_guidance={'tensors': 0, 'images': 0})
    accumulator.Reload()
    for values in accumulator.Tags().values():
      if isinstance(values, list):
        tags.update(values)
  return tags


# ----------------------------------------------------------------------------------------------------------
# A full disk, and what the command prints for a user's mistake (signals, kill -9 and the lock: test_run_control).


def test_a_full_disk_during_a_save_is_one_message_naming_the_disk_the_step_and_the_last_checkpoint(
  data_dir, tmp_path, monkeypatch
):
  workdir = str(tmp_path / 'full')
  saves = []
  original_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    saves.append(step)
    if len(saves) == 2:  # as tensorstore reports it from inside orbax's writer
      try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      except OSError as cause:
        raise ValueError(
          f'Error writing local file "{workdir}/checkpoints/4/state/d/x": [OSError: {os.strerror(errno.ENOSPC)}]'
        ) from cause
    return original_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', save)
  expected = (
    rf'The disk holding {os.path.abspath(workdir)}/checkpoints is full \(\d+ MB free now\): checkpoint 4 '
    r'could not be written, and the last good checkpoint is step 2'
  )
  with pytest.raises(checkpoints.DiskFull, match=expected):
    train.train_and_evaluate(quick_config(data_dir, num_train_steps=6), workdir)
  assert checkpoints.Checkpoints(workdir).all_steps() == [2]


def test_a_users_mistake_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, tmp_path, capsys):
  argv = ['main', f'--config={REPO}/configs/test.py', f'--workdir={tmp_path}', '--xla_cache_dir=']
  with pytest.raises(SystemExit) as exit_info:
    _run_main(monkeypatch, argv + ['--config.img_size=40'])
  assert exit_info.value.code == 1
  printed = capsys.readouterr().err
  assert printed.startswith('Error: config.img_size must be a positive multiple of 16') and printed.count('\n') == 1

  def mistake(config, workdir):
    raise checkpoints.ConfigMismatch(f'{workdir} already holds a run with a different configuration')

  monkeypatch.setattr(train, 'train_and_evaluate', mistake)
  with pytest.raises(checkpoints.ConfigMismatch):  # the traceback, on request
    _run_main(monkeypatch, argv + ['--traceback'])

  def bug(config, workdir):
    raise KeyError('a bug')

  monkeypatch.setattr(train, 'train_and_evaluate', bug)
  with pytest.raises(KeyError, match='a bug'):
    _run_main(monkeypatch, argv)
