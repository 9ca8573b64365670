"""One training run per workdir: a lock the run holds on `workdir/.lock` while it trains.

The lock is the operating system's (`fcntl.flock`), so it ends with the process that holds it however that
process ends, `kill -9` included: a killed run never blocks the next one. The file itself stays and names the
last holder (host, process id, start time), which is what a refused second run reports.
"""

import datetime
import fcntl
import json
import os
import socket

from landmarks_jax import user_errors

LOCK_FILE = '.lock'


class WorkdirBusy(user_errors.UserError):
  """Another process is training in this workdir."""


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      holder = json.load(f)
    return f'process {holder["pid"]} on host {holder["host"]}, started {holder["started"]}'
  except (OSError, ValueError, KeyError, TypeError):
    return 'another process (it has not named itself yet)'


class WorkdirLock:
  """Holds `workdir/.lock` from `acquire` to `release` (or the end of the process)."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd = None
    self._created = ()  # what acquire made: the workdir and/or the lock file, removed again by release(undo=True)

  def acquire(self) -> None:
    """Takes the lock, creating the workdir if needed; raises WorkdirBusy naming the holder if it is taken."""
    created = [path for path in (self.workdir, self.path) if not os.path.exists(path)]
    os.makedirs(self.workdir, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise WorkdirBusy(
        f'{self.workdir} is in use by {_holder(self.path)}: one training run per '
        'workdir. Wait for it to end (or stop it), or train in another --workdir.'
      ) from None
    os.ftruncate(fd, 0)
    os.write(
      fd,
      json.dumps(
        {
          'host': socket.gethostname(),
          'pid': os.getpid(),
          'started': datetime.datetime.now().isoformat(timespec='seconds'),
        }
      ).encode(),
    )
    os.fsync(fd)
    self._fd, self._created = fd, tuple(created)

  def release(self, undo: bool = False) -> None:
    """Gives the lock up; idempotent. `undo`: also removes the lock file and the (then empty) workdir if
    `acquire` made them, for a run that stops before it writes anything."""
    if self._fd is None:
      return
    if undo and self.path in self._created:
      os.remove(self.path)
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None
    if undo and self.workdir in self._created and not os.listdir(self.workdir):
      os.rmdir(self.workdir)

  def __enter__(self) -> 'WorkdirLock':
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()
