"""python -m landmarks_jax.bench_gpus: times the step and the input pipeline on a GPU machine
(landmarks_jax/bench/gpus.py)."""

from landmarks_jax.bench import gpus

if __name__ == '__main__':
  gpus.command()
