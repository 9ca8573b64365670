"""The training loop: data, the pmapped step, checkpoints that resume exactly, logs, pictures, evaluation."""

import dataclasses
import datetime
import os
import time
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from landmarks_jax import user_errors
from landmarks_jax.cpu import kernels
from landmarks_jax.data import datasets
from landmarks_jax.data import input_pipeline
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import device_layout
from landmarks_jax.training import stop_signals
from landmarks_jax.training import train_state
from landmarks_jax.training import train_step
from landmarks_jax.training import train_visuals
from landmarks_jax.training import validation_passes
from landmarks_jax.training import workdir_lock
from landmarks_jax.weights import pretrained
from landmarks_jax.weights import vgg_weights

# Batches on their way to the devices ahead of the step that uses them.
DEVICE_PREFETCH = 2


class NonFiniteLossError(user_errors.UserError, FloatingPointError):
  """A loss became NaN or infinite; training stopped without saving the bad state."""


@dataclasses.dataclass(frozen=True)
class Schedule:
  """When things happen, in steps."""

  num_steps: int
  steps_per_epoch: int
  save_every: int
  val_every: int
  eval_every: int
  log_every: int
  images_every: int

  @staticmethod
  def from_config(config: ml_collections.ConfigDict, steps_per_epoch: int) -> 'Schedule':
    def every(steps, epochs):
      if steps < 0:
        return 0
      return steps or max(1, epochs * steps_per_epoch)

    num_steps = config.num_train_steps if config.num_train_steps > 0 else config.epochs * steps_per_epoch
    return Schedule(
      num_steps=num_steps,
      steps_per_epoch=steps_per_epoch,
      save_every=every(config.save_every_steps, config.save_freq),
      val_every=every(config.val_every_steps, config.val_freq),
      eval_every=max(config.eval_every_steps, 0),
      log_every=max(config.log_every_steps, 1),
      images_every=max(config.log_images_every_steps, 0),
    )

  def due(self, step: int, period: int) -> bool:
    return period > 0 and step % period == 0


def _prepare_data(config: ml_collections.ConfigDict):
  """Builds the dataset on process 0 first (others wait), then opens it everywhere."""
  if jax.process_index() == 0:
    builder = datasets.prepare_dataset(config)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('landmarks_jax dataset prepared')
  if jax.process_index() != 0:
    builder = datasets.prepare_dataset(config)
  return builder


def _initial_state(
  config: ml_collections.ConfigDict, ckpts: checkpoints.Checkpoints, global_batch: int
) -> tuple[train_state.TrainState, list[int]]:
  """The newest readable checkpoint of the workdir, else a fresh state (initialised from resume_ckpt* if given).

  A checkpoint trained with other options is an error; an unreadable one is skipped for the next older one,
  saying so. Returns the state and the unreadable steps skipped (the caller moves them aside when it saves).
  """
  state = train_state.create_train_state(config)
  unreadable = []
  for step in reversed(ckpts.all_steps()):
    try:
      ckpts.check_options(step, config)
      state, meta = ckpts.restore(state, step)
    except checkpoints.CheckpointUnreadable as error:
      logging.warning('%s', error)
      unreadable.append(error)
      continue
    if meta.get('global_batch', global_batch) != global_batch:
      logging.warning(
        'Resuming with global batch %d, saved with %d: the data order changes from here on.',
        global_batch,
        meta['global_batch'],
      )
    skipped = [error.step for error in unreadable]
    if skipped:
      logging.warning(
        'Resumed from step %d, the newest readable checkpoint; unreadable steps %s will be moved to '
        '%s at the first save.',
        step,
        skipped,
        os.path.join(ckpts.workdir, checkpoints.UNREADABLE_DIR),
      )
    else:
      logging.info('Resumed from step %d.', step)
    return state, skipped
  if unreadable:
    raise checkpoints.CheckpointUnreadable(
      unreadable[0].step, f'{unreadable[0]}\nNone of the checkpoints {[e.step for e in unreadable]} is readable.'
    )
  if config.resume_ckpt:
    state = state.replace(generator=pretrained.generator_variables(config.resume_ckpt, config))
    logging.info('Generator initialised from %s.', config.resume_ckpt)
  if config.resume_ckpt_D and config.use_gan:
    state = state.replace(discriminator=pretrained.discriminator_variables(config.resume_ckpt_D, config))
    logging.info('Discriminator initialised from %s.', config.resume_ckpt_D)
  if config.resume_ckpt_opt_G or config.resume_ckpt_opt_D:
    logging.warning('resume_ckpt_opt_G/D are ignored: optimizer states resume with their workdir.')
  return state, []


def _check_finite(
  step: int, metrics: dict[str, float], last_saved: int | None, checked: tuple[int, int] | None = None
) -> None:
  """Raises NonFiniteLossError when a loss, or the weights after the update, of `step` are not finite.

  `checked` is the range of steps this report reads, which the message names beside the first bad step.
  """
  bad_loss = any(k.startswith('loss') and not np.isfinite(v) for k, v in metrics.items())
  bad_weights = metrics.get(train_step.WEIGHTS_FINITE, 1.0) < 1.0
  if bad_loss or bad_weights:
    terms = ', '.join(f'{k}={v}' for k, v in sorted(metrics.items()) if k != train_step.WEIGHTS_FINITE)
    what = 'Non-finite loss' if bad_loss else 'Weights became NaN or infinite'
    kept = f'the last checkpoint (step {last_saved}) is kept' if last_saved is not None else 'nothing was saved'
    checked_text = f', the first bad one of steps {checked[0]}..{checked[1]}' if checked else ''
    raise NonFiniteLossError(
      f'{what} at step {step}{checked_text} ({terms}); training stopped and {kept}. Try '
      'a lower --config.learning_rate, or gradient clipping (--config.no_grad_clip=False).'
    )


def _host_metrics(metrics: Any) -> dict[str, float]:
  return {k: float(v) for k, v in device_layout.unreplicate(metrics).items()}


def _console_line(
  step: int, num_steps: int, scalars: dict[str, float], steps_per_sec: float, seconds_left: float | None = None
) -> str:
  """One progress line; the ETA is the sooner of the last step and the time limit (`seconds_left`)."""
  losses = ' '.join(f'{k}={v:.4f}' for k, v in sorted(scalars.items()) if k.startswith('loss'))
  candidates = [max(seconds_left, 0)] if seconds_left is not None else []
  if steps_per_sec > 0:
    candidates.append((num_steps - step) / steps_per_sec)
  eta = datetime.timedelta(seconds=int(min(candidates))) if candidates else '?'
  return f'step {step}/{num_steps} | {losses} | {steps_per_sec:.2f} steps/s | ETA {eta}'


class Trainer:
  """Holds what one run needs and runs its loop; `train_and_evaluate` is the entry point."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.started = time.monotonic()
    # The options as given (what config.json and each checkpoint record), and as this run applies them
    # (batch_size per device, from global_batch_size when that is set).
    self.options, self.workdir = config, workdir
    self.config = config = config_checks.with_device_batch(config, jax.device_count())
    kernels.select_for(config)
    self.is_chief = jax.process_index() == 0
    # Everything is checked (config.json, the checkpoint's options and shapes, the data) before the first
    # file is written, so that a start that fails leaves the workdir as it found it.
    checkpoints.check_config(workdir, self.options)
    self.global_batch = config.batch_size * jax.device_count()
    self.ckpts = checkpoints.Checkpoints(workdir, config.max_to_keep, writer=self.is_chief)
    state, self.unreadable_steps = _initial_state(self.options, self.ckpts, self.global_batch)
    self.start_step = int(state.step)
    self.last_saved = self.start_step if self.ckpts.all_steps() else None
    self.builder = _prepare_data(config)
    self.train_source, self.train_videos = datasets.open_split(self.builder, 'train')
    if config.use_temporal:
      input_pipeline.check_temporal_range(self.train_videos, len(self.train_source), config.temporal_range)
    self.schedule = Schedule.from_config(
      config, input_pipeline.steps_per_epoch(len(self.train_source), self.global_batch)
    )
    if self.is_chief:
      checkpoints.write_config(workdir, self.options)
    self.writer = metric_writers.create_default_writer(workdir, just_logging=not self.is_chief)
    self.state = device_layout.replicate(state)
    self.vgg = device_layout.replicate(vgg_weights.vgg_params(config)) if config.use_vgg else None
    self.p_train_step = train_step.make_p_train_step(config)
    self.p_pictures = validation_passes.make_p_pictures(config) if self.schedule.images_every else None
    self.p_validation = validation_passes.make_p_validation_loss(config) if self.schedule.val_every else None

  def seconds_left(self) -> float | None:
    """Seconds until `time_limit_minutes` (counted from the start of this run) passes; None without a limit."""
    if self.config.time_limit_minutes <= 0:
      return None
    return 60 * self.config.time_limit_minutes - (time.monotonic() - self.started)

  def out_of_time(self) -> bool:
    """Whether the time limit has passed; every process takes process 0's answer, so all stop together."""
    seconds_left = self.seconds_left()
    if seconds_left is None:
      return False
    passed = seconds_left <= 0
    if jax.process_count() > 1:
      passed = bool(multihost_utils.broadcast_one_to_all(np.asarray(passed)))
    return passed

  def save(self, step: int) -> None:
    for unreadable in self.unreadable_steps:
      moved = self.ckpts.set_aside(unreadable)
      if moved:
        logging.warning('Moved unreadable checkpoint %d to %s.', unreadable, moved)
    self.unreadable_steps = []
    self.ckpts.save(
      step,
      device_layout.unreplicate(self.state),
      {
        'global_batch': self.global_batch,
        'input_position': step,
        checkpoints.OPTIONS_KEY: config_checks.plain_config(self.options),
      },
    )
    self.last_saved = step

  def write_pictures(self, step: int, batch: dict) -> None:
    rng = device_layout.replicate(jax.random.fold_in(jax.random.PRNGKey(self.config.seed), step))
    outputs = self.p_pictures(self.state.generator, batch, rng)
    local = jax.tree_util.tree_map(lambda x: device_layout.local_rows(x)[0], outputs)
    self.writer.write_images(step, train_visuals.training_images(local))

  def validate(self, step: int) -> None:
    source, videos = datasets.open_split(self.builder, 'validation')
    batches = input_pipeline.validation_batches(self.config, source, videos, **device_layout.host_layout())
    render_dir = os.path.join(self.workdir, 'val_renders', f'step_{step}') if self.is_chief else None
    with batches:
      loss = validation_passes.run_validation(
        self.p_validation, self.state.generator, self.vgg, batches, render_dir, self.config.num_val_images
      )
    self.writer.write_scalars(step, {'validation_loss': loss})
    logging.info('Validation loss at step %d: %.5f', step, loss)

  def evaluate_landmarks(self, step: int) -> dict:
    from landmarks_jax.evaluation import landmark_eval  # pylint: disable=g-import-not-at-top

    generator = device_layout.unreplicate(self.state.generator)
    metrics = landmark_eval.evaluate_landmarks(self.config, generator, self.workdir, step)
    self.writer.write_scalars(step, {f'eval/{k}': v for k, v in _flat_numbers(metrics).items()})
    return metrics

  def _collect(self, pending: list[tuple[int, Any]]) -> list[dict[str, float]]:
    """Brings the metrics of the steps since the last report to the host in one read, and checks each."""
    host = [_host_metrics(metrics) for _, metrics in pending]
    for (step, _), metrics in zip(pending, host):
      _check_finite(step, metrics, self.last_saved, checked=(pending[0][0], pending[-1][0]))
    return host

  def run(self) -> dict | None:
    """Trains from the start step to the end of the schedule or the time limit; returns the final evaluation.

    The host stays ahead of the devices: batches go to the devices two steps early, and the step's metrics
    stay there until a report (log line, pictures, validation, checkpoint, evaluation, the end), where they
    come back in one read and are checked. Only those reports read from the devices.
    """
    config, schedule = self.config, self.schedule
    logging.info(
      'Training steps %d..%d of %d (%d per epoch of %d frames; the last partial batch of each epoch '
      'is left out), global batch %d = %d per device x %d devices.',
      self.start_step + 1,
      schedule.num_steps,
      schedule.num_steps,
      schedule.steps_per_epoch,
      len(self.train_source),
      self.global_batch,
      config.batch_size,
      jax.device_count(),
    )
    logging.info('Operations: %s.', kernels.describe())
    hooks = []
    if self.is_chief:
      hooks.append(periodic_actions.ReportProgress(num_train_steps=schedule.num_steps, writer=self.writer))
    host_batches = input_pipeline.train_batches(
      config, self.train_source, self.train_videos, start_step=self.start_step, **device_layout.host_layout()
    )
    pending, history = [], []
    final_step = schedule.num_steps
    timer_step, timer_start = self.start_step, time.time()
    stop_requests = stop_signals.StopRequests()
    with host_batches, stop_requests:
      batches = device_layout.prefetch_to_devices(host_batches, DEVICE_PREFETCH)
      for step in range(self.start_step + 1, schedule.num_steps + 1):
        batch = next(batches)
        self.state, metrics = self.p_train_step(self.state, batch, self.vgg)
        pending.append((step, metrics))
        stopped_by = stop_requests.requested(step)
        for hook in hooks:
          hook(step)
        due = {
          name: schedule.due(step, period)
          for name, period in (
            ('log', schedule.log_every),
            ('save', schedule.save_every),
            ('eval', schedule.eval_every),
            ('pictures', schedule.images_every if self.p_pictures else 0),
            ('validation', schedule.val_every if self.p_validation else 0),
          )
        }
        # Several processes agree on the time limit through the devices, so only where they report anyway.
        out_of_time = (
          step < schedule.num_steps and (jax.process_count() == 1 or any(due.values())) and self.out_of_time()
        )
        last = step == schedule.num_steps or out_of_time or stopped_by is not None
        if not (last or any(due.values())):
          continue
        with jax.transfer_guard_device_to_host('allow'):  # the reports are the loop's only reads
          history += self._collect(pending)
          pending = []
          if last or due['log']:
            scalars = {
              k: float(np.mean([h[k] for h in history])) for k in history[-1] if k != train_step.WEIGHTS_FINITE
            }
            rate = (step - timer_step) / max(time.time() - timer_start, 1e-9)
            scalars.update(learning_rate=config.learning_rate, steps_per_sec=rate)
            self.writer.write_scalars(step, scalars)
            logging.info('%s', _console_line(step, schedule.num_steps, scalars, rate, self.seconds_left()))
            history, timer_step, timer_start = [], step, time.time()
          if due['pictures']:
            self.write_pictures(step, batch)
          if due['validation']:
            self.validate(step)
          if last or due['save']:
            self.save(step)
          if not last and due['eval']:
            self.evaluate_landmarks(step)
        if stopped_by is not None and step < schedule.num_steps:
          raise stop_signals.Stopped(
            f'Stopped by {stop_signals.name(stopped_by)} after step {step} of {schedule.num_steps}, saved as '
            f'checkpoint {step} in {self.ckpts.directory}. Run the same command to train on from there.',
            stopped_by,
          )
        if out_of_time:
          final_step = step
          logging.warning(
            'Time limit of %g minutes reached: stopped at step %d of %d and saved. Run the same '
            'command again to train on from there.',
            config.time_limit_minutes,
            step,
            schedule.num_steps,
          )
          break
    self.writer.flush()
    metrics = None
    if config.eval_at_end and final_step > 0:
      with jax.transfer_guard_device_to_host('allow'):
        metrics = self.evaluate_landmarks(final_step)
      self.writer.flush()
    return metrics


def _flat_numbers(tree: Any, prefix: str = '') -> dict[str, float]:
  flat = {}
  if isinstance(tree, dict):
    for k, v in tree.items():
      flat.update(_flat_numbers(v, f'{prefix}{k}/' if isinstance(v, dict) else f'{prefix}{k}'))
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    flat[prefix.rstrip('/')] = float(tree)
  return flat


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
  """Trains (resuming from the workdir's latest checkpoint) and evaluates the landmarks at the end."""
  config_checks.validate_training_config(config)
  lock = workdir_lock.WorkdirLock(workdir)
  if jax.process_index() == 0:
    lock.acquire()
  try:
    trainer = Trainer(config, workdir)
  except BaseException:
    lock.release(undo=True)
    raise
  try:
    return trainer.run()
  finally:
    trainer.ckpts.close()
    trainer.writer.close()
    lock.release()
