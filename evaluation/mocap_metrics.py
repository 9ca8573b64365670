"""Joint and mask metrics for the motion-capture dataset, with the floors every result is compared to.

Joints: PCK (share of joints within a fraction of the crop side, max(w, h)) and mean pixel error. Masks:
intersection over union of the thresholded foreground. Baselines: the mean training pose placed in each
test box, the joints regressed from the true mask's bounding box (`mask_boxes` gives the features), and the
all-foreground mask. Annotations may be missing (NaN joints, as a keypoint CSV of your own videos allows):
each score counts the annotated joints only.
"""

import numpy as np

from landmarks_jax.evaluation import boxes as boxes_lib

DEFAULT_PCK_FRACTIONS = (0.05, 0.1, 0.2)


def _check_joint_pair(pred_px, gt_px):
  pred_px = np.asarray(pred_px, dtype=np.float64)
  gt_px = np.asarray(gt_px, dtype=np.float64)
  if pred_px.shape != gt_px.shape or pred_px.ndim != 3 or pred_px.shape[-1] != 2:
    raise ValueError(
      f'pred_px and gt_px must both be (N, J, 2) with the same shape; got {pred_px.shape} and {gt_px.shape}.'
    )
  if pred_px.shape[0] == 0:
    raise ValueError('Cannot score zero frames; the joint arrays are empty.')
  return pred_px, gt_px


def joint_errors(pred_px, gt_px):
  """(N, J, 2) predicted and annotated pixel joints -> (N, J) Euclidean errors in pixels (NaN where missing)."""
  pred_px, gt_px = _check_joint_pair(pred_px, gt_px)
  return np.linalg.norm(pred_px - gt_px, axis=-1)


def _annotated(errors):
  annotated = ~np.isnan(errors)
  if not annotated.any():
    raise ValueError('Cannot score: no joint of these frames is annotated.')
  return annotated


def pck(pred_px, gt_px, boxes, fractions=DEFAULT_PCK_FRACTIONS):
  """Percentage of correct keypoints relative to the crop size.

  A joint is correct when its error is at most fraction * max(w, h) of its example's box.

  Args:
    pred_px: (N, J, 2) predicted joints in pixels.
    gt_px: (N, J, 2) annotated joints in pixels.
    boxes: (N, 4) crop boxes (x_min, y_min, x_max, y_max).
    fractions: thresholds as fractions of the longer box side.

  Returns:
    {fraction: share of correct joints in [0, 1]}.
  """
  errors = joint_errors(pred_px, gt_px)
  boxes = np.asarray(boxes, dtype=np.float64)
  if boxes.shape != (errors.shape[0], 4):
    raise ValueError(f'boxes must be ({errors.shape[0]}, 4); got shape {boxes.shape}.')
  side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
  annotated = _annotated(errors)
  return {fraction: float(np.mean((errors <= fraction * side[:, None])[annotated])) for fraction in fractions}


def mean_pixel_error(pred_px, gt_px, joint_names=None):
  """Mean Euclidean joint error in pixels.

  Args:
    pred_px: (N, J, 2) predicted joints in pixels.
    gt_px: (N, J, 2) annotated joints in pixels.
    joint_names: J names; defaults to '0', '1', ...

  Returns:
    {'mean': float, 'per_joint': {name: float, or None for a joint annotated in none of the frames}}.
  """
  errors = joint_errors(pred_px, gt_px)
  annotated = _annotated(errors)
  if joint_names is None:
    joint_names = [str(j) for j in range(errors.shape[1])]
  if len(joint_names) != errors.shape[1]:
    raise ValueError(f'Got {len(joint_names)} joint names for {errors.shape[1]} joints.')
  per_joint = [
    float(errors[annotated[:, j], j].mean()) if annotated[:, j].any() else None for j in range(errors.shape[1])
  ]
  return {'mean': float(errors[annotated].mean()), 'per_joint': dict(zip(joint_names, per_joint))}


def _foreground(masks, threshold):
  """Masks as (N, H, W) bool foreground; uint8 masks (0..255) are read as value / 255."""
  masks = np.asarray(masks)
  if masks.ndim == 4 and masks.shape[-1] == 1:
    masks = masks[..., 0]
  if masks.ndim != 3:
    raise ValueError(f'masks must be (N, H, W) or (N, H, W, 1); got shape {masks.shape}.')
  if masks.dtype == np.uint8:
    masks = masks / 255.0
  return masks > threshold


def mask_iou_per_image(pred_masks, gt_masks, threshold=0.5):
  """Foreground IoU of each image.

  Both masks are foreground where they exceed `threshold` (floats in [0, 1], or uint8 0..255 scaled to it).
  An image where both masks are empty agrees perfectly and scores 1.

  Args:
    pred_masks: (N, H, W) or (N, H, W, 1) predicted foreground probabilities.
    gt_masks: same shape, ground-truth foreground.
    threshold: foreground threshold.

  Returns:
    (N,) float64 IoU values.
  """
  pred = _foreground(pred_masks, threshold)
  gt = _foreground(gt_masks, threshold)
  if pred.shape != gt.shape:
    raise ValueError(f'pred_masks and gt_masks must have the same shape; got {pred.shape} and {gt.shape}.')
  intersection = np.sum(pred & gt, axis=(1, 2))
  union = np.sum(pred | gt, axis=(1, 2))
  return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def mask_iou(pred_masks, gt_masks, threshold=0.5):
  """Mean over images of `mask_iou_per_image`."""
  ious = mask_iou_per_image(pred_masks, gt_masks, threshold)
  if ious.size == 0:
    raise ValueError('Cannot score zero masks; the mask arrays are empty.')
  return float(ious.mean())


def all_foreground_iou(gt_masks, threshold=0.5):
  """IoU of the trivial prediction that every pixel is foreground: the floor for mask IoU."""
  gt = _foreground(gt_masks, threshold)
  return mask_iou(np.ones(gt.shape, dtype=np.float32), gt.astype(np.float32), threshold)


def mean_pose_baseline(train_targets, eval_boxes):
  """The mean training pose, placed in each evaluation box: the floor for joint metrics.

  Args:
    train_targets: (N_train, 2J) training joints in centred box units (see `boxes.joints_to_box_units`).
    eval_boxes: (M, 4) boxes of the examples to predict.

  Returns:
    (M, J, 2) predicted joints in pixels.
  """
  train_targets = np.asarray(train_targets, dtype=np.float64)
  if train_targets.ndim != 2 or train_targets.shape[0] == 0:
    raise ValueError(f'train_targets must be a non-empty (N, 2J) array; got shape {train_targets.shape}.')
  eval_boxes = np.asarray(eval_boxes, dtype=np.float64)
  if np.isnan(train_targets).all(axis=0).any():
    raise ValueError('A joint is annotated in no training example; its mean training pose is undefined.')
  mean_pose = np.nanmean(train_targets, axis=0)
  return boxes_lib.box_units_to_pixels(np.tile(mean_pose, (eval_boxes.shape[0], 1)), eval_boxes)


def mask_boxes(masks, threshold=0.5):
  """Each mask's foreground bounding box, in the landmarks' coordinates: a floor for what landmarks tell.

  The box (x_min, y_min, x_max, y_max) holds the first and last foreground column and row, where pixel i of
  a side of S pixels sits at -1 + 2i / S, as the landmark means do; so a linear map from the box competes with
  one from the landmarks on equal terms. A mask without foreground gives the whole frame's box.

  Args:
    masks: (N, H, W) or (N, H, W, 1) masks, float in [0, 1] or uint8 0..255.
    threshold: foreground threshold.

  Returns:
    (N, 4) float32.
  """
  foreground = _foreground(masks, threshold)
  height, width = foreground.shape[1:]

  def first_and_last(any_on_axis, size):
    """(N, size) bool -> (N, 2) first and last True index, (0, size - 1) where there is none."""
    present = any_on_axis.any(axis=1)
    first = np.where(present, np.argmax(any_on_axis, axis=1), 0)
    last = np.where(present, size - 1 - np.argmax(any_on_axis[:, ::-1], axis=1), size - 1)
    return np.stack([first, last], axis=1)

  columns = first_and_last(foreground.any(axis=1), width)
  rows = first_and_last(foreground.any(axis=2), height)
  scale = np.array([2.0 / width, 2.0 / height])
  lows = -1.0 + np.stack([columns[:, 0], rows[:, 0]], axis=1) * scale
  highs = -1.0 + np.stack([columns[:, 1], rows[:, 1]], axis=1) * scale
  return np.concatenate([lows, highs], axis=1).astype(np.float32)
