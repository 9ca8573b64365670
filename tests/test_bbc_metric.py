"""Tests for the BBC Pose 6-pixel accuracy."""

import numpy as np
import pytest

from landmarks_jax.evaluation import bbc_metric


def test_toolkit_scale_halves_about_one():
  np.testing.assert_allclose(bbc_metric.to_toolkit_scale([1.0, 3.0, 101.0]), [1.0, 2.0, 51.0])


def _hand_made_case():
  """Two frames; the toolkit's 0.5 * (x - 1) + 1 mapping halves every raw pixel offset.

  Frame 0 raw offsets (dx, dy) per joint and their mapped distance:
    head (0, 0) -> 0 counted; right wrist (0, 12) -> exactly 6, counted; left wrist (12.5, 0) -> 6.25, not;
    right elbow (6, 8) -> raw 10 but mapped 5, counted; left elbow (9, 12) -> 7.5, not;
    right shoulder (-12, 0) -> exactly 6, counted; left shoulder (0, -13) -> 6.5, not.
  Frame 1: every joint exact except the head, 100 px off.
  """
  gt = np.tile(np.array([101.0, 201.0]), (2, 7, 1))
  offsets = np.zeros((2, 7, 2))
  offsets[0] = [[0, 0], [0, 12], [12.5, 0], [6, 8], [9, 12], [-12, 0], [0, -13]]
  offsets[1, 0] = [100, 0]
  return gt + offsets, gt


def test_hand_made_accuracy_counts_exactly_six():
  pred, gt = _hand_made_case()
  np.testing.assert_array_equal(bbc_metric.bbc_correct(pred, gt), [[1, 1, 0, 1, 0, 1, 0], [0, 1, 1, 1, 1, 1, 1]])
  result = bbc_metric.bbc_accuracy(pred, gt)
  assert result['mean'] == pytest.approx(10 / 14)
  assert result['per_joint'] == pytest.approx(
    {
      'head': 0.5,
      'right wrist': 1.0,
      'left wrist': 0.5,
      'right elbow': 1.0,
      'left elbow': 0.5,
      'right shoulder': 1.0,
      'left shoulder': 0.5,
    }
  )


def test_threshold_is_a_parameter():
  pred, gt = _hand_made_case()
  # At 5, the two joints exactly 6 away drop out: frame 0 keeps head and right elbow only.
  assert bbc_metric.bbc_accuracy(pred, gt, threshold=5.0)['mean'] == pytest.approx(8 / 14)


def test_mismatched_shapes_are_rejected():
  with pytest.raises(ValueError, match='same shape'):
    bbc_metric.bbc_accuracy(np.zeros((2, 7, 2)), np.zeros((3, 7, 2)))
  with pytest.raises(ValueError, match='joint names'):
    bbc_metric.bbc_accuracy(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)))
