"""Writing files whole or not at all: into a temporary file beside the target, then moved over it."""

import os
from typing import Callable


def write_atomically(path: str, write: Callable[[str], None]) -> str:
  """Calls write(temporary_path), then renames the result to `path`; a failure leaves `path` untouched.

  The temporary file is created with the usual permissions (the umask applies). Returns `path`.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  base, suffix = os.path.splitext(os.path.basename(path))
  temporary = os.path.join(folder, f'.{base}.{os.getpid()}.tmp{suffix}')
  try:
    write(temporary)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.unlink(temporary)
    raise
  return path


def write_text_atomically(path: str, text: str) -> str:
  """Writes `text` to `path` whole or not at all."""

  def write(temporary):
    with open(temporary, 'w') as f:
      f.write(text)

  return write_atomically(path, write)
