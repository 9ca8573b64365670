"""The process settings a command applies when it starts, before JAX starts its CPU backend: XLA's CPU flags for
this processor (`xla_flags.py`) and glibc's malloc kept for reuse (`host_allocator.py`). A user's own XLA_FLAGS
or malloc settings win over both. Nothing applies them on import, so a program that imports landmarks_jax as a
library keeps its process as it was."""

from landmarks_jax.cpu import host_allocator
from landmarks_jax.cpu import xla_flags


def apply() -> None:
  """Both settings, where they are for this process (see each module)."""
  xla_flags.configure()
  host_allocator.configure_this_process()
