"""landmarks_jax: unsupervised landmarks, appearance and background from images and videos, in JAX/Flax."""

from landmarks_jax import cpu_settings as _cpu_settings
from landmarks_jax import host_allocator as _host_allocator

# Before anything imports JAX: XLA's CPU settings for this processor, and glibc's malloc set to keep XLA's
# per-step buffers for reuse (see cpu_settings.py and host_allocator.py to turn either off).
_cpu_settings.configure()
_host_allocator.configure_this_process()
