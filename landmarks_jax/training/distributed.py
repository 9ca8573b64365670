"""Joins a multi-host run through `jax.distributed`, before any other JAX call.

A run is multi-host when the config names a coordinator (`coordinator_address`, `num_processes`,
`process_id`, all three), or when SLURM starts several tasks (then JAX reads SLURM's variables itself).
"""

import os

import jax
import ml_collections

from landmarks_jax.training import config_checks


def initialize(config: ml_collections.ConfigDict) -> bool:
  """Initialises jax.distributed when the config or SLURM asks for it; returns whether it did."""
  explicit = (config.coordinator_address, config.num_processes > 0, config.process_id >= 0)
  if any(explicit):
    if not all(explicit):
      raise config_checks.ConfigError(
        'A multi-host run needs all of --config.coordinator_address=HOST:PORT, --config.num_processes=N and '
        f'--config.process_id=I (0 <= I < N); got {config.coordinator_address!r}, {config.num_processes}, '
        f'{config.process_id}.'
      )
    if not 0 <= config.process_id < config.num_processes:
      raise config_checks.ConfigError(
        f'config.process_id must lie in [0, {config.num_processes}), got {config.process_id}.'
      )
    jax.distributed.initialize(
      coordinator_address=config.coordinator_address, num_processes=config.num_processes, process_id=config.process_id
    )
    return True
  if int(os.environ.get('SLURM_NTASKS', '1')) > 1 and 'SLURM_PROCID' in os.environ:
    jax.distributed.initialize()
    return True
  return False
