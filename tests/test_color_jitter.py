"""Tests of the colour jitter against numpy and colorsys computations."""

import colorsys
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.data.augment import color_jitter as cj

LUMA = np.array([0.299, 0.587, 0.114])


def _unit_images(seed, shape=(2, 6, 5, 3)):
  return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def _numpy_brightness(image, factor):
  return np.clip(image * factor, 0, 1)


def _numpy_contrast(image, factor):
  mean = (image @ LUMA).mean()
  return np.clip(factor * image + (1 - factor) * mean, 0, 1)


def _numpy_saturation(image, factor):
  gray = (image @ LUMA)[..., None]
  return np.clip(factor * image + (1 - factor) * gray, 0, 1)


def _numpy_hue(image, shift):
  def shift_pixel(pixel):
    h, s, v = colorsys.rgb_to_hsv(*pixel)
    return colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)

  return np.apply_along_axis(shift_pixel, -1, image.astype(np.float64))


_NUMPY_OPS = (_numpy_brightness, _numpy_contrast, _numpy_saturation, _numpy_hue)
_OPS = (cj.adjust_brightness, cj.adjust_contrast, cj.adjust_saturation, cj.adjust_hue)


def test_zero_strength_is_exactly_the_identity():
  images = jnp.asarray(_unit_images(0) * 2 - 1)
  out = cj.color_jitter(jax.random.PRNGKey(0), images, brightness=0, contrast=0, saturation=0, hue=0)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(images))


@pytest.mark.parametrize('shift', [0.0, 1.0, -1.0])
def test_hue_shift_by_whole_turns_is_the_identity(shift):
  images = _unit_images(1)
  np.testing.assert_allclose(np.asarray(cj.adjust_hue(jnp.asarray(images), shift)), images, atol=1e-5)


def test_hsv_matches_colorsys_and_round_trips():
  images = _unit_images(2)
  images[0, 0, 0] = [0.3, 0.3, 0.3]  # Gray: hue and saturation 0.
  images[0, 0, 1] = [0.0, 0.0, 0.0]
  images[0, 0, 2] = [0.9, 0.2, 0.9]  # Ties between maximal channels.
  hsv = np.asarray(cj.rgb_to_hsv(jnp.asarray(images)))
  expected = np.apply_along_axis(lambda pixel: colorsys.rgb_to_hsv(*pixel), -1, images.astype(np.float64))
  np.testing.assert_allclose(hsv, expected, atol=1e-5)
  np.testing.assert_allclose(np.asarray(cj.hsv_to_rgb(jnp.asarray(hsv))), images, atol=1e-5)


@pytest.mark.parametrize(
  'index, factor', [(0, 1.3), (0, 0.6), (1, 1.4), (1, 0.6), (2, 1.4), (2, 0.6), (3, 0.25), (3, -0.3)]
)
def test_single_operations_match_numpy(index, factor):
  images = _unit_images(3)
  out = np.asarray(_OPS[index](jnp.asarray(images), jnp.full((2,), factor)))
  expected = np.stack([_NUMPY_OPS[index](image, factor) for image in images])
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_zero_saturation_gives_gray():
  images = _unit_images(4)
  gray = np.asarray(cj.adjust_saturation(jnp.asarray(images), 0.0))
  np.testing.assert_allclose(gray, np.repeat((images @ LUMA)[..., None], 3, axis=-1), atol=1e-6)


def test_output_stays_in_range():
  images = jnp.asarray(_unit_images(5, (8, 6, 5, 3)) * 2 - 1)
  out = np.asarray(cj.color_jitter(jax.random.PRNGKey(1), images, brightness=3, contrast=3, saturation=3, hue=0.5))
  assert out.min() >= -1 and out.max() <= 1
  assert np.abs(out - np.asarray(images)).mean() > 0.05


def test_order_is_random_per_image_and_parameters_follow_the_rng():
  params = cj.sample_jitter_params(jax.random.PRNGKey(2), 64)
  order = np.asarray(params.order)
  assert all(sorted(row) == [0, 1, 2, 3] for row in order.tolist())
  assert len({tuple(row) for row in order.tolist()}) > 5
  factors = np.asarray(params.factors)
  assert factors[:, :3].min() >= 0.6 and factors[:, :3].max() <= 1.4
  assert factors[:, 3].min() >= -0.3 and factors[:, 3].max() <= 0.3
  again = cj.sample_jitter_params(jax.random.PRNGKey(2), 64)
  np.testing.assert_array_equal(np.asarray(again.order), order)
  np.testing.assert_array_equal(np.asarray(again.factors), factors)
  other = cj.sample_jitter_params(jax.random.PRNGKey(3), 64)
  assert not np.array_equal(np.asarray(other.factors), factors)


def test_operations_run_in_the_sampled_order():
  orders = np.array(list(itertools.permutations(range(4))), np.int32)
  images = _unit_images(6, (len(orders), 6, 5, 3))
  factors = np.tile(np.array([1.3, 0.7, 1.4, 0.2], np.float32), (len(orders), 1))
  out = np.asarray(
    cj.apply_jitter(jnp.asarray(images * 2 - 1), cj.JitterParams(jnp.asarray(factors), jnp.asarray(orders)))
  )
  for image, jittered, factor_row, order_row in zip(images, out, factors, orders):
    expected = image.astype(np.float64)
    for op in order_row:
      expected = _NUMPY_OPS[op](expected, factor_row[op])
    np.testing.assert_allclose((jittered + 1) / 2, expected, atol=1e-5)
  # The order matters: the same image under two orders gives different results.
  same_image = np.repeat(images[:1], 2, axis=0) * 2 - 1
  two_orders = np.asarray(
    cj.apply_jitter(jnp.asarray(same_image), cj.JitterParams(jnp.asarray(factors[:2]), jnp.asarray(orders[[0, -1]])))
  )
  assert np.abs(two_orders[0] - two_orders[1]).max() > 1e-2


def test_paired_jitter_applies_identical_transforms():
  first = jnp.asarray(_unit_images(7, (4, 6, 5, 3)) * 2 - 1)
  second = jnp.asarray(_unit_images(8, (4, 6, 5, 3)) * 2 - 1)
  rng = jax.random.PRNGKey(4)
  paired_first, paired_second = cj.paired_color_jitter(rng, first, second)
  np.testing.assert_allclose(np.asarray(paired_first), np.asarray(cj.color_jitter(rng, first)), atol=1e-6)
  np.testing.assert_allclose(np.asarray(paired_second), np.asarray(cj.color_jitter(rng, second)), atol=1e-6)
  same_first, same_second = cj.paired_color_jitter(rng, first, first)
  np.testing.assert_array_equal(np.asarray(same_first), np.asarray(same_second))
  assert np.abs(np.asarray(same_first) - np.asarray(first)).mean() > 1e-2


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match='hue'):
    cj.sample_jitter_params(jax.random.PRNGKey(0), 2, hue=0.7)
  with pytest.raises(ValueError, match='3\\) RGB'):
    cj.color_jitter(jax.random.PRNGKey(0), jnp.zeros((2, 4, 4, 1)))
  with pytest.raises(ValueError, match='one shape'):
    cj.paired_color_jitter(jax.random.PRNGKey(0), jnp.zeros((2, 4, 4, 3)), jnp.zeros((2, 4, 5, 3)))
