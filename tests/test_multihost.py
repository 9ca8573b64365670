"""Two processes on 127.0.0.1 (one CPU device each) train like one process (this one, two CPU devices) with the
same global batch."""

import os
import socket
import subprocess
import sys

import numpy as np

from landmarks_jax.training import checkpoints

import multihost_worker
import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_STEPS = 4


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def worker(args, devices):
  # The workers train with cpu_kernels='xla': oneDNN's kernel gradients sum in an order that depends on how many
  # threads a process gives them, and four steps of this tiny training grow any rounding difference to 7e-3 (as
  # they do between XLA's convolutions with and without its YNNPACK fusions); the test is about distribution.
  env = subprocess_env.with_devices(devices)
  return subprocess.Popen(
    [sys.executable, os.path.join(HERE, 'multihost_worker.py')] + [str(a) for a in args],
    cwd=os.path.dirname(HERE),
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def finish(process):
  output, _ = process.communicate(timeout=900)
  assert process.returncode == 0, output[-4000:]
  return output


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_mocap_data_dir):
  data_dir = tiny_mocap_data_dir  # built before the processes start

  address = f'127.0.0.1:{free_port()}'
  multi = [
    worker([tmp_path / 'multi', data_dir, tmp_path / f'multi_{i}.npz', NUM_STEPS, address, 2, i], 1) for i in range(2)
  ]
  # The same training on this process's two devices, while the two processes run.
  multihost_worker.main(str(tmp_path / 'single'), data_dir, str(tmp_path / 'single.npz'), NUM_STEPS)
  for process in multi:
    finish(process)

  results = [dict(np.load(tmp_path / f'{name}.npz')) for name in ('multi_0', 'multi_1', 'single')]
  assert results[0].keys() == results[2].keys()
  for key in results[0]:
    np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=f'processes differ in {key}')
    np.testing.assert_allclose(
      results[0][key], results[2][key], rtol=1e-4, atol=1e-5, err_msg=f'multi-host and single-host runs differ in {key}'
    )
  # Only process 0 wrote checkpoints and the summaries, and the checkpoints hold the trained steps.
  assert checkpoints.Checkpoints(str(tmp_path / 'multi')).all_steps() == [2, 4]
  assert len([f for f in os.listdir(tmp_path / 'multi') if f.startswith('events.out')]) == 1
