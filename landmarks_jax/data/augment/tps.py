"""Thin-plate-spline warps of image batches, the geometric augmentation that makes `input_b`.

As in the PyTorch original (OpenCV's thin-plate-spline shape transformer): a regular grid of control points is
moved by a random rotation, anisotropic scale and translation about the grid centre plus a small independent
perturbation per point; the spline f that interpolates grid_i -> target_i is then used as a backward map,
out(p) = in(f(p)), with bilinear sampling and replicated borders. Pixel centres sit at integer coordinates
0..size-1 and points are (x, y).

The spline is linear in its target points: f(p) = sum_i weights(p)_i target_i, where the weights depend only on
the control grid and p. The grid is static, so the weights of every pixel are computed once, in float64 numpy
when the step is traced; on the device a warp is then one small matmul and a bilinear gather. This also keeps
LAPACK calls out of the step (batched CPU solves can deadlock under pmap over forced host devices).
"""

import functools
from typing import NamedTuple, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

Size = Union[int, Sequence[int]]
Range = Sequence[float]


class WarpParams(NamedTuple):
  """Random parameters of a batch of warps.

  Attributes:
    rotation: (B,) rotation angle in radians.
    scale: (B, 2) scale factors (sc_x, sc_y).
    translation: (B, 2) translation (t_x, t_y) of the warp centre in pixels.
    perturbation: (B, N, 2) independent offsets of the N target points in pixels.
  """

  rotation: jax.Array
  scale: jax.Array
  translation: jax.Array
  perturbation: jax.Array


def _height_width(size: Size) -> tuple[int, int]:
  if isinstance(size, int):
    return size, size
  height, width = size
  return int(height), int(width)


def _check_range(values: Range, name: str) -> tuple[float, float]:
  low, high = values
  if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
    raise ValueError(f'{name} range ({low}, {high}) has its lower bound above its upper bound; swap them.')
  return low, high


def _static_points(points, name: str) -> np.ndarray:
  try:
    points = np.asarray(points, np.float64)
  except jax.errors.TracerArrayConversionError:
    raise ValueError(
      f'{name} must be static (a numpy array such as control_grid(...)), not a traced value; '
      'build it outside the jitted function.'
    ) from None
  if points.ndim != 2 or points.shape[1] != 2:
    raise ValueError(f'{name} must have shape (N, 2), got {points.shape}.')
  return points


def control_grid(size: Size, grid: int = 10, margin: float = 10) -> np.ndarray:
  """The regular grid of control points, x fastest, as the original builds it.

  Args:
    size: image size, an int or (height, width).
    grid: points per row and per column.
    margin: distance in pixels of the first point from the image origin; the last point sits at
      size - margin (not size - 1 - margin), as in the original.

  Returns:
    (grid * grid, 2) float64 points (x, y).
  """
  height, width = _height_width(size)
  if grid < 2:
    raise ValueError(f'the control grid needs at least 2 points per side, got grid={grid}.')
  if min(height, width) <= 2 * margin:
    raise ValueError(
      f'image size {(height, width)} must exceed twice the control-grid margin {margin}; '
      'use a larger image or a smaller margin.'
    )
  xs = np.linspace(margin, width - margin, grid)
  ys = np.linspace(margin, height - margin, grid)
  x, y = np.meshgrid(xs, ys, indexing='xy')
  return np.stack([x.ravel(), y.ravel()], axis=-1)


def sample_warp_params(
  rng: jax.Array,
  batch_size: int,
  num_points: int,
  rot_range: Range,
  scale_range: Range,
  trans_range: Range,
  perturb: float = 2.0,
) -> WarpParams:
  """Samples the warp of each image, every value uniform in its range.

  Args:
    rng: PRNG key.
    batch_size: number of warps B.
    num_points: number of control points N.
    rot_range: (low, high) rotation in radians.
    scale_range: (low, high) of each of the two scale factors.
    trans_range: (low, high) of each of the two translations, in pixels.
    perturb: each target point moves by up to +-perturb pixels in x and in y.

  Returns:
    WarpParams.
  """
  rot_low, rot_high = _check_range(rot_range, 'rotation')
  scale_low, scale_high = _check_range(scale_range, 'scale')
  trans_low, trans_high = _check_range(trans_range, 'translation')
  if isinstance(perturb, (int, float)) and perturb < 0:
    raise ValueError(f'perturb must be non-negative, got {perturb}.')
  rot_key, scale_key, trans_key, perturb_key = jax.random.split(rng, 4)
  uniform = jax.random.uniform
  return WarpParams(
    rotation=uniform(rot_key, (batch_size,), minval=rot_low, maxval=rot_high),
    scale=uniform(scale_key, (batch_size, 2), minval=scale_low, maxval=scale_high),
    translation=uniform(trans_key, (batch_size, 2), minval=trans_low, maxval=trans_high),
    perturbation=uniform(perturb_key, (batch_size, num_points, 2), minval=-perturb, maxval=perturb),
  )


def affine_matrix(rotation: jax.Array, scale: jax.Array) -> jax.Array:
  """The original's rotation-scale matrix M = [[sc_x cos r, -sin r], [sin r, sc_y cos r]].

  It multiplies row vectors on the right: p' = p @ M.

  Args:
    rotation: (...,) angles in radians.
    scale: (..., 2) factors (sc_x, sc_y).

  Returns:
    (..., 2, 2) matrices.
  """
  cos, sin = jnp.cos(rotation), jnp.sin(rotation)
  first_row = jnp.stack([scale[..., 0] * cos, -sin], axis=-1)
  second_row = jnp.stack([sin, scale[..., 1] * cos], axis=-1)
  return jnp.stack([first_row, second_row], axis=-2)


def warp_target_points(source_points: np.ndarray, params: WarpParams) -> jax.Array:
  """Moves the control points: target = (source - c) @ M + perturbation + c.

  The centre c is half the largest grid coordinate plus the translation, as in the original.

  Args:
    source_points: (N, 2) control points.
    params: WarpParams of B warps.

  Returns:
    (B, N, 2) float32 target points.
  """
  source = jnp.asarray(source_points, jnp.float32)
  matrix = affine_matrix(params.rotation, params.scale)
  centre = (jnp.max(source, axis=0) / 2 + params.translation)[:, None, :]
  offsets = source[None] - centre
  # Written out rather than as a matmul so that accelerators keep full float32 precision.
  moved = offsets[..., :1] * matrix[:, None, 0, :] + offsets[..., 1:] * matrix[:, None, 1, :]
  return moved + params.perturbation + centre


def sample_tps_params(
  rng: jax.Array,
  batch_size: int,
  size: Size,
  rot_range: Range,
  scale_range: Range,
  trans_range: Range,
  perturb: float = 2.0,
  grid: int = 10,
  margin: float = 10,
) -> jax.Array:
  """Random target points of control_grid(size, grid, margin) for B warps, (B, grid * grid, 2)."""
  source = control_grid(size, grid, margin)
  params = sample_warp_params(rng, batch_size, source.shape[0], rot_range, scale_range, trans_range, perturb)
  return warp_target_points(source, params)


def _radial_basis(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
  """U(|points_p - centres_i|) with U = r^2 log r^2 and U(0) = 0, (P, N)."""
  squared = np.sum((points[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
  positive = squared > 0
  return np.where(positive, squared * np.log(np.where(positive, squared, 1.0)), 0.0)


def tps_weights(source_points: np.ndarray, query_points: np.ndarray) -> np.ndarray:
  """Interpolation weights of the thin-plate spline through source_points, evaluated at query_points.

  For any targets, the spline f with f(source_i) = target_i satisfies f(query_p) = weights[p] @ targets.
  The system [[K, P], [P^T, 0]] [w; a] = [targets; 0] is solved in float64 in coordinates normalised to
  [-1, 1]; a thin-plate spline is unchanged by a similarity transform of its domain, so this only improves
  the conditioning. The kernel's diagonal is 0, OpenCV's default regularisation.

  Args:
    source_points: (N, 2) static control points, not all on one line.
    query_points: (P, 2) static points.

  Returns:
    (P, N) float64 weights; each row sums to 1.
  """
  source = _static_points(source_points, 'source_points')
  query = _static_points(query_points, 'query_points')
  num_points = source.shape[0]
  offset = source.mean(axis=0)
  scale = np.abs(source - offset).max()
  centres, query = (source - offset) / scale, (query - offset) / scale

  def basis(points):
    return np.concatenate([_radial_basis(points, centres), np.ones((len(points), 1)), points], axis=1)

  system = np.zeros((num_points + 3, num_points + 3))
  system[:num_points] = basis(centres)
  system[num_points:, :num_points] = system[:num_points, num_points:].T
  right_side = np.concatenate([np.eye(num_points), np.zeros((3, num_points))])
  try:
    coefficients = np.linalg.solve(system, right_side)
  except np.linalg.LinAlgError:
    raise ValueError(
      'the thin-plate spline system is singular: control points must be distinct and not all on one line.'
    ) from None
  return basis(query) @ coefficients


def pixel_coordinates(height: int, width: int) -> np.ndarray:
  """(height, width, 2) coordinates (x, y) of every pixel centre."""
  ys, xs = np.mgrid[0:height, 0:width]
  return np.stack([xs, ys], axis=-1).astype(np.float64)


@functools.lru_cache(maxsize=8)
def _pixel_weights(source_bytes: bytes, num_points: int, height: int, width: int) -> np.ndarray:
  """float32 tps_weights of every pixel, cached because each trace of a warp needs them again."""
  source = np.frombuffer(source_bytes, np.float64).reshape(num_points, 2)
  return tps_weights(source, pixel_coordinates(height, width).reshape(-1, 2)).astype(np.float32)


def tps_coordinate_map(source_points: np.ndarray, target_points: jax.Array, height: int, width: int) -> jax.Array:
  """Where every output pixel samples the input: f(p) for all pixels p.

  Args:
    source_points: (N, 2) static control points.
    target_points: (B, N, 2) their images; may be traced.
    height, width: output size.

  Returns:
    (B, height, width, 2) points (x, y).
  """
  source = _static_points(source_points, 'source_points')
  if target_points.shape[-2:] != source.shape:
    raise ValueError(
      f'target points of shape {target_points.shape} do not match {source.shape[0]} control '
      'points; expected (batch, N, 2).'
    )
  weights = _pixel_weights(source.tobytes(), source.shape[0], height, width)
  mapped = jnp.einsum('pn,bnc->bpc', weights, target_points.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
  return mapped.reshape(target_points.shape[0], height, width, 2)


def bilinear_sample(image: jax.Array, coordinates: jax.Array) -> jax.Array:
  """Samples one image bilinearly at pixel coordinates, replicating the border.

  Coordinates outside the image take the value of the nearest edge, as OpenCV's BORDER_REPLICATE.

  Args:
    image: (H, W, C).
    coordinates: (..., 2) points (x, y) in pixels.

  Returns:
    (..., C) samples.
  """
  height, width = image.shape[:2]
  x = jnp.clip(coordinates[..., 0], 0, width - 1)
  y = jnp.clip(coordinates[..., 1], 0, height - 1)
  x0f, y0f = jnp.floor(x), jnp.floor(y)
  wx, wy = (x - x0f)[..., None], (y - y0f)[..., None]
  x0, y0 = x0f.astype(jnp.int32), y0f.astype(jnp.int32)
  x1, y1 = jnp.minimum(x0 + 1, width - 1), jnp.minimum(y0 + 1, height - 1)
  top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
  bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
  return top * (1 - wy) + bottom * wy


def tps_warp(images: jax.Array, source_points: np.ndarray, target_points: jax.Array) -> jax.Array:
  """Warps a batch: out(p) = in(f(p)) with f the spline source_i -> target_i, borders replicated.

  Args:
    images: (B, H, W, C).
    source_points: (N, 2) static control points shared by the batch.
    target_points: (B, N, 2), may be traced.

  Returns:
    (B, H, W, C) warped images, same dtype as images.
  """
  if images.ndim != 4:
    raise ValueError(f'tps_warp expects (batch, height, width, channels) images, got shape {images.shape}.')
  batch_size, height, width, _ = images.shape
  if target_points.ndim != 3 or target_points.shape[0] != batch_size:
    raise ValueError(
      f'tps_warp needs (batch, N, 2) target points for {batch_size} images, got shape {target_points.shape}.'
    )
  coordinates = tps_coordinate_map(source_points, target_points, height, width)
  return jax.vmap(bilinear_sample)(images, coordinates).astype(images.dtype)


def random_tps_warp(
  rng: jax.Array,
  images: jax.Array,
  rot_range: Range,
  scale_range: Range,
  trans_range: Range,
  perturb: float = 2.0,
  grid: int = 10,
  margin: float = 10,
) -> jax.Array:
  """Warps each image of a (B, H, W, C) batch by its own random thin-plate spline, as the original does."""
  if images.ndim != 4:
    raise ValueError(f'random_tps_warp expects (batch, height, width, channels) images, got {images.shape}.')
  batch_size, height, width, _ = images.shape
  targets = sample_tps_params(
    rng, batch_size, (height, width), rot_range, scale_range, trans_range, perturb, grid, margin
  )
  return tps_warp(images, control_grid((height, width), grid, margin), targets)
