"""SIGTERM and Ctrl-C during training: finish the step, save it, and stop with a message.

Batch schedulers and preemptible machines send SIGTERM some time before they kill; a person presses Ctrl-C.
While the training loop runs, either one only marks a stop as requested; the loop finishes its step, saves a
checkpoint and raises `Stopped`, so that the same command trains on from exactly there. A second Ctrl-C stops
at once (KeyboardInterrupt, nothing saved beyond the last checkpoint). With several processes, each asks the
others at steps they all check (`agree_every`) and all stop after the same step.
"""

import signal
import threading
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def name(signum: int) -> str:
  """How a person knows the signal: Ctrl-C for SIGINT, else its name."""
  return 'Ctrl-C' if signum == signal.SIGINT else signal.Signals(signum).name


class Stopped(Exception):
  """Training stopped on a signal after saving; `exit_status` is the shell's 128 + the signal's number."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_status(self) -> int:
    return 128 + self.signum


class StopRequests:
  """Catches SIGTERM and SIGINT inside a `with` block and tells the loop whether to stop.

  Outside the main thread (where Python cannot set handlers) it catches nothing and never asks to stop.
  """

  def __init__(self, agree_every: int = 10):
    self.agree_every = agree_every
    self.signum = None
    self._previous: dict[int, Any] = {}

  def _handle(self, signum: int, frame) -> None:
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    if self.signum is None:
      self.signum = signum
      logging.warning(
        '%s received: finishing this step, saving and stopping%s.',
        name(signum),
        ' (Ctrl-C again stops at once, without saving)' if signum == signal.SIGINT else '',
      )

  def __enter__(self) -> 'StopRequests':
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def requested(self, step: int) -> int | None:
    """The signal to stop on after `step`, or None. Every process must call it after every step.

    With several processes, they compare notes only every `agree_every` steps (a collective), and a signal
    any of them caught stops all of them there.
    """
    if jax.process_count() == 1:
      return self.signum
    if step % self.agree_every:
      return None
    caught = multihost_utils.process_allgather(np.asarray(self.signum or 0, np.int32))
    caught = [int(s) for s in np.ravel(caught) if s]
    return caught[0] if caught else None
