"""Checkpoints and the run's configuration in the workdir.

`workdir/checkpoints/<step>/` holds the whole training state (step, generator and discriminator variables,
both optimizer states, RNG) and a small JSON record (the input position, the global batch, where the weights
came from). The input pipeline is a pure function of the step, so the step is the exact input position.
`workdir/config.json` holds the resolved configuration; a run in a workdir whose configuration differs in
anything but the options below stops rather than mix two runs.
"""

import json
import os
from typing import Any

import flax
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from landmarks_jax import files

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'

# Options a resumed run may change: length, logging, machine and file locations.
RESUMABLE_OPTIONS = frozenset({
    'epochs', 'num_train_steps', 'time_limit_minutes', 'save_every_steps', 'max_to_keep', 'log_every_steps',
    'log_images_every_steps', 'val_every_steps', 'val_freq', 'save_freq', 'num_val_images', 'eval_every_steps',
    'eval_at_end', 'num_workers', 'prefetch_batches', 'coordinator_address', 'num_processes', 'process_id',
    'local_rank', 'use_DDP', 'data_dir', 'dataset_path', 'save_path', 'torch_home', 'vgg19_path', 'resume_ckpt',
    'resume_ckpt_D', 'resume_ckpt_opt_G', 'resume_ckpt_opt_D',
})


class ConfigMismatch(ValueError):
  """The workdir holds a run with another configuration."""


def _plain(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def write_or_check_config(workdir: str, config: ml_collections.ConfigDict, write: bool = True) -> None:
  """Writes config.json for a new run, or checks that a resumed run uses the same configuration."""
  path = os.path.join(workdir, CONFIG_FILE)
  current = _plain(config)
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    differing = sorted(k for k in set(previous) | set(current)
                       if k not in RESUMABLE_OPTIONS and previous.get(k) != current.get(k))
    if differing:
      lines = [f'  {k}: workdir has {previous.get(k)!r}, this run has {current.get(k)!r}' for k in differing]
      raise ConfigMismatch(f'{workdir} already holds a run with a different configuration:\n' + '\n'.join(lines) +
                           '\nUse another --workdir for a new run, or pass the same options to resume this one.')
  if write:
    os.makedirs(workdir, exist_ok=True)
    files.write_text_atomically(path, json.dumps(current, indent=2, sort_keys=True))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The configuration a workdir's run was trained with."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: is {workdir} a training workdir?')
  with open(path) as f:
    values = json.load(f)
  for key, value in values.items():
    if isinstance(value, list):
      values[key] = tuple(value)
  return ml_collections.ConfigDict(values)


class Checkpoints:
  """Saves and restores training states under `workdir/checkpoints` with orbax.

  Every process can restore; only processes created with `writer=True` save (process 0 in a multi-host run).
  """

  def __init__(self, workdir: str, max_to_keep: int = 3, writer: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
    self.writer = writer
    if writer:
      os.makedirs(self.directory, exist_ok=True)
    me = jax.process_index()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=False, enable_async_checkpointing=False,
        multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me}))
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    self._manager.reload()
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    self._manager.reload()
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Saves a host-side (unreplicated) state under `step`."""
    if not self.writer:
      return
    tree = jax.tree_util.tree_map(np.asarray, flax.serialization.to_state_dict(state))
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(dict(meta, step=step))), force=True)
    self._manager.wait_until_finished()

  def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
    """The state saved at `step` (default: the latest), shaped like `template`, and its JSON record."""
    step = self._resolve(step)
    target = jax.tree_util.tree_map(np.asarray, flax.serialization.to_state_dict(template))
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return flax.serialization.from_state_dict(template, restored['state']), dict(restored['meta'])

  def restore_raw(self, step: int | None = None) -> tuple[dict, dict]:
    """The saved state as nested dicts of numpy arrays, without a template, and its JSON record."""
    step = self._resolve(step)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    state = jax.tree_util.tree_map(np.asarray, restored['state'])
    return state, dict(restored['meta'])

  def _resolve(self, step: int | None) -> int:
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    if step is None:
      return max(steps)
    if step not in steps:
      raise FileNotFoundError(f'No checkpoint of step {step} in {self.directory}; saved steps: {sorted(steps)}.')
    return step

  def close(self) -> None:
    self._manager.close()
