"""The augmentations against the PyTorch original's: OpenCV's thin-plate spline and torchvision's colour jitter.

The reference file (default: tests/data/torch_original_augment_img64.npz, or
$LANDMARKS_JAX_AUGMENT_REFERENCE) holds the original's outputs for given warp parameters and jitter factors.
"""

import os
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.data.augment import color_jitter
from landmarks_jax.data.augment import tps

DEFAULT_REFERENCE = pathlib.Path(__file__).resolve().parent / 'data' / 'torch_original_augment_img64.npz'
REFERENCE = pathlib.Path(os.environ.get('LANDMARKS_JAX_AUGMENT_REFERENCE', DEFAULT_REFERENCE))

pytestmark = pytest.mark.skipif(
  not REFERENCE.exists() and not os.environ.get('CI'), reason=f'no reference file at {REFERENCE}'
)

# torchvision works on 8-bit PIL images: every operation rounds to a whole level, and hue goes through PIL's
# 8-bit HSV, whose hue has 256 steps per turn, so single pixels of a hue shift differ by more than a level.
BLEND_TOLERANCE = 1.5 / 255
HUE_MEAN_TOLERANCE = 3 / 255
WARP_MAX_TOLERANCE, WARP_MEAN_TOLERANCE = 0.025, 1e-3


@pytest.fixture(scope='module')
def reference():
  data = np.load(REFERENCE, allow_pickle=False)
  return {k: data[k] for k in data.files}


def _cases(reference, kind):
  return sorted({int(key.split('/')[1]) for key in reference if key.startswith(f'{kind}/')})


def test_warp_matches_opencvs_thin_plate_spline(reference):
  cases = _cases(reference, 'tps')
  assert cases
  for i in cases:
    case = {name: reference[f'tps/{i}/{name}'] for name in ('image', 'source_grid', 'target_grid', 'warped')}
    size = case['image'].shape[:2]
    warped = np.asarray(
      tps.tps_warp(jnp.asarray(case['image'])[None], case['source_grid'], jnp.asarray(case['target_grid'])[None])
    )[0]
    error = np.abs(warped - case['warped'])
    assert error.max() <= WARP_MAX_TOLERANCE and error.mean() <= WARP_MEAN_TOLERANCE, (i, error.max(), error.mean())
    # The control grid the original drew on is the one our random warps use.
    np.testing.assert_allclose(tps.control_grid(size, 10, 10), case['source_grid'], atol=1e-9)


def test_warp_parameters_give_the_originals_target_points(reference):
  """Our rotation-scale matrix and centre reproduce the target grid from the drawn parameters."""
  for i in _cases(reference, 'tps'):
    source = reference[f'tps/{i}/source_grid']
    rotscale, translation = reference[f'tps/{i}/rotscale'], reference[f'tps/{i}/translation']
    rotation = np.arcsin(rotscale[1, 0])  # M = [[sc_x cos r, -sin r], [sin r, sc_y cos r]]
    scale = np.array([rotscale[0, 0], rotscale[1, 1]]) / np.cos(rotation)
    params = tps.WarpParams(
      rotation=jnp.asarray([rotation]),
      scale=jnp.asarray(scale[None]),
      translation=jnp.asarray(translation[None]),
      perturbation=jnp.asarray(reference[f'tps/{i}/perturbation'][None]),
    )
    np.testing.assert_allclose(
      np.asarray(tps.warp_target_points(source, params))[0], reference[f'tps/{i}/target_grid'], atol=1e-4
    )


def _jitter_case(reference, i):
  names = [str(n) for n in reference['jitter_factor_names']]
  case = {key.split('/')[-1]: value for key, value in reference.items() if key.startswith(f'jitter/{i}/')}
  return names, case


def _ours(operation, image, factor):
  functions = {
    'brightness': color_jitter.adjust_brightness,
    'contrast': color_jitter.adjust_contrast,
    'saturation': color_jitter.adjust_saturation,
    'hue': color_jitter.adjust_hue,
  }
  return np.asarray(functions[operation](jnp.asarray(image), jnp.asarray(factor, jnp.float32)))


@pytest.mark.parametrize('operation', ['brightness', 'contrast', 'saturation', 'hue'])
def test_each_jitter_operation_matches_torchvision(reference, operation):
  cases = _cases(reference, 'jitter')
  assert cases
  worst_pixel = 0.0
  for i in cases:
    names, case = _jitter_case(reference, i)
    image = case['image'].astype(np.float32) / 255
    ours = _ours(operation, image, case['factors'][names.index(operation)])
    error = np.abs(ours - case[f'only_{operation}'].astype(np.float32) / 255)
    worst_pixel = max(worst_pixel, float(error.max()))
    if operation == 'hue':
      assert error.mean() <= HUE_MEAN_TOLERANCE, (i, error.mean())
    else:
      assert error.max() <= BLEND_TOLERANCE, (i, error.max() * 255)
  if operation == 'hue':
    assert worst_pixel <= 24 / 255, worst_pixel * 255  # PIL's 8-bit hue, on the most saturated pixels


def test_jitter_in_the_originals_order_matches_torchvision(reference):
  for i in _cases(reference, 'jitter'):
    names, case = _jitter_case(reference, i)
    image = jnp.asarray(case['image'][None].astype(np.float32) / 127.5 - 1)
    ours_names = ('brightness', 'contrast', 'saturation', 'hue')
    factors = np.array([case['factors'][names.index(n)] for n in ours_names], np.float32)
    order = np.array([ours_names.index(names[k]) for k in case['order']], np.int32)
    params = color_jitter.JitterParams(factors=jnp.asarray(factors[None]), order=jnp.asarray(order[None]))
    ours = (np.asarray(color_jitter.apply_jitter(image, params))[0] + 1) / 2
    error = np.abs(ours - case['jittered'].astype(np.float32) / 255)
    assert error.mean() <= HUE_MEAN_TOLERANCE, (i, error.mean() * 255)
