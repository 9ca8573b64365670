"""One command that measures a GPU machine for training and prints the figures as one JSON document.

  python -m landmarks_jax.bench_gpus --config=configs/bbc.py > gpus.json

For float32 and bfloat16 (`compute_dtype`): images per second per device, the step time and the model FLOP
utilisation of the config's training step at a per-device batch of 16 and at the largest per-device batch that
fits in device memory, on one device and on all of them; then the host input pipeline's training pairs per
second with every host core making batches, on frames like BBC Pose's (720 x 405 JPEGs, generated in memory,
so no dataset is needed). The largest batch is estimated from XLA's memory analysis of the compiled step at
two batch sizes and then compiled and run; where the device reports no memory (a CPU), it is left out. About
10 minutes on one H100; the same command runs on a CPU, where the peak is 'unknown' (use a small config).
"""

import io
import json
import os
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np
from PIL import Image

from landmarks_jax.bench import step_benchmark
from landmarks_jax.cpu import process_settings
from landmarks_jax.data import input_pipeline
from landmarks_jax.training import distributed
from landmarks_jax.training import train_state
from landmarks_jax.training import train_step

FLAGS = flags.FLAGS
DTYPES = ('float32', 'bfloat16')
MEMORY_HEADROOM = 0.9  # of the device's memory, for the largest batch
FRAME_SIZE = (720, 405)


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  config_flags.DEFINE_config_file('config', None, 'Training configuration to measure.', lock_config=True)
  flags.DEFINE_integer('batch', 16, 'The per-device batch measured first.')
  flags.DEFINE_integer('num_steps', 5, 'Timed steps per measurement.')
  flags.DEFINE_integer('pipeline_batches', 40, 'Batches timed for the input pipeline (0: skip it).')
  flags.DEFINE_integer('pipeline_workers', 0, 'Worker processes of the input pipeline (0: every core but one).')
  flags.mark_flag_as_required('config')


def step_memory_bytes(config: ml_collections.ConfigDict, batch: int, devices: Sequence[jax.Device]) -> int | None:
  """Bytes one device needs for the compiled step at a per-device batch (XLA's memory analysis), or None."""
  config = config.copy_and_resolve_references()
  config.batch_size, config.global_batch_size = batch, 0
  state = jax.eval_shape(lambda: train_state.create_train_state(config))
  shape = (len(devices), batch, config.img_size, config.img_size, 3)
  images = jax.ShapeDtypeStruct(shape, np.uint8)
  step = train_step.make_p_train_step(config, devices)
  vgg = None
  if config.use_vgg:
    from landmarks_jax.weights import vgg_weights  # pylint: disable=g-import-not-at-top

    vgg = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct((len(devices),) + x.shape, x.dtype), vgg_weights.vgg_params(config)
    )
  replicated = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct((len(devices),) + x.shape, x.dtype), state)
  analysis = step.lower(replicated, {'target': images, 'input_temporal': images}, vgg).compile().memory_analysis()
  if analysis is None:
    return None
  return int(analysis.temp_size_in_bytes + analysis.argument_size_in_bytes + analysis.output_size_in_bytes)


def largest_batch(config: ml_collections.ConfigDict, batch: int, devices: Sequence[jax.Device]) -> int | None:
  """The largest per-device batch (a multiple of 8) whose step fits in device memory, by a linear fit of XLA's
  memory analysis at `batch` and 2 x `batch`; None where the device reports no memory limit."""
  stats = devices[0].memory_stats() or {}
  limit = stats.get('bytes_limit')
  if not limit:
    return None
  small, large = step_memory_bytes(config, batch, devices), step_memory_bytes(config, 2 * batch, devices)
  if small is None or large is None or large <= small:
    return None
  per_image = (large - small) / batch
  fixed = small - per_image * batch
  fits = int((MEMORY_HEADROOM * limit - fixed) // per_image)
  return max(8, fits // 8 * 8)


def measure_step(config: ml_collections.ConfigDict, batch: int, devices: Sequence[jax.Device], num_steps: int) -> dict:
  """step_benchmark.benchmark at a per-device batch on `devices`; an out-of-memory run is reported, not raised."""
  config = config.copy_and_resolve_references()
  config.batch_size, config.global_batch_size = batch, 0
  try:
    result = step_benchmark.benchmark(config, num_steps, warmup=1, devices=devices)
  except Exception as error:  # pylint: disable=broad-except
    if 'RESOURCE_EXHAUSTED' in str(error) or 'out of memory' in str(error).lower():
      return {'per_device_batch': batch, 'devices': len(devices), 'error': 'out of memory'}
    raise
  keys = (
    'images_per_second',
    'images_per_second_per_device',
    'median_step_seconds',
    'compile_seconds',
    'step_gflop',
    'achieved_gflop_per_second',
    'peak_tflops_per_device',
    'utilization',
  )
  return dict({'per_device_batch': batch, 'devices': len(devices)}, **{k: result[k] for k in keys})


def synthetic_frames(num_videos: int = 10, frames_per_video: int = 60, distinct: int = 24, seed: int = 0):
  """An in-memory frame source like BBC Pose's: 720 x 405 JPEGs (`distinct` of them, reused), crop boxes of
  about 300 px, and its video table."""
  rng = np.random.default_rng(seed)
  width, height = FRAME_SIZE
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  images = []
  for _ in range(distinct):
    channels = [127.5 + 120 * np.sin(rng.uniform(0.01, 0.08) * xs + rng.uniform(0.01, 0.08) * ys) for _ in 'rgb']
    buffer = io.BytesIO()
    Image.fromarray(np.stack(channels, -1).astype(np.uint8)).save(buffer, format='JPEG', quality=90)
    images.append(buffer.getvalue())
  source, videos = [], []
  for video in range(num_videos):
    videos.append([video, len(source), frames_per_video])
    for index in range(frames_per_video):
      x0, y0 = rng.uniform(0, width - 320), rng.uniform(0, height - 320)
      box = np.array([x0, y0, x0 + 300 + rng.uniform(0, 20), y0 + 300 + rng.uniform(0, 20)], np.float32)
      source.append(
        {
          'image': images[len(source) % distinct],
          'video': np.int32(video),
          'frame': np.int32(index),
          'frame_index': np.int32(index),
          'joints': np.zeros((7, 2), np.float32),
          'train_box': box,
          'eval_box': box,
        }
      )
  return source, videos


def measure_pipeline(config: ml_collections.ConfigDict, num_batches: int, workers: int) -> dict:
  """Training pairs per second of the host pipeline on synthetic BBC-sized frames, with `workers` processes."""
  config = config.copy_and_resolve_references()
  config.num_workers, config.batch_size, config.global_batch_size = workers, 16, 0
  source, videos = synthetic_frames()
  with input_pipeline.train_batches(
    config, source, videos, num_local_devices=1, process_index=0, process_count=1
  ) as batches:
    next(batches)
    start = time.perf_counter()
    for _ in range(num_batches):
      next(batches)
    seconds = time.perf_counter() - start
  pairs = num_batches * config.batch_size
  return {
    'pairs_per_second': round(pairs / seconds, 1),
    'workers': workers,
    'host_cores': os.cpu_count(),
    'pairs_per_second_per_worker': round(pairs / seconds / max(workers, 1), 1),
    'img_size': config.img_size,
    'reduced_decode': config.reduced_decode,
  }


def run(
  config: ml_collections.ConfigDict, batch: int, num_steps: int, pipeline_batches: int, pipeline_workers: int
) -> dict[str, Any]:
  """Every measurement of the command, as one dict."""
  started = time.perf_counter()
  all_devices = jax.local_devices()
  device_sets = [all_devices[:1]] + ([all_devices] if len(all_devices) > 1 else [])
  steps = []
  for dtype in DTYPES:
    dtype_config = config.copy_and_resolve_references()
    dtype_config.compute_dtype = dtype
    largest = largest_batch(dtype_config, batch, all_devices[:1])
    for devices in device_sets:
      for per_device in [batch] + ([largest] if largest and largest != batch else []):
        steps.append(
          dict(
            measure_step(dtype_config, per_device, devices, num_steps),
            compute_dtype=dtype,
            largest_batch=per_device == largest,
          )
        )
  result = {
    'config_img_size': config.img_size,
    'device_kind': all_devices[0].device_kind,
    'platform': all_devices[0].platform,
    'local_devices': len(all_devices),
    'steps': steps,
  }
  if pipeline_batches > 0:
    workers = pipeline_workers or max(1, (os.cpu_count() or 2) - 1)
    result['input_pipeline'] = measure_pipeline(config, pipeline_batches, workers)
  result['seconds'] = round(time.perf_counter() - started, 1)
  result['jax_version'] = jax.__version__
  return result


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  process_settings.apply()
  distributed.initialize(FLAGS.config)
  print(
    json.dumps(
      run(FLAGS.config, FLAGS.batch, FLAGS.num_steps, FLAGS.pipeline_batches, FLAGS.pipeline_workers), indent=1
    ),
    flush=True,
  )


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
