"""Sums of (B, H, W, C) activations over their pixels, taken as matrix products on CPUs.

Bias gradients and instance norm's statistics and gradients sum activations over every pixel. XLA:CPU splits
such long reductions into a windowed reduction and a short one, which reads the activations slowly; the same
sums taken as products of the activations, seen as (pixels, channels) matrices, with a row of ones run several
times faster at the BBC Pose step's shapes (docs/benchmarks.md). Other backends keep XLA's reductions. Sums
accumulate in at least float32.
"""

import jax
import jax.numpy as jnp


def _accumulator(dtype) -> jnp.dtype:
  return jnp.promote_types(dtype, jnp.float32)


def over_batch(x: jax.Array) -> jax.Array:
  """x summed over all axes but the last: (C,), in at least float32."""
  if jax.default_backend() != 'cpu':
    return jnp.sum(x, axis=tuple(range(x.ndim - 1)), dtype=_accumulator(x.dtype))
  rows = x.reshape(-1, x.shape[-1])
  ones = jnp.ones((rows.shape[0],), x.dtype)
  return jnp.dot(ones, rows, preferred_element_type=_accumulator(x.dtype))


def per_image(x: jax.Array) -> jax.Array:
  """(B, H, W, C) summed over H and W: (B, C), in at least float32."""
  if jax.default_backend() != 'cpu':
    return jnp.sum(x, axis=(1, 2), dtype=_accumulator(x.dtype))
  batch, height, width, channels = x.shape
  rows = x.reshape(batch, height * width, channels)
  ones = jnp.ones((batch, height * width), x.dtype)
  # Batched over images: (B, HW) x (B, HW, C) -> (B, C).
  return jax.lax.dot_general(ones, rows, (((1,), (1,)), ((0,), (0,))),
                             preferred_element_type=_accumulator(x.dtype))
