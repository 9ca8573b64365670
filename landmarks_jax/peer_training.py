"""python -m landmarks_jax.peer_training: trains the original and ours on the same pairs and scores both
(landmarks_jax/bench/peer_training.py)."""

from landmarks_jax.bench import peer_training

if __name__ == '__main__':
  peer_training.command()
