"""glibc's malloc set to keep freed memory for reuse, where JAX computes on the CPU.

XLA:CPU allocates each execution's temporary buffers afresh, several GB in one block for the BBC Pose step.
glibc serves a block that large with a new mapping and unmaps it when it is freed, so every step faults it back
in, a page at a time. With one arena, no mappings and no trimming, a freed block stays in the heap and the next
step reuses it. The process then keeps up to one more step's buffers resident. docs/benchmarks.md ("Host
memory") has the step times, page faults and peak memory either way.

Each command applies this when it starts (`process_settings.py`), before JAX starts its CPU backend (whose
threads would otherwise take arenas of their own, which glibc always lets map), where all of these hold:
- the C library is glibc and no other allocator is preloaded (LD_PRELOAD);
- JAX will compute on the CPU: JAX_PLATFORMS is 'cpu', or unset with no GPU or TPU plugin installed;
- the environment sets none of glibc's own malloc settings (MALLOC_*, or glibc.malloc in GLIBC_TUNABLES): a
  user's own choice always wins (MALLOC_ARENA_MAX=8, for one, keeps glibc's defaults otherwise).
"""

import ctypes
import importlib.metadata
import importlib.util
import os
from typing import Any, Mapping

# mallopt's parameters (glibc's malloc.h) and the values set: one arena, no mappings, never trim (-1).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1))

_applied_here = False


def computes_on_cpu(environ: Mapping[str, str]) -> bool:
  """Whether JAX will compute on the CPU: JAX_PLATFORMS says so, or no accelerator plugin is installed."""
  platforms = environ.get('JAX_PLATFORMS', '').strip().lower()
  if platforms:
    return platforms == 'cpu'
  return not importlib.metadata.entry_points(group='jax_plugins') and importlib.util.find_spec('libtpu') is None


def reason_to_skip(environ: Mapping[str, str]) -> str | None:
  """Why the settings are not for this process, or None when they are."""
  if 'malloc' in environ.get('LD_PRELOAD', ''):
    return 'another allocator is preloaded'
  if any(name.startswith('MALLOC_') for name in environ) or 'glibc.malloc' in environ.get('GLIBC_TUNABLES', ''):
    return "the environment sets glibc's malloc"
  if not computes_on_cpu(environ):
    return 'JAX computes on an accelerator'
  return None


def _glibc() -> Any | None:
  """The running C library, where it is glibc (it has mallopt); None elsewhere."""
  try:
    if not os.confstr('CS_GNU_LIBC_VERSION'):
      return None
  except (AttributeError, ValueError, OSError):
    return None
  return ctypes.CDLL(None)


def configure(environ: Mapping[str, str] = os.environ, libc: Any | None = None) -> bool:
  """Applies the settings where they are for this process (see the module docstring); True if applied."""
  if reason_to_skip(environ) is not None:
    return False
  libc = libc if libc is not None else _glibc()
  if libc is None:
    return False
  return all(libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) == 1 for parameter, value in SETTINGS)


def configure_this_process() -> None:
  """`configure` on this process's environment and C library, remembered for `settings`."""
  global _applied_here
  _applied_here = configure()


def settings() -> str:
  """Which malloc settings this process runs with, for benchmark reports: 'ours', or the C library's 'defaults'."""
  return 'ours' if _applied_here else 'defaults'
