"""python -m landmarks_jax.bench: times the training step (step_benchmark.py)."""

from landmarks_jax.bench import step_benchmark

step_benchmark.command()
