"""Pixels arrive on the device as uint8, a quarter of float32's bytes to move; these turn them into the model's
floats there, inside the compiled step. Floating-point inputs pass through unchanged."""

import jax
import jax.numpy as jnp


def to_signed(images: jax.Array) -> jax.Array:
  """uint8 images as float32 in [-1, 1], as the original's ToTensor then Normalize(0.5, 0.5)."""
  if jnp.issubdtype(images.dtype, jnp.floating):
    return images
  return images.astype(jnp.float32) / 127.5 - 1.0


def to_unit(masks: jax.Array) -> jax.Array:
  """uint8 masks as float32 in [0, 1]."""
  if jnp.issubdtype(masks.dtype, jnp.floating):
    return masks
  return masks.astype(jnp.float32) / 255.0
