"""landmarks_jax: unsupervised landmarks, appearance and background from images and videos, in JAX/Flax."""
