"""Tests for the motion-capture joint and mask metrics and their baselines."""

import numpy as np
import pytest

from landmarks_jax.evaluation import mocap_metrics

# Per-joint offsets of Euclidean length 0, 5, 7, 15 and 30 pixels.
OFFSETS = np.array([[0.0, 0.0], [3.0, 4.0], [7.0, 0.0], [9.0, 12.0], [0.0, 30.0]])


def _joint_case():
  gt = np.array([[[50.0, 40.0]] * 5, [[20.0, 60.0]] * 5])
  return gt + OFFSETS, gt


def test_pck_uses_the_longer_box_side_and_counts_the_boundary():
  pred, gt = _joint_case()
  # Example 0: side max(100, 50) = 100, thresholds 5 / 10 / 20 -> errors within: 2 / 3 / 4 of 5.
  # Example 1: side max(50, 200) = 200, thresholds 10 / 20 / 40 -> 3 / 4 / 5 of 5.
  boxes = np.array([[0.0, 0.0, 100.0, 50.0], [10.0, 10.0, 60.0, 210.0]])
  assert mocap_metrics.pck(pred, gt, boxes) == pytest.approx({0.05: 5 / 10, 0.1: 7 / 10, 0.2: 9 / 10})
  assert mocap_metrics.pck(pred, gt, boxes, fractions=(0.5,)) == {0.5: 1.0}


def test_mean_pixel_error_overall_and_per_joint():
  pred, gt = _joint_case()
  pred[1, 0] += [6.0, 8.0]  # Joint 0 of example 1 is 10 px off, so joint 0 averages 5.
  names = ['a', 'b', 'c', 'd', 'e']
  result = mocap_metrics.mean_pixel_error(pred, gt, names)
  assert result['per_joint'] == pytest.approx({'a': 5.0, 'b': 5.0, 'c': 7.0, 'd': 15.0, 'e': 30.0})
  assert result['mean'] == pytest.approx((0 + 5 + 7 + 15 + 30 + 10 + 5 + 7 + 15 + 30) / 10)
  assert list(mocap_metrics.mean_pixel_error(pred, gt)['per_joint']) == ['0', '1', '2', '3', '4']


def test_mask_iou_thresholds_both_masks_and_scores_empty_union_as_one():
  pred = np.array([[[0.9, 0.6], [0.2, 0.5]], [[0.1, 0.0], [0.3, 0.5]]])
  gt = np.array([[[255, 0], [255, 0]], [[0, 0], [0, 0]]], dtype=np.uint8)
  # Image 0: predicted {(0,0), (0,1)} (0.5 is not above 0.5), true {(0,0), (1,0)}: 1 / 3.
  # Image 1: both empty, perfect agreement: 1.
  np.testing.assert_allclose(mocap_metrics.mask_iou_per_image(pred, gt), [1 / 3, 1.0])
  assert mocap_metrics.mask_iou(pred[..., None], gt[..., None]) == pytest.approx(2 / 3)


def test_uint8_masks_are_read_as_fractions_of_255():
  # 100 / 255 is below one half: background, unlike the float value 100 would be.
  pred = np.array([[[200, 100]]], dtype=np.uint8)
  gt = np.array([[[1.0, 1.0]]])
  assert mocap_metrics.mask_iou(pred, gt) == pytest.approx(0.5)


def test_all_foreground_iou_is_the_foreground_fraction():
  gt = np.zeros((2, 2, 2), dtype=np.float32)
  gt[0, 1, 1] = 1.0  # One of four pixels; image 1 has no foreground, so its IoU is 0.
  assert mocap_metrics.all_foreground_iou(gt) == pytest.approx((0.25 + 0.0) / 2)


def test_mean_pose_baseline_places_the_mean_training_pose_in_each_box():
  # Two joints, layout [u_1, u_2, v_1, v_2]; the mean is [0.1, 0.1, 0.0, 0.2].
  train_targets = np.array([[0.0, 0.2, -0.1, 0.3], [0.2, 0.0, 0.1, 0.1]])
  eval_boxes = np.array([[0.0, 0.0, 100.0, 200.0], [10.0, 20.0, 30.0, 60.0]])
  # Box 0: x = 0.1 * 100 + 50 = 60; y = 0 * 200 + 100 = 100 and 0.2 * 200 + 100 = 140.
  # Box 1 (w 20, h 40): x = 2 + 10 + 10 = 22; y = 0 + 20 + 20 = 40 and 8 + 20 + 20 = 48.
  expected = [[[60.0, 100.0], [60.0, 140.0]], [[22.0, 40.0], [22.0, 48.0]]]
  np.testing.assert_allclose(mocap_metrics.mean_pose_baseline(train_targets, eval_boxes), expected)


def test_bad_shapes_are_rejected():
  with pytest.raises(ValueError, match='same shape'):
    mocap_metrics.joint_errors(np.zeros((1, 2, 2)), np.zeros((1, 3, 2)))
  with pytest.raises(ValueError, match='same shape'):
    mocap_metrics.mask_iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
  with pytest.raises(ValueError, match='boxes'):
    mocap_metrics.pck(np.zeros((2, 1, 2)), np.zeros((2, 1, 2)), np.zeros((1, 4)))


def test_missing_annotations_count_in_no_score():
  gt = np.array([[[0.0, 0.0], [10.0, 0.0]], [[np.nan, np.nan], [0.0, 0.0]]])
  pred = np.array([[[3.0, 4.0], [10.0, 0.0]], [[500.0, 500.0], [0.0, 1.0]]])
  boxes = np.array([[0.0, 0.0, 100.0, 100.0]] * 2)
  error = mocap_metrics.mean_pixel_error(pred, gt, ['a', 'b'])
  assert error['mean'] == pytest.approx((5.0 + 0.0 + 1.0) / 3)
  assert error['per_joint'] == {'a': pytest.approx(5.0), 'b': pytest.approx(0.5)}
  assert mocap_metrics.pck(pred, gt, boxes, fractions=(0.02,))[0.02] == pytest.approx(2 / 3)
  gt[:, 0] = np.nan
  assert mocap_metrics.mean_pixel_error(pred, gt, ['a', 'b'])['per_joint']['a'] is None
  with pytest.raises(ValueError, match='no joint of these frames is annotated'):
    mocap_metrics.mean_pixel_error(pred, np.full_like(gt, np.nan))
  # The mean training pose averages each joint over the examples that annotate it.
  targets = np.array([[0.1, np.nan], [0.3, 0.2]])
  np.testing.assert_allclose(mocap_metrics.mean_pose_baseline(targets, boxes[:1]), [[[70.0, 70.0]]])
