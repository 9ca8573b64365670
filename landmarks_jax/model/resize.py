"""Resizing and pooling with exactly the PyTorch original's sampling rules.

`jax.image.resize` antialiases when it shrinks and knows no `align_corners=True`; the original needs both
bilinear variants without antialiasing and torch's nearest rule, so each resize here is a product with small
constant interpolation matrices, one per spatial axis (NHWC arrays); on a CPU with its kernels a custom call
applies only the matrices' nonzero entries (`landmarks_jax/cpu/sparse_resize.py`). A resize to the same size
returns its input.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from landmarks_jax.cpu import kernels


@functools.lru_cache(maxsize=None)
def bilinear_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
  """(out_size, in_size) weights of torch's bilinear interpolation along one axis."""
  dst = np.arange(out_size, dtype=np.float64)
  if align_corners:
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = dst * scale
  else:
    src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
  low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  high = np.minimum(low + 1, in_size - 1)
  frac = src - low
  matrix = np.zeros((out_size, in_size), np.float64)
  np.add.at(matrix, (np.arange(out_size), low), 1.0 - frac)
  np.add.at(matrix, (np.arange(out_size), high), frac)
  return matrix  # float64, cast to the data's dtype where it is applied


@functools.lru_cache(maxsize=None)
def nearest_matrix(in_size: int, out_size: int) -> np.ndarray:
  """(out_size, in_size) selection of torch's default nearest rule, source floor(i * in / out)."""
  src = np.minimum(np.floor(np.arange(out_size) * (in_size / out_size)).astype(np.int64), in_size - 1)
  matrix = np.zeros((out_size, in_size), np.float64)
  matrix[np.arange(out_size), src] = 1.0
  return matrix


def _apply(x: jax.Array, rows: np.ndarray, cols: np.ndarray) -> jax.Array:
  if rows.shape[0] == rows.shape[1] and cols.shape[0] == cols.shape[1]:
    return x  # the same size: both rules sample each pixel at its own place
  if kernels.enabled() and kernels.takes_resize(x):
    return kernels.resize(x, rows, cols)
  precision = jax.lax.Precision.HIGHEST
  x = jnp.einsum('oh,bhwc->bowc', rows.astype(x.dtype), x, precision=precision)
  return jnp.einsum('pw,bowc->bopc', cols.astype(x.dtype), x, precision=precision)


def resize_bilinear(x: jax.Array, size: tuple[int, int], align_corners: bool) -> jax.Array:
  """Bilinear resize of (B, H, W, C) to (B, size[0], size[1], C), no antialiasing."""
  _, h, w, _ = x.shape
  return _apply(x, bilinear_matrix(h, size[0], align_corners), bilinear_matrix(w, size[1], align_corners))


def resize_nearest(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Nearest resize of (B, H, W, C) with torch's `F.interpolate` default rule."""
  _, h, w, _ = x.shape
  return _apply(x, nearest_matrix(h, size[0]), nearest_matrix(w, size[1]))


def upsample_bilinear(x: jax.Array, factor: int, align_corners: bool) -> jax.Array:
  """Bilinear upsampling of (B, H, W, C) by an integer factor."""
  _, h, w, _ = x.shape
  return resize_bilinear(x, (h * factor, w * factor), align_corners)


def avg_pool_3x3_s2_exclude_pad(x: jax.Array) -> jax.Array:
  """3x3 average pool, stride 2, padding 1, padded cells left out of the count (count_include_pad=False)."""
  window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
  padding = ((0, 0), (1, 1), (1, 1), (0, 0))
  sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  counts = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, padding)
  return sums / counts
