"""Tests of the thin-plate-spline warp against independent numpy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.data.augment import tps

SIZE = 48
MARGIN = 10
GRID = 10


def _numpy_grid(size, grid=GRID, margin=MARGIN):
  xs = np.linspace(margin, size - margin, grid)
  x, y = np.meshgrid(xs, xs)
  return np.stack([x.ravel(), y.ravel()], axis=-1)


def _numpy_spline_map(source, target, points):
  """Float64 thin-plate spline source -> target in pixel coordinates, evaluated at (P, 2) points."""

  def basis(a, b):
    squared = np.sum((a[:, None] - b[None]) ** 2, axis=-1)
    return np.where(squared > 0, squared * np.log(np.where(squared > 0, squared, 1.0)), 0.0)

  n = len(source)
  system = np.zeros((n + 3, n + 3))
  system[:n, :n] = basis(source, source)
  system[:n, n] = system[n, :n] = 1.0
  system[:n, n + 1 :] = source
  system[n + 1 :, :n] = source.T
  coefficients = np.linalg.solve(system, np.concatenate([target, np.zeros((3, 2))]))
  return basis(points, source) @ coefficients[:n] + coefficients[n] + points @ coefficients[n + 1 :]


def _all_pixels(size):
  y, x = np.mgrid[0:size, 0:size]
  return np.stack([x.ravel(), y.ravel()], axis=-1).astype(np.float64)


def _params(rotation, scale, translation, perturbation):
  return tps.WarpParams(
    rotation=jnp.asarray([rotation], jnp.float32),
    scale=jnp.asarray([scale], jnp.float32),
    translation=jnp.asarray([translation], jnp.float32),
    perturbation=jnp.asarray(perturbation, jnp.float32)[None],
  )


def test_control_grid_is_the_originals_linspace_grid():
  np.testing.assert_allclose(np.asarray(tps.control_grid(SIZE)), _numpy_grid(SIZE), atol=1e-5)
  rectangular = np.asarray(tps.control_grid((40, 60), grid=3, margin=5))
  np.testing.assert_allclose(rectangular[:3], [[5, 5], [30, 5], [55, 5]])
  np.testing.assert_allclose(rectangular[-1], [55, 35])


def test_identity_parameters_give_the_identity_warp():
  images = jax.random.uniform(jax.random.PRNGKey(0), (2, SIZE, SIZE, 3), minval=-1, maxval=1)
  targets = tps.sample_tps_params(
    jax.random.PRNGKey(1), 2, SIZE, rot_range=(0, 0), scale_range=(1, 1), trans_range=(0, 0), perturb=0.0
  )
  warped = tps.tps_warp(images, tps.control_grid(SIZE), targets)
  np.testing.assert_allclose(np.asarray(warped), np.asarray(images), atol=2e-4)


def test_pure_affine_warp_matches_the_analytic_map():
  rotation, scale, translation = 0.3, (1.1, 0.95), (4.0, -6.0)
  source = tps.control_grid(SIZE)
  targets = tps.warp_target_points(source, _params(rotation, scale, translation, np.zeros((GRID * GRID, 2))))

  matrix = np.array([[scale[0] * np.cos(rotation), -np.sin(rotation)], [np.sin(rotation), scale[1] * np.cos(rotation)]])
  centre = np.array([(SIZE - MARGIN) / 2 + translation[0], (SIZE - MARGIN) / 2 + translation[1]])
  np.testing.assert_allclose(np.asarray(targets)[0], (source - centre) @ matrix + centre, atol=1e-4)
  pixels = _all_pixels(SIZE)
  expected = (pixels - centre) @ matrix + centre
  mapped = np.asarray(tps.tps_coordinate_map(source, targets, SIZE, SIZE)).reshape(-1, 2)
  np.testing.assert_allclose(mapped, expected, atol=1e-3)

  # A linear ramp is reproduced exactly by bilinear sampling wherever no border clamping happens.
  ramp = (0.03 * pixels[:, 0] - 0.02 * pixels[:, 1]).reshape(SIZE, SIZE, 1)
  warped = np.asarray(tps.tps_warp(jnp.asarray(ramp, jnp.float32)[None], source, targets))[0].reshape(-1)
  inside = np.all((expected >= 0) & (expected <= SIZE - 1), axis=-1)
  assert inside.mean() > 0.5
  np.testing.assert_allclose(warped[inside], (0.03 * expected[:, 0] - 0.02 * expected[:, 1])[inside], atol=1e-4)


def test_spline_interpolates_the_control_points():
  source = tps.control_grid(SIZE)
  np.testing.assert_allclose(tps.tps_weights(source, source), np.eye(len(source)), atol=1e-8)
  # Through the device map: a grid whose points sit on pixel centres (spacing 4 px) maps them onto the targets.
  on_pixels = tps.control_grid(SIZE, grid=10, margin=6)
  params = tps.sample_warp_params(
    jax.random.PRNGKey(3),
    3,
    len(on_pixels),
    rot_range=(-0.4, 0.4),
    scale_range=(1.05, 1.15),
    trans_range=(-10, 10),
    perturb=2.0,
  )
  targets = tps.warp_target_points(on_pixels, params)
  mapped = np.asarray(tps.tps_coordinate_map(on_pixels, targets, SIZE, SIZE))
  columns, rows = on_pixels[:, 0].astype(int), on_pixels[:, 1].astype(int)
  np.testing.assert_array_equal(on_pixels, np.stack([columns, rows], axis=-1))
  np.testing.assert_allclose(mapped[:, rows, columns], np.asarray(targets), atol=1e-3)


def test_spline_matches_a_float64_reference_at_every_pixel():
  source = tps.control_grid(SIZE)
  targets = tps.sample_tps_params(
    jax.random.PRNGKey(4), 1, SIZE, rot_range=(-0.4, 0.4), scale_range=(1.05, 1.15), trans_range=(-10, 10), perturb=2.0
  )
  expected = _numpy_spline_map(source, np.asarray(targets[0], np.float64), _all_pixels(SIZE))
  mapped = np.asarray(tps.tps_coordinate_map(source, targets, SIZE, SIZE))[0].reshape(-1, 2)
  np.testing.assert_allclose(mapped, expected, atol=1e-3)


def test_bilinear_sample_replicates_the_border():
  image = np.asarray(jax.random.uniform(jax.random.PRNGKey(5), (5, 6, 2)))
  points = jnp.asarray([[-3.0, 2.0], [10.0, -4.0], [2.5, 100.0], [1.25, 3.5]])
  samples = np.asarray(tps.bilinear_sample(jnp.asarray(image), points))
  np.testing.assert_allclose(samples[0], image[2, 0], rtol=1e-6)
  np.testing.assert_allclose(samples[1], image[0, 5], rtol=1e-6)
  np.testing.assert_allclose(samples[2], (image[4, 2] + image[4, 3]) / 2, rtol=1e-6)
  top = 0.75 * image[3, 1] + 0.25 * image[3, 2]
  bottom = 0.75 * image[4, 1] + 0.25 * image[4, 2]
  np.testing.assert_allclose(samples[3], (top + bottom) / 2, rtol=1e-6)


def test_warp_beyond_the_image_takes_edge_values():
  images = jax.random.uniform(jax.random.PRNGKey(6), (1, SIZE, SIZE, 3), minval=-1, maxval=1)
  source = tps.control_grid(SIZE)
  shift = 20
  warped = np.asarray(tps.tps_warp(images, source, (source - jnp.asarray([shift, 0.0]))[None]))[0]
  original = np.asarray(images)[0]
  np.testing.assert_allclose(warped[:, :shift], np.repeat(original[:, :1], shift, axis=1), atol=2e-4)
  np.testing.assert_allclose(warped[:, shift:], original[:, :-shift], atol=2e-4)


def test_random_parameters_stay_in_their_ranges_and_follow_the_rng():
  ranges = dict(rot_range=(-0.4, 0.2), scale_range=(1.05, 1.15), trans_range=(-10, 5), perturb=2.0)
  params = tps.sample_warp_params(jax.random.PRNGKey(7), 256, 100, **ranges)
  for values, (low, high) in [
    (params.rotation, ranges['rot_range']),
    (params.scale, ranges['scale_range']),
    (params.translation, ranges['trans_range']),
    (params.perturbation, (-2, 2)),
  ]:
    values = np.asarray(values)
    assert values.min() >= low and values.max() <= high
    assert values.max() - values.min() > 0.9 * (high - low)  # The whole range is used.
  assert not np.allclose(params.scale[:, 0], params.scale[:, 1])  # Independent x and y scales.

  images = jax.random.uniform(jax.random.PRNGKey(8), (2, SIZE, SIZE, 3), minval=-1, maxval=1)
  warp = jax.jit(lambda rng, x: tps.random_tps_warp(rng, x, (-0.4, 0.4), (1.05, 1.15), (-10, 10)))
  first, again = warp(jax.random.PRNGKey(9), images), warp(jax.random.PRNGKey(9), images)
  other = warp(jax.random.PRNGKey(10), images)
  np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
  assert np.abs(np.asarray(first) - np.asarray(other)).mean() > 1e-2
  assert np.abs(np.asarray(first[0]) - np.asarray(first[1])).mean() > 1e-2


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match='margin'):
    tps.control_grid(20)
  with pytest.raises(ValueError, match='lower bound'):
    tps.sample_warp_params(jax.random.PRNGKey(0), 1, 4, (0.5, -0.5), (1, 1), (0, 0))
  with pytest.raises(ValueError, match='height, width, channels'):
    tps.tps_warp(jnp.zeros((SIZE, SIZE, 3)), tps.control_grid(SIZE), jnp.zeros((1, 100, 2)))
  with pytest.raises(ValueError, match='static'):
    jax.jit(lambda source: tps.tps_warp(jnp.zeros((1, SIZE, SIZE, 3)), source, jnp.zeros((1, 100, 2))))(
      tps.control_grid(SIZE)
    )
  with pytest.raises(ValueError, match='singular'):
    tps.tps_weights(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.zeros((1, 2)))
  with pytest.raises(ValueError, match='do not match'):
    tps.tps_warp(jnp.zeros((1, SIZE, SIZE, 3)), tps.control_grid(SIZE), jnp.zeros((1, 99, 2)))
