"""Resizes on CPUs by a custom call that reads, for each output pixel, only the pixels it blends.

`model/resize.py` writes each resize as two products with dense interpolation matrices, exact and fine on accelerators;
XLA:CPU runs them, with the transposes between them, far below memory speed, and they were a large part of the BBC
Pose training step's own operations (docs/benchmarks.md). The call here (`native/sparse_resize.cc`, compiled at
install time) keeps only the matrices' nonzero entries; its gradient is the same call with the transposed matrices.
Where it is not built, with `cpu_kernels='xla'`, for dtypes other than float32 and bfloat16, and off CPUs,
`model/resize.py` keeps its dense products.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from landmarks_jax.cpu import native_calls

EXTENSION_MODULE = 'landmarks_jax.cpu._sparse_resize_ffi'
TARGET = 'landmarks_jax_sparse_resize'


class Taps(NamedTuple):
  """One axis's (outputs, inputs) matrix, its nonzero entries by output (compressed rows); hashable, so that it
  can be a static argument."""

  inputs: int
  offsets: tuple[int, ...]
  indices: tuple[int, ...]
  weights: tuple[float, ...]

  @classmethod
  def of(cls, matrix: np.ndarray) -> 'Taps':
    outputs, inputs = matrix.shape
    rows, cols = np.nonzero(matrix)  # row-major order: by output, then by input
    offsets = np.searchsorted(rows, np.arange(outputs + 1))
    return cls(
      inputs, tuple(offsets.tolist()), tuple(cols.tolist()), tuple(matrix[rows, cols].astype(np.float32).tolist())
    )

  def dense(self) -> np.ndarray:
    matrix = np.zeros((len(self.offsets) - 1, self.inputs), np.float32)
    for o in range(len(self.offsets) - 1):
      span = slice(self.offsets[o], self.offsets[o + 1])
      matrix[o, list(self.indices[span])] = self.weights[span]
    return matrix

  def transposed(self) -> 'Taps':
    return Taps.of(self.dense().T)


@functools.cache
def _registered() -> bool:
  """Whether the custom call is built, loaded and registered with XLA (once per process)."""
  return native_calls.register(
    EXTENSION_MODULE, {TARGET: 'LandmarksSparseResize'}, 'sparse resizes unavailable, resizes are dense products'
  )


def available() -> bool:
  """Whether the custom call is built and registered here."""
  return _registered()


def handles(x: jax.Array) -> bool:
  """Whether `resize` below takes x: a float32 or bfloat16 (..., H, W, C) array traced for a CPU, the call built."""
  return (
    x.ndim >= 3
    and jax.default_backend() == 'cpu'
    and x.dtype in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
    and _registered()
  )


def _call(x: jax.Array, rows: Taps, cols: Taps) -> jax.Array:
  if (rows.inputs, cols.inputs) != x.shape[-3:-1]:
    raise ValueError(
      f'resize matrices for {rows.inputs} x {cols.inputs} pixels given an image of {x.shape[-3]} x {x.shape[-2]}'
    )
  shape = x.shape[:-3] + (len(rows.offsets) - 1, len(cols.offsets) - 1, x.shape[-1])
  # Under vmap the call takes the batched axes in front, where it treats them as more images.
  call = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct(shape, x.dtype), vmap_method='expand_dims')
  return call(
    x,
    row_offsets=np.asarray(rows.offsets, np.int64),
    row_indices=np.asarray(rows.indices, np.int64),
    row_weights=np.asarray(rows.weights, np.float32),
    col_offsets=np.asarray(cols.offsets, np.int64),
    col_indices=np.asarray(cols.indices, np.int64),
    col_weights=np.asarray(cols.weights, np.float32),
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def resize(x: jax.Array, rows: Taps, cols: Taps) -> jax.Array:
  """y[..., o, p, :] = sum over i, j of rows[o, i] cols[p, j] x[..., i, j, :] (check `handles` first)."""
  return _call(x, rows, cols)


def _forward(x, rows, cols):
  return _call(x, rows, cols), None


def _backward(rows, cols, _, grad_y):
  return (_call(grad_y, _transposed(rows), _transposed(cols)),)


@functools.lru_cache(maxsize=None)
def _transposed(taps: Taps) -> Taps:
  return taps.transposed()


resize.defvjp(_forward, _backward)
