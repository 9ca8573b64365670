"""Console logging: our progress lines stay visible; libraries' routine INFO messages are dropped."""

import errno
import logging
import os

from absl import logging as absl_logging

# Libraries that log every checkpoint write, dataset open and backend probe at INFO.
QUIET_PATHS = ('/orbax/', '/jax/_src/xla_bridge.py', '/tensorflow_datasets/', '/clu/')


# How tensorstore, under orbax, words a full disk; checkpoints.DiskFull reports it once, clearly.
OUT_OF_SPACE = (os.strerror(errno.ENOSPC), 'RESOURCE_EXHAUSTED')


class _QuietLibraries(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    if '/orbax/' in record.pathname and any(text in record.getMessage() for text in OUT_OF_SPACE):
      return False  # orbax's own report of each writer thread that failed on a full disk
    return record.levelno >= logging.WARNING or not any(p in record.pathname for p in QUIET_PATHS)


def quiet_libraries() -> None:
  """Keeps warnings from everyone, INFO only from landmarks_jax and the rest."""
  absl_logging.get_absl_handler().addFilter(_QuietLibraries())
