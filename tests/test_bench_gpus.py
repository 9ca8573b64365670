"""The GPU machine's benchmark command: which steps it measures, and its input-pipeline figure, on the CPU.

The step measurements themselves are `step_benchmark.benchmark`'s (tests/test_bench.py runs it); here it is replaced by
a recorder, so that the test checks what the command asks for without compiling four training steps.
"""

import jax

from landmarks_jax.bench import gpus
from landmarks_jax.bench import step_benchmark
from landmarks_jax.configs import test as test_config


def test_measures_both_precisions_on_one_and_all_devices_and_the_pipeline(monkeypatch):
  asked = []

  def recorder(config, num_steps, warmup, devices=None, **unused):
    asked.append((config.compute_dtype, config.batch_size, config.global_batch_size, len(devices)))
    return {
      'images_per_second': 8.0,
      'images_per_second_per_device': 4.0,
      'median_step_seconds': 0.5,
      'compile_seconds': 1.0,
      'step_gflop': 1.0,
      'achieved_gflop_per_second': 2.0,
      'peak_tflops_per_device': 'unknown',
      'utilization': 'unknown',
    }

  monkeypatch.setattr(step_benchmark, 'benchmark', recorder)
  config = test_config.get_config()
  result = gpus.run(config, batch=16, num_steps=1, pipeline_batches=3, pipeline_workers=1)
  assert sorted(asked) == sorted([(dtype, 16, 0, devices) for dtype in ('float32', 'bfloat16') for devices in (1, 2)])
  assert result['platform'] == 'cpu' and result['local_devices'] == 2 and len(result['steps']) == 4
  assert all(step['images_per_second_per_device'] == 4.0 and not step['largest_batch'] for step in result['steps'])
  pipeline = result['input_pipeline']
  assert pipeline['workers'] == 1 and pipeline['pairs_per_second'] > 0


def test_a_device_without_a_memory_limit_has_no_largest_batch():
  assert gpus.largest_batch(test_config.get_config(), 1, jax.local_devices()[:1]) is None


def test_synthetic_frames_are_bbc_sized_jpegs_with_300_px_boxes():
  source, videos = gpus.synthetic_frames(num_videos=2, frames_per_video=3, distinct=2)
  assert videos == [[0, 0, 3], [1, 3, 3]] and len(source) == 6
  assert source[0]['image'][:2] == b'\xff\xd8'  # JPEG
  box = source[0]['train_box']
  assert 300 <= box[2] - box[0] <= 320 and box[2] <= gpus.FRAME_SIZE[0]
