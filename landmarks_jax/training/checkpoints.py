"""Checkpoints and the run's configuration in the workdir.

`workdir/checkpoints/<step>/` holds the whole training state (step, generator and discriminator variables,
both optimizer states, RNG) and a small JSON record (the input position, the global batch, where the weights
came from, and the options the state was trained with). The input pipeline is a pure function of the step, so
the step is the exact input position. `workdir/config.json` holds the resolved configuration; a run in a
workdir whose configuration differs in anything but the options below stops rather than mix two runs, and so
does a run whose options differ from those its checkpoint records (config.json may have been edited or lost).

Nothing is written before these checks pass, and no state with a non-finite array is ever saved. A checkpoint
that cannot be read is reported by step and file, with the older steps that exist.
"""

import errno
import json
import os
import re
import shutil
import sys
from typing import Any, Collection, Mapping, Sequence

import flax
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from landmarks_jax import user_errors
from landmarks_jax.configs import default as default_config
from landmarks_jax.data import files
from landmarks_jax.training import config_checks

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'
# Where training moves a checkpoint it cannot read, so that its step can be saved again and nothing is lost.
UNREADABLE_DIR = 'unreadable_checkpoints'
# The key of a checkpoint's JSON record that holds the options it was trained with.
OPTIONS_KEY = 'config'
_JSON_FILES = ('_CHECKPOINT_METADATA', 'meta/metadata', 'state/_METADATA')


class ConfigMismatch(user_errors.UserError, ValueError):
  """The workdir holds a run with another configuration."""


class CheckpointMismatch(user_errors.UserError, ValueError):
  """A checkpoint was trained with other options, or its arrays do not fit this configuration's networks."""


class NoCheckpoint(user_errors.UserError, FileNotFoundError):
  """The asked-for step (or any step) was never saved in this workdir; the message lists what to pass."""


class CheckpointUnreadable(user_errors.UserError, RuntimeError):
  """A checkpoint's files are damaged or missing; the message names the step, the file and the older steps."""

  def __init__(self, step: int, message: str):
    super().__init__(message)
    self.step = step


class DiskFull(user_errors.UserError, OSError):
  """The disk filled up while a checkpoint was written; the message names it, the step and the last good one."""


class NonFiniteState(FloatingPointError):
  """A state holding NaN or infinite arrays was about to be saved."""


def option_differences(
  previous: Mapping[str, Any], current: Mapping[str, Any], names: Collection[str] | None = None, saved_as: str = 'saved'
) -> list[str]:
  """One line per option that differs: `names`, or every option but the resumable ones."""
  if names is None:
    names = {k for k in set(previous) | set(current) if k not in config_checks.RESUMABLE_OPTIONS}
  # An option added after the record was written counts as its default there (what that run did).
  defaults = default_config.get_config()
  previous = {k: previous.get(k, defaults.get(k)) for k in names}
  return [
    f'  {k}: {saved_as} {previous.get(k)!r}, this run has {current.get(k)!r}'
    for k in sorted(names)
    if previous.get(k) != current.get(k)
  ]


def check_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Raises ConfigMismatch when the workdir's config.json differs from `config` in a non-resumable option."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  try:
    with open(path) as f:
      previous = json.load(f)
  except (OSError, ValueError) as error:
    raise ConfigMismatch(
      f'{path} is unreadable ({error}); restore it, or move it away to resume with the '
      "options this run's checkpoint records."
    ) from error
  lines = option_differences(previous, config_checks.plain_config(config), saved_as='workdir has')
  if lines:
    raise ConfigMismatch(
      f'{workdir} already holds a run with a different configuration:\n'
      + '\n'.join(lines)
      + '\nUse another --workdir for a new run, or pass the same options to resume this one.'
    )


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes the workdir's config.json whole."""
  os.makedirs(workdir, exist_ok=True)
  files.write_text_atomically(
    os.path.join(workdir, CONFIG_FILE), json.dumps(config_checks.plain_config(config), indent=2, sort_keys=True)
  )


def write_or_check_config(workdir: str, config: ml_collections.ConfigDict, write: bool = True) -> None:
  """Checks that a resumed run uses the workdir's configuration, then (with `write`) writes config.json."""
  check_config(workdir, config)
  if write:
    write_config(workdir, config)


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The configuration a workdir's run was trained with. An option added after its config.json was written is
  there with its default (what that run did), so that `--config.NAME=VALUE` can change it."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir} a training workdir?')
  try:
    with open(path) as f:
      values = json.load(f)
  except ValueError as error:
    raise ConfigMismatch(f"{path} is not valid JSON ({error}); restore it, or pass the run's --config.") from error
  values = {**config_checks.plain_config(default_config.get_config()), **values}
  for key, value in values.items():
    if isinstance(value, list):
      values[key] = tuple(value)
  return ml_collections.ConfigDict(values)


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{'a/b/c': shape} of every array of a nested dict (or orbax's tree metadata)."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {
    '/'.join(str(getattr(k, 'key', k)) for k in path): tuple(value.shape)
    if hasattr(value, 'shape')
    else tuple(np.shape(value))
    for path, value in leaves
  }


def shape_differences(saved: Any, expected: Any) -> list[str]:
  """One line per array whose shape differs between two trees, or that only one of them holds."""
  found, wanted = _shapes(saved), _shapes(expected)
  lines = [
    f'{name} is {found[name]} in the checkpoint but {shape} for the config'
    for name, shape in sorted(wanted.items())
    if name in found and found[name] != shape
  ]
  lines += [f'{name} is missing from the checkpoint' for name in sorted(set(wanted) - set(found))]
  lines += [f'{name} is in the checkpoint but not in the model' for name in sorted(set(found) - set(wanted))]
  return lines


def shown_lines(lines: Sequence[str], limit: int = 6) -> str:
  """The first `limit` lines, each on its own indented line, and how many more there are (for error messages)."""
  more = f'\n  ... and {len(lines) - limit} more' if len(lines) > limit else ''
  return '  ' + '\n  '.join(lines[:limit]) + more


def _closed_event_loop(error: BaseException | None) -> bool:
  return isinstance(error, RuntimeError) and str(error) == 'Event loop is closed'


def _ignore_reports_of_closed_event_loops() -> None:
  """Silences the reports tensorstore's late reads and writes make after a failed restore or save, once per
  process.

  When one array of a checkpoint fails to read or write (a damaged file, a full disk), orbax closes its event
  loop while tensorstore still has operations in flight; each of them then reports 'Event loop is closed', as an
  unraisable exception or printed from tensorstore's own threads through sys.excepthook: dozens to hundreds of
  tracebacks that hide the cause.
  """
  if getattr(sys.unraisablehook, 'ignores_closed_event_loops', False):
    return
  unraisable, excepthook = sys.unraisablehook, sys.excepthook

  def unraisable_hook(report):
    if not _closed_event_loop(report.exc_value):
      unraisable(report)

  def except_hook(kind, value, traceback):
    if not _closed_event_loop(value):
      excepthook(kind, value, traceback)

  unraisable_hook.ignores_closed_event_loops = True
  sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook


def _out_of_space(error: BaseException) -> bool:
  """Whether `error`, or an error it was raised from or during, is a full disk (errno ENOSPC).

  tensorstore and orbax pass the operating system's error on as text inside their own exceptions.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return True
    if os.strerror(errno.ENOSPC) in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def _disk_full_message(directory: str, step: int, last_good: int | None) -> str:
  try:
    free = f'{shutil.disk_usage(directory).free / 2**20:.0f} MB free now'
  except OSError:
    free = 'free space unknown'
  kept = (
    f'the last good checkpoint is step {last_good}, and the same command trains on from it once there is room'
    if last_good is not None
    else 'no checkpoint was saved before it'
  )
  return (
    f'The disk holding {directory} is full ({free}): checkpoint {step} could not be written, and {kept}. '
    'Free space there (a checkpoint of this run needs about as much as the last one in that folder), or '
    'keep fewer with --config.max_to_keep.'
  )


def _damaged_file(step_dir: str, error: BaseException) -> str:
  """The file or folder of a checkpoint that an orbax or tensorstore error points at, as well as can be told."""
  for name in _JSON_FILES:
    path = os.path.join(step_dir, name)
    if os.path.exists(path):
      try:
        with open(path) as f:
          json.load(f)
      except (OSError, ValueError):
        return f'{path} (not valid JSON)'
  text = str(error)
  if match := re.search(r'Error reading "([^"]+)" in OCDBT database at local file "([^"]+)"', text):
    return f'a data file under {match.group(2)} (array {match.group(1)})'
  for item in ('state', 'meta'):
    if not os.path.isdir(os.path.join(step_dir, item)):
      return f'{os.path.join(step_dir, item)} (missing)'
  return step_dir


class Checkpoints:
  """Saves and restores training states under `workdir/checkpoints` with orbax.

  Every process can restore; only processes created with `writer=True` save (process 0 in a multi-host run).
  Nothing is created on disk before the first save.
  """

  def __init__(self, workdir: str, max_to_keep: int = 3, writer: bool = True):
    self.workdir = workdir
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
    self.writer = writer
    me = jax.process_index()
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      create=False,
      enable_async_checkpointing=False,
      multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me}),
    )
    self._manager = ocp.CheckpointManager(
      self.directory,
      options=options,
      item_handlers={'state': ocp.StandardCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()},
    )

  def latest_step(self) -> int | None:
    self._manager.reload()
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Saves a host-side (unreplicated) state under `step`; refuses one with a non-finite array."""
    if not self.writer:
      return
    tree = jax.tree_util.tree_map(np.asarray, flax.serialization.to_state_dict(state))
    flat = flax.traverse_util.flatten_dict(tree) if isinstance(tree, dict) else {}
    bad = [
      '/'.join(map(str, path))
      for path, value in flat.items()
      if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value))
    ]
    if bad:
      raise NonFiniteState(
        f'Not saving step {step}: {len(bad)} arrays of the state hold NaN or infinite values (first: {bad[0]}).'
      )
    last_good = self.latest_step()
    _ignore_reports_of_closed_event_loops()
    try:
      os.makedirs(self.directory, exist_ok=True)
      self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(dict(meta, step=step))),
        force=True,
      )
      self._manager.wait_until_finished()
    except Exception as error:  # pylint: disable=broad-except
      if not _out_of_space(error):
        raise
      raise DiskFull(_disk_full_message(self.directory, step, last_good)) from None

  def _unreadable(self, step: int, error: BaseException) -> CheckpointUnreadable:
    step_dir = os.path.join(self.directory, str(step))
    cause = ' '.join(str(error).split())[:400] or type(error).__name__
    older = [s for s in self.all_steps() if s < step]
    lines = [
      f'Checkpoint {step} in {self.directory} is unreadable: {cause}',
      f'  Damaged: {_damaged_file(step_dir, error)}',
    ]
    if older:
      lines += [
        f'  Older checkpoints: steps {", ".join(map(str, reversed(older)))}.',
        f'  Evaluate one: python -m landmarks_jax.evaluate --workdir={self.workdir} --step={older[-1]}',
        f'  Training on resumes from the newest readable one by itself and moves step {step} to '
        f'{os.path.join(self.workdir, UNREADABLE_DIR)}.',
      ]
    else:
      lines.append(
        '  No older checkpoint exists; restore the files, or move the checkpoints folder away to train from the start.'
      )
    return CheckpointUnreadable(step, '\n'.join(lines))

  def _restore(self, step: int, **items) -> dict:
    """orbax's restore of the given items; a damaged checkpoint becomes CheckpointUnreadable."""
    _ignore_reports_of_closed_event_loops()
    try:
      return self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:  # pylint: disable=broad-except
      raise self._unreadable(step, error) from error

  def meta(self, step: int | None = None) -> dict:
    """The JSON record saved with `step` (default: the latest), without reading the arrays."""
    step = self.resolve_step(step)
    return dict(self._restore(step, meta=ocp.args.JsonRestore())['meta'])

  def check_options(
    self,
    step: int,
    config: ml_collections.ConfigDict,
    names: Collection[str] | None = None,
    fix: str = 'Pass the options it was trained with (as --config.NAME=VALUE), or use another --workdir for a new run.',
  ) -> None:
    """Raises CheckpointMismatch, ending with `fix`, when the options saved with `step` differ from config's
    (`names`, or all but the resumable ones). Checkpoints saved without their options pass; their shapes are
    checked on restore."""
    saved = self.meta(step).get(OPTIONS_KEY)
    if saved is None:
      return
    lines = option_differences(saved, config_checks.plain_config(config), names, saved_as='checkpoint has')
    if lines:
      raise CheckpointMismatch(
        f'Checkpoint {step} in {self.directory} was trained with other options:\n' + '\n'.join(lines) + '\n' + fix
      )

  def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
    """The state saved at `step` (default: the latest), shaped like `template`, and its JSON record."""
    step = self.resolve_step(step)
    target = jax.tree_util.tree_map(np.asarray, flax.serialization.to_state_dict(template))
    try:
      saved = self._manager.item_metadata(step)['state']
    except Exception as error:  # pylint: disable=broad-except
      raise self._unreadable(step, error) from error
    if saved is None:
      raise self._unreadable(step, FileNotFoundError('the state has no readable metadata'))
    lines = shape_differences(saved, target)
    if lines:
      raise CheckpointMismatch(
        f'Checkpoint {step} in {self.directory} does not fit the networks of this '
        f'configuration:\n{shown_lines(lines)}\nPass the options the run was trained with.'
      )
    restored = self._restore(step, state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
    return flax.serialization.from_state_dict(template, restored['state']), dict(restored['meta'])

  def restore_raw(self, step: int | None = None) -> tuple[dict, dict]:
    """The saved state as nested dicts of numpy arrays, without a template, and its JSON record."""
    step = self.resolve_step(step)
    restored = self._restore(step, state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
    state = jax.tree_util.tree_map(np.asarray, restored['state'])
    return state, dict(restored['meta'])

  def set_aside(self, step: int) -> str | None:
    """Moves an unreadable checkpoint out of the checkpoints folder (writers only); returns where it went."""
    if not self.writer:
      return None
    source = os.path.join(self.directory, str(step))
    target = os.path.join(self.workdir, UNREADABLE_DIR, str(step))
    suffix = 1
    while os.path.exists(target):
      target = os.path.join(self.workdir, UNREADABLE_DIR, f'{step}.{suffix}')
      suffix += 1
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.move(source, target)
    self._manager.reload()
    return target

  def resolve_step(self, step: int | None) -> int:
    """`step` if it was saved, the latest saved step if `step` is None; otherwise NoCheckpoint, saying which
    steps exist and what to pass."""
    if not os.path.isdir(self.directory):
      raise NoCheckpoint(
        f'No checkpoint in {self.workdir}: {self.directory} does not exist. Pass the --workdir of a training run.'
      )
    steps = self.all_steps()
    if not steps:
      raise NoCheckpoint(
        f'No checkpoint in {self.directory}: it holds no saved step. Train first, or pass the '
        '--workdir of a run that saved one.'
      )
    if step is None:
      return steps[-1]
    if step not in steps:
      raise NoCheckpoint(
        f'No checkpoint of step {step} in {self.directory}; saved steps: {steps}. Pass one of '
        f'them as --step, or leave --step out for the latest ({steps[-1]}).'
      )
    return step

  def close(self) -> None:
    self._manager.close()
