"""Measurements: the training step's speed (`python -m landmarks_jax.bench`), beside the original's step; one
command for a GPU machine; the input pipeline's speed; the original trained beside ours."""
