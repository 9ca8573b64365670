"""Measures the host input pipeline alone: training pairs per second at a config's image and batch size.

  python -m landmarks_jax.bench_input --config=configs/default.py --config.dataset=humanoid_mocap \
      --num_batches=100

Builds the config's dataset if needed, runs the training pipeline of one process and prints one JSON line.
The first batch (thread start-up and the first decodes) is not timed.
"""

import json
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from landmarks_jax.cpu import process_settings
from landmarks_jax.data import datasets
from landmarks_jax.data import input_pipeline
from landmarks_jax.training import config_checks

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
  flags.DEFINE_integer('num_batches', 50, 'Batches to time after the first.')
  flags.DEFINE_integer('num_local_devices', 1, 'Local devices the batches are shaped for.')
  flags.mark_flags_as_required(['config'])


def benchmark(config, num_batches: int, num_local_devices: int) -> dict:
  """Times `num_batches` training batches after the first; returns the figures as a dict."""
  config = config_checks.with_device_batch(config, num_local_devices)
  source, videos = datasets.open_split(datasets.prepare_dataset(config), 'train')
  with input_pipeline.train_batches(
    config, source, videos, num_local_devices=num_local_devices, process_index=0, process_count=1
  ) as batches:
    next(batches)
    start = time.perf_counter()
    for _ in range(num_batches):
      next(batches)
    seconds = time.perf_counter() - start
  pairs = num_batches * num_local_devices * config.batch_size
  return {
    'pairs_per_second': round(pairs / seconds, 2),
    'batches': num_batches,
    'seconds': round(seconds, 3),
    'num_workers': config.num_workers,
    'img_size': config.img_size,
    'batch_size': config.batch_size,
    'num_local_devices': num_local_devices,
    'dataset': f'{config.dataset}/{config.dataset_variant}' if config.dataset == 'humanoid_mocap' else config.dataset,
    'train_records': len(source),
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  process_settings.apply()
  print(json.dumps(benchmark(FLAGS.config, FLAGS.num_batches, FLAGS.num_local_devices)))


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
