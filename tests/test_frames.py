"""Decoding and cropping one frame: the full decode is the original's, the reduced one a close, cheaper stand-in."""

import io

import numpy as np
from PIL import Image
import pytest

from landmarks_jax.data import frames

WIDTH, HEIGHT = 720, 405


@pytest.fixture(scope='module')
def jpeg():
  """A broadcast-sized JPEG of smooth colour patterns, like a video frame."""
  ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
  pixels = np.stack(
    [127.5 + 120 * np.sin(fx * xs + fy * ys) for fx, fy in ((0.03, 0.01), (0.011, 0.04), (0.02, 0.02))], axis=-1
  )
  buffer = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).save(buffer, format='JPEG', quality=90)
  return buffer.getvalue()


def _original(data, box, size):
  """The original's path: PIL decode in full, convert to RGB, crop, bilinear resize."""
  image = Image.open(io.BytesIO(data)).convert('RGB')
  return np.asarray(image.crop(tuple(box)).resize((size, size), Image.BILINEAR))


@pytest.mark.parametrize(
  'box, size, scale',
  [
    ((100, 50, 400, 350), 128, 2),
    ((10, 5, 650, 400), 64, 4),
    ((0, 0, 720, 405), 32, 8),
    ((300, 100, 450, 250), 128, 1),
  ],
)
def test_decode_scale_keeps_the_crop_at_least_the_output_size(box, size, scale):
  assert frames.decode_scale((WIDTH, HEIGHT), box, size) == scale


def test_full_decode_is_the_originals(jpeg):
  box = np.array([101.5, 48.25, 402.5, 349.75], np.float32)
  image, scaled = frames.decode(jpeg, 'RGB', box, 128, reduced=False)
  np.testing.assert_array_equal(scaled, box)
  np.testing.assert_array_equal(frames.crop_resize(image, scaled, 128), _original(jpeg, box, 128))


def test_reduced_decode_crops_the_same_region_at_half_the_work(jpeg):
  box = np.array([101.5, 48.25, 402.5, 349.75], np.float32)
  image, scaled = frames.decode(jpeg, 'RGB', box, 128, reduced=True)
  assert image.size == (360, 203)  # ceil(405 / 2) rows: the decoder's own DCT scaling
  np.testing.assert_allclose(scaled, box / 2)
  reduced = frames.crop_resize(image, scaled, 128).astype(np.int32)
  full = _original(jpeg, box, 128).astype(np.int32)
  difference = np.abs(reduced - full)
  # The same region: a small difference everywhere, no shifted or misplaced crop.
  assert difference.mean() < 2.0 and np.percentile(difference, 99) < 12, (difference.mean(), difference.max())


def test_png_and_small_crops_decode_in_full(jpeg):
  buffer = io.BytesIO()
  Image.open(io.BytesIO(jpeg)).save(buffer, format='PNG')
  box = (0, 0, 700, 400)
  image, scaled = frames.decode(buffer.getvalue(), 'RGB', box, 64, reduced=True)
  assert image.size == (WIDTH, HEIGHT) and tuple(scaled) == box
  image, _ = frames.decode(jpeg, 'RGB', (300, 100, 400, 200), 128, reduced=True)
  assert image.size == (WIDTH, HEIGHT)
