"""Tests for the pixel <-> centred box unit conversion."""

import numpy as np
import pytest

from landmarks_jax.evaluation import boxes

# w = 100, h = 200, centre (60, 120).
BOX = [10.0, 20.0, 110.0, 220.0]


def test_centre_is_zero_and_edges_are_half():
  joints = np.array([[[60.0, 120.0], [10.0, 20.0], [110.0, 220.0], [35.0, 170.0]]])
  units = boxes.joints_to_box_units(joints, [BOX])
  # Layout [u_1..u_4, v_1..v_4]; the last joint: u = (35 - 10 - 50) / 100, v = (170 - 20 - 100) / 200.
  np.testing.assert_allclose(units, [[0.0, -0.5, 0.5, -0.25, 0.0, -0.5, 0.5, 0.25]])


def test_pixels_invert_box_units():
  rng = np.random.default_rng(0)
  corners = rng.uniform(0, 300, size=(5, 2))
  box_array = np.concatenate([corners, corners + rng.uniform(20, 200, size=(5, 2))], axis=1)
  joints = rng.uniform(0, 500, size=(5, 7, 2))
  units = boxes.joints_to_box_units(joints, box_array)
  assert units.shape == (5, 14)
  np.testing.assert_allclose(boxes.box_units_to_pixels(units, box_array), joints, rtol=0, atol=1e-9)


def test_units_map_to_pixels_through_each_examples_own_box():
  units = np.array([[0.25, -0.5], [0.0, 0.5]])  # One joint per example: (u, v).
  box_array = np.array([BOX, [0.0, 0.0, 40.0, 80.0]])
  pixels = boxes.box_units_to_pixels(units, box_array)
  # x = u * w + w / 2 + x_min: 25 + 50 + 10 = 85 and y = -100 + 100 + 20 = 20; then 0 + 20 + 0, 40 + 40 + 0.
  np.testing.assert_allclose(pixels, [[[85.0, 20.0]], [[20.0, 80.0]]])


def test_empty_box_is_rejected():
  with pytest.raises(ValueError, match='empty box'):
    boxes.joints_to_box_units(np.zeros((1, 1, 2)), [[5.0, 5.0, 5.0, 10.0]])
  with pytest.raises(ValueError, match=r'\(2, 4\)'):
    boxes.box_units_to_pixels(np.zeros((2, 2)), [BOX])
