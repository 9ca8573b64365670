"""Tests of the training benchmark: its figures, and the command's one JSON line on the tiny config."""

import glob
import json
import os
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.bench import step_benchmark
from landmarks_jax.configs import test as test_config
from landmarks_jax.cpu import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 2


def test_flops_from_cost_analysis_reads_dicts_and_lists():
  assert step_benchmark.flops_from_cost_analysis({'flops': 12.0, 'bytes accessed': 3.0}) == 12.0
  assert step_benchmark.flops_from_cost_analysis([{'flops': 5.0}, {'flops': 7.0}]) == 12.0


@pytest.mark.parametrize('cost', [None, [], {}, {'bytes accessed': 3.0}, [{'flops': 5.0}, {}], {'flops': 0.0}])
def test_flops_from_cost_analysis_is_none_without_a_figure(cost):
  assert step_benchmark.flops_from_cost_analysis(cost) is None


def test_synthetic_batch_shapes_and_range():
  config = test_config.get_config()
  batch = step_benchmark.synthetic_batch(config, num_devices=3, seed=1)
  assert sorted(batch) == ['input_temporal', 'target']
  for images in batch.values():
    assert images.shape == (3, config.batch_size, config.img_size, config.img_size, 3)
    assert images.dtype == np.uint8  # as the input pipeline delivers frames
    assert images.min() < 10 and images.max() > 245
  assert not np.array_equal(batch['target'], batch['input_temporal'])


def test_flop_count_of_a_convolution_is_the_hand_count():
  batch, size, channels_in, channels_out, kernel = 8, 32, 32, 48, 3
  x = jnp.ones((batch, size, size, channels_in))
  w = jnp.ones((kernel, kernel, channels_in, channels_out))
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  figures, _ = step_benchmark.compile_and_time(conv, (x, w), num_runs=1)
  out = size - kernel + 1  # no padding, so every tap of every output is a real multiply-add
  multiply_adds = batch * out * out * channels_out * channels_in * kernel * kernel
  assert figures['gflop'] == pytest.approx(2 * multiply_adds / 1e9, rel=0.02)


@pytest.mark.parametrize(
  'kind, dtype, peak',
  [
    ('NVIDIA H100 80GB HBM3', 'bfloat16', 989.0),
    ('NVIDIA H200', 'float32', 495.0),
    ('NVIDIA A100-SXM4-40GB', 'bfloat16', 312.0),
    ('cpu', 'float32', None),
  ],
)
def test_peak_table_and_utilization(kind, dtype, peak):
  assert step_benchmark.peak_tflops(kind, dtype) == peak
  assert step_benchmark.utilization(494.5e3, 989.0) == 0.5
  assert step_benchmark.utilization(None, 989.0) is None and step_benchmark.utilization(1.0, None) is None


@pytest.mark.parametrize(
  'seconds, settling',
  [
    ([28.5, 19.7, 18.6], True),  # the original's first steps with glibc's defaults
    ([11.2, 11.2, 11.0], False),
    ([11.0, 12.5, 11.9], False),  # a slow later step is noise, not settling
    ([12.5, 10.9], True),
    ([12.0], False),  # one step: nothing to compare
  ],
)
def test_still_settling_compares_the_first_step_with_the_fastest_later_one(seconds, settling):
  assert step_benchmark.still_settling(seconds) == settling


def test_benchmark_rejects_no_steps():
  with pytest.raises(ValueError, match='num_steps'):
    step_benchmark.benchmark(test_config.get_config(), num_steps=0, warmup=0)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """The command's stdout and profile folder for a short run on the tiny config with --breakdown."""
  profile_dir = str(tmp_path_factory.mktemp('profile'))
  command = [
    sys.executable,
    '-m',
    'landmarks_jax.bench',
    '--config=configs/test.py',
    f'--num_steps={NUM_STEPS}',
    '--warmup=0',
    '--breakdown',
    f'--profile_dir={profile_dir}',
    '--profile_steps=1',
  ]
  # The environment carries conftest's two CPU devices and persistent compilation cache.
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ))
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout, profile_dir


def test_prints_one_json_line_with_the_configs_shape(run):
  stdout, _ = run
  lines = stdout.strip().splitlines()
  assert len(lines) == 1, stdout
  figures = json.loads(lines[0])
  config = test_config.get_config()
  assert figures['device_count'] == 2 and figures['local_device_count'] == 2
  assert figures['process_count'] == 1
  assert figures['global_batch'] == 2 * config.batch_size
  for name in ('img_size', 'batch_size', 'n_landmarks', 'use_fg_bg_mask', 'use_gan'):
    assert figures[name] == config[name], name
  assert figures['vgg_weights'] == 'random'
  assert figures['compute_dtype'] == 'float32'
  assert figures['peak_tflops_per_device'] == 'unknown' and figures['utilization'] == 'unknown'  # a CPU
  assert figures['host_cpu'] == xla_flags.host_cpu()  # the machine a timing came from


def test_step_times_and_rates_are_consistent(run):
  figures = json.loads(run[0])
  steps = figures['step_seconds']
  assert len(steps) == NUM_STEPS and min(steps) > 0
  assert figures['median_step_seconds'] == pytest.approx(statistics.median(steps), abs=1e-3)
  assert min(steps) - 1e-3 <= figures['mean_step_seconds'] <= max(steps) + 1e-3
  assert figures['images_per_second'] == pytest.approx(
    figures['global_batch'] / figures['median_step_seconds'], rel=1e-3
  )
  assert figures['compile_seconds'] >= figures['lowering_seconds'] > 0
  assert figures['peak_host_memory_mib'] > 0


def test_the_step_flops_count_both_devices_and_set_the_rate(run):
  figures = json.loads(run[0])
  # XLA:CPU reports FLOPs (the hand-count test above relies on it too), so a missing figure is a bug here.
  assert figures['step_gflop'] is not None and figures['step_gflop'] > 0
  assert figures['step_gflop'] == pytest.approx(2 * figures['gflop_per_device'], rel=1e-3)
  assert figures['achieved_gflop_per_second'] == pytest.approx(
    figures['step_gflop'] / figures['median_step_seconds'], rel=1e-2
  )


def test_breakdown_times_every_piece(run):
  pieces = json.loads(run[0])['breakdown']
  # The tiny config uses the VGG loss and the GAN.
  assert set(pieces) == {
    'augment',
    'generator_forward',
    'generator_forward_backward',
    'vgg_loss_forward_backward',
    'discriminator_forward_backward',
  }
  assert all(piece['median_seconds'] > 0 for piece in pieces.values())
  forward, both = pieces['generator_forward']['gflop'], pieces['generator_forward_backward']['gflop']
  if forward is not None and both is not None:
    assert both > forward  # the backward pass adds work


def test_profile_dir_receives_a_trace(run):
  assert glob.glob(os.path.join(run[1], '**', '*.xplane.pb'), recursive=True)
