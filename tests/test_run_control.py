"""The training command as a person or a scheduler meets it: events and pictures written, one run per workdir,
kill -9 leaving no process or shared memory behind and no lock in the way, SIGTERM saving before it exits."""

import glob
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_train import event_tags
from test_train import listing
from test_train import quick_config

from landmarks_jax.training import checkpoints
from landmarks_jax.training import train
from landmarks_jax.training import workdir_lock

import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Run:
  """A training command in a subprocess whose stderr is read as it comes; killed if a check fails."""

  def __init__(self, command):
    self.lines = []
    self.process = subprocess.Popen(
      command,
      cwd=REPO,
      env=subprocess_env.with_devices(2),
      text=True,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
    )
    self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
    self._reader.start()

  def wait_for(self, text, timeout=300):
    deadline = time.monotonic() + timeout
    while not any(text in line for line in self.lines):
      assert self.process.poll() is None, ''.join(self.lines)[-3000:]
      assert time.monotonic() < deadline, f'no {text!r} in {timeout} s:\n' + ''.join(self.lines)[-3000:]
      time.sleep(0.1)

  def finish(self, timeout=300):
    self.process.wait(timeout)
    self._reader.join(10)
    return ''.join(self.lines)

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait()


def _live(pids):
  """Those of `pids` that are running (not gone, not zombies)."""
  alive = []
  for pid in pids:
    try:
      with open(f'/proc/{pid}/stat') as f:
        if f.read().rsplit(')', 1)[1].split()[0] != 'Z':
          alive.append(pid)
    except OSError:
      pass
  return alive


def _children(pid):
  """The live processes whose parent is `pid`."""
  found = []
  for entry in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{entry}/stat') as f:
        if f.read().rsplit(')', 1)[1].split()[1] == str(pid):
          found.append(int(entry))
    except OSError:
      pass
  return _live(found)


def _shared_memory(pids=None):
  """The names under /dev/shm; with `pids`, those the processes map."""
  if pids is None:
    return set(os.listdir('/dev/shm'))
  names = set()
  for pid in pids:
    try:
      with open(f'/proc/{pid}/maps') as f:
        names.update(line.split('/dev/shm/')[1].split()[0] for line in f if '/dev/shm/' in line)
    except OSError:
      pass
  return names


@pytest.mark.skipif(not os.path.isdir('/dev/shm') or not os.path.isdir('/proc'), reason='needs Linux /proc, /dev/shm')
def test_the_command_holds_its_workdir_leaves_nothing_after_kill_9_and_saves_on_sigterm(tiny_mocap_data_dir, tmp_path):
  data_dir, workdir = tiny_mocap_data_dir, str(tmp_path / 'run')
  command = [
    sys.executable,
    '-m',
    'landmarks_jax.main',
    f'--config={REPO}/configs/test.py',
    f'--workdir={workdir}',
    f'--config.data_dir={data_dir}',
    '--config.eval_at_end=False',
    '--config.num_workers=1',
    '--config.num_train_steps=100000',
    '--config.save_every_steps=2',
    '--config.log_every_steps=1',
  ]
  with _Run(command) as run:
    run.wait_for('step 3/')
    # A second run on the same workdir is refused, naming the process that holds it, and writes nothing.
    before = set(listing(workdir))
    with pytest.raises(workdir_lock.WorkdirBusy, match=rf'in use by process {run.process.pid} on host'):
      train.train_and_evaluate(quick_config(data_dir, num_train_steps=100000), workdir)
    assert set(listing(workdir)) == before
    # kill -9: its input worker and Python's resource tracker end with it, and their shared memory goes.
    children = _children(run.process.pid)
    assert len(children) >= 2, children
    held = _shared_memory([run.process.pid] + children)
    assert held  # batches come through shared memory
    run.process.kill()
    run.finish()
  deadline = time.monotonic() + 10
  while (_live(children) or held & _shared_memory()) and time.monotonic() < deadline:
    time.sleep(0.2)
  assert not _live(children)
  assert not held & _shared_memory()
  killed_at = checkpoints.Checkpoints(workdir).latest_step()
  assert killed_at >= 2

  # The killed run's lock is in nobody's way; the next run resumes, and SIGTERM ends it with a save.
  with _Run(command) as run:
    run.wait_for(f'step {killed_at + 3}/')
    run.process.send_signal(signal.SIGTERM)
    stderr = run.finish()
  assert run.process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  assert f'Resumed from step {killed_at}' in stderr and 'step 1/' not in stderr
  last = checkpoints.Checkpoints(workdir).latest_step()
  assert last >= killed_at + 3
  assert f'Stopped by SIGTERM after step {last} of 100000, saved as checkpoint {last} in' in stderr
  assert 'Traceback' not in stderr and 'leaked shared_memory' not in stderr
  assert glob.glob(os.path.join(workdir, 'val_renders', 'step_*', '*.png'))
  assert {
    'target_reconstruction_background_foreground',
    'input_a_b',
    'raw_heatmap',
    'inputamask_inputbmask',
    'loss_vgg',
    'validation_loss',
  } <= event_tags(workdir)
