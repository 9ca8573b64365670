"""python -m landmarks_jax.bench_input: times the input pipeline alone (landmarks_jax/bench/input_speed.py)."""

from landmarks_jax.bench import input_speed

if __name__ == '__main__':
  input_speed.command()
