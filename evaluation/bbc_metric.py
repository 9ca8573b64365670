"""BBC Pose accuracy: the share of joints within 6 pixels of the annotation.

Reproduces the official MATLAB toolkit as the PyTorch original does: predictions and annotations are first
mapped by 0.5 * (x - 1) + 1 (the toolkit scores at half resolution, so distances are halved), and a joint is
correct when its Euclidean error there is at most the threshold (an error of exactly 6 counts).
"""

import numpy as np

BBC_JOINT_NAMES = ('head', 'right wrist', 'left wrist', 'right elbow', 'left elbow', 'right shoulder', 'left shoulder')


def to_toolkit_scale(coords_px):
  """Maps full-resolution pixel coordinates to the toolkit's half-resolution ones: 0.5 * (x - 1) + 1."""
  return 0.5 * (np.asarray(coords_px, dtype=np.float64) - 1.0) + 1.0


def bbc_correct(pred_px, gt_px, threshold=6.0):
  """Per-joint correctness.

  Args:
    pred_px: (N, J, 2) predicted joints in full-frame pixels (x, y).
    gt_px: (N, J, 2) annotated joints in the same pixels.
    threshold: largest counted error, in toolkit (half-resolution) pixels.

  Returns:
    (N, J) bool, True where the joint is within the threshold.
  """
  pred_px = np.asarray(pred_px)
  gt_px = np.asarray(gt_px)
  if pred_px.shape != gt_px.shape or pred_px.ndim != 3 or pred_px.shape[-1] != 2:
    raise ValueError(
      f'pred_px and gt_px must both be (N, J, 2) with the same shape; got {pred_px.shape} and {gt_px.shape}.'
    )
  error = np.linalg.norm(to_toolkit_scale(pred_px) - to_toolkit_scale(gt_px), axis=-1)
  return error <= threshold


def bbc_accuracy(pred_px, gt_px, threshold=6.0, joint_names=BBC_JOINT_NAMES):
  """BBC Pose accuracy over all joints and frames, and per joint.

  Args:
    pred_px: (N, J, 2) predicted joints in full-frame pixels (x, y).
    gt_px: (N, J, 2) annotated joints.
    threshold: largest counted error in toolkit pixels (6 for the BBC Pose benchmark).
    joint_names: J names, in joint order.

  Returns:
    {'mean': float, 'per_joint': {name: float}} with accuracies in [0, 1].
  """
  correct = bbc_correct(pred_px, gt_px, threshold)
  if correct.shape[0] == 0:
    raise ValueError('Cannot score zero frames; the prediction arrays are empty.')
  if len(joint_names) != correct.shape[1]:
    raise ValueError(f'Got {len(joint_names)} joint names for {correct.shape[1]} joints.')
  per_joint = correct.mean(axis=0)
  return {
    'mean': float(correct.mean()),
    'per_joint': {name: float(value) for name, value in zip(joint_names, per_joint)},
  }
