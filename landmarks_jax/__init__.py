"""landmarks_jax: unsupervised landmarks, appearance and background from images and videos, in JAX/Flax."""

from landmarks_jax import cpu_settings as _cpu_settings

# Before anything imports JAX: XLA's CPU settings for this processor (see cpu_settings.py to turn it off).
_cpu_settings.configure()
