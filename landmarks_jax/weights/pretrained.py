"""Initial weights from elsewhere: a checkpoint of the PyTorch original (.ckpt/.pth) or of another workdir."""

import os
from typing import Any

import ml_collections

from landmarks_jax.training import checkpoints
from landmarks_jax.training.train_state import variable_shapes
from landmarks_jax.weights.original_checkpoints import torch_file_reader
from landmarks_jax.weights.original_checkpoints import weight_mapping

TORCH_SUFFIXES = ('.ckpt', '.pth', '.pt')


def _is_torch_file(path: str) -> bool:
  return os.path.isfile(path) and path.endswith(TORCH_SUFFIXES)


def _from_workdir(path: str, key: str, template: Any) -> Any:
  state, _ = checkpoints.Checkpoints(path, writer=False).restore_raw()
  variables = state[key]
  problems = checkpoints.shape_differences(variables, template)
  if problems:
    raise weight_mapping.StateDictMismatch(
      f'The {key} weights in {path} do not fit this configuration:\n'
      f'{checkpoints.shown_lines(problems)}\n'
      'Train or evaluate with the configuration of that run.'
    )
  return variables


def _load(path: str, key: str, template: Any, from_torch) -> Any:
  if _is_torch_file(path):
    return from_torch(torch_file_reader.load_state_dict(path), template)
  if os.path.isdir(path):
    return _from_workdir(path, key, template)
  raise FileNotFoundError(f'{path} is neither a PyTorch checkpoint ({", ".join(TORCH_SUFFIXES)}) nor a workdir.')


def generator_variables(path: str, config: ml_collections.ConfigDict) -> Any:
  """Generator variables from an original checkpoint file or a workdir (its latest checkpoint)."""
  template, _ = variable_shapes(config)
  return _load(path, 'generator', template, weight_mapping.model_variables_from_torch)


def discriminator_variables(path: str, config: ml_collections.ConfigDict) -> Any:
  """Discriminator variables from an original checkpoint file or a workdir."""
  _, template = variable_shapes(config)
  return _load(path, 'discriminator', template, weight_mapping.discriminator_variables_from_torch)
