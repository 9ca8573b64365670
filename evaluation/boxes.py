"""Conversion of joints between full-frame pixels and the crop box's centred units.

For a box (x_min, y_min, x_max, y_max) of width w and height h the centred units are
u = (x - x_min - w/2) / w and v = (y - y_min - h/2) / h: the box centre is 0 and its edges are -0.5 and 0.5.
These are the regression targets of the PyTorch original's BBC Pose evaluation, flattened as
[u_1..u_J, v_1..v_J].
"""

import numpy as np


def _box_origin_and_size(boxes, num_examples):
  """Returns (N, 1, 2) box corners (x_min, y_min) and (N, 1, 2) sizes (w, h), checked."""
  boxes = np.asarray(boxes, dtype=np.float64)
  if boxes.shape != (num_examples, 4):
    raise ValueError(
      f'boxes must be a ({num_examples}, 4) array of (x_min, y_min, x_max, y_max); got shape {boxes.shape}.'
    )
  origin = boxes[:, None, 0:2]
  size = boxes[:, None, 2:4] - origin
  if not np.all(size > 0):
    bad = np.flatnonzero(np.any(size[:, 0] <= 0, axis=-1))
    raise ValueError(f'boxes need x_max > x_min and y_max > y_min; examples {bad[:10].tolist()} have an empty box.')
  return origin, size


def joints_to_box_units(joints_px, boxes):
  """Maps pixel joints into their box's centred units.

  Args:
    joints_px: (N, J, 2) joints in full-frame pixels, column 0 = x, column 1 = y.
    boxes: (N, 4) boxes (x_min, y_min, x_max, y_max) in pixels.

  Returns:
    (N, 2J) float64 targets [u_1..u_J, v_1..v_J].
  """
  joints_px = np.asarray(joints_px, dtype=np.float64)
  if joints_px.ndim != 3 or joints_px.shape[-1] != 2:
    raise ValueError(f'joints_px must be (N, J, 2); got shape {joints_px.shape}.')
  origin, size = _box_origin_and_size(boxes, joints_px.shape[0])
  units = (joints_px - origin - size / 2) / size
  # (N, J, 2) -> (N, 2, J) -> (N, 2J): all u first, then all v.
  return units.transpose(0, 2, 1).reshape(joints_px.shape[0], -1)


def box_units_to_pixels(units, boxes):
  """Inverse of `joints_to_box_units`: (N, 2J) centred units and (N, 4) boxes -> (N, J, 2) pixels."""
  units = np.asarray(units, dtype=np.float64)
  if units.ndim != 2 or units.shape[1] % 2:
    raise ValueError(f'units must be (N, 2J) with an even number of columns; got shape {units.shape}.')
  origin, size = _box_origin_and_size(boxes, units.shape[0])
  units = units.reshape(units.shape[0], 2, -1).transpose(0, 2, 1)
  return units * size + size / 2 + origin
