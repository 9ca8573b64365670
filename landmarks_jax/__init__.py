"""landmarks_jax: unsupervised landmarks, appearance and background from images and videos, in JAX/Flax.

Importing it changes nothing in the process; each command that trains, evaluates, predicts or benchmarks applies
its CPU process settings when it starts (landmarks_jax/cpu/process_settings.py)."""
