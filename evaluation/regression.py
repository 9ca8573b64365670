"""Linear regression from unsupervised landmarks to annotated joints.

The landmarks are only meaningful up to a linear map, so they are scored by fitting one on the training split
(least squares, no intercept) and applying it to the other splits. This matches the PyTorch original, which
uses scikit-learn's `Ridge(alpha=0, fit_intercept=False)`; here the same solution comes from
`numpy.linalg.lstsq` in float64.
"""

import numpy as np


def landmark_features(mu_x, mu_y, dtype=np.float32):
  """Stacks landmark means into regression features.

  Args:
    mu_x: (N, K) landmark x coordinates in [-1, 1].
    mu_y: (N, K) landmark y coordinates in [-1, 1].
    dtype: storage precision of the features. The PyTorch original stores them as float16 before regressing;
      pass `np.float16` to reproduce its numbers exactly.

  Returns:
    (N, 2K) features ordered [mu_x_1..mu_x_K, mu_y_1..mu_y_K].
  """
  mu_x = np.asarray(mu_x)
  mu_y = np.asarray(mu_y)
  if mu_x.ndim != 2 or mu_x.shape != mu_y.shape:
    raise ValueError(f'mu_x and mu_y must both be (N, K) arrays of the same shape; got {mu_x.shape} and {mu_y.shape}.')
  return np.concatenate([mu_x, mu_y], axis=1).astype(dtype)


def _check_finite_matrix(name, array):
  array = np.asarray(array)
  if array.ndim != 2:
    raise ValueError(f'{name} must be a 2-D (examples, values) array; got shape {array.shape}.')
  if not np.all(np.isfinite(array)):
    raise ValueError(f'{name} holds NaN or infinite values; check the model output or annotations.')
  return array.astype(np.float64)


def fit_linear_map(features, targets):
  """Least-squares linear map without intercept: argmin_W ||features @ W - targets||^2.

  With fewer examples than features the problem is underdetermined and the minimum-norm solution is returned.
  NaN targets are missing annotations: each target column is fitted on the examples that annotate it (a column
  annotated nowhere is an error).

  Args:
    features: (N, F) training features, e.g. F = 2K landmark coordinates.
    targets: (N, T) training targets, e.g. T = 2J joint coordinates in centred box units.

  Returns:
    (F, T) float64 weights.
  """
  features = _check_finite_matrix('features', features)
  targets = np.asarray(targets, dtype=np.float64)
  if targets.ndim != 2 or np.any(np.isinf(targets)):
    raise ValueError(
      f'targets must be a 2-D (examples, values) array without infinite values; got shape {targets.shape}.'
    )
  if features.shape[0] != targets.shape[0]:
    raise ValueError(
      f'features and targets must have the same number of rows (examples); '
      f'got {features.shape[0]} and {targets.shape[0]}.'
    )
  if features.shape[0] == 0:
    raise ValueError('Cannot fit a linear map on zero examples; the training split is empty.')
  annotated = ~np.isnan(targets)
  if annotated.all():
    return np.linalg.lstsq(features, targets, rcond=None)[0]
  unannotated = np.flatnonzero(~annotated.any(axis=0))
  if unannotated.size:
    raise ValueError(f'Target columns {unannotated.tolist()} have no annotated example to fit on.')
  weights = np.empty((features.shape[1], targets.shape[1]))
  # Columns missing on the same examples (a keypoint's x and y) share one solve.
  patterns, column_pattern = np.unique(annotated.T, axis=0, return_inverse=True)
  for pattern_index, rows in enumerate(patterns):
    columns = np.flatnonzero(column_pattern.reshape(-1) == pattern_index)
    weights[:, columns] = np.linalg.lstsq(features[rows], targets[rows][:, columns], rcond=None)[0]
  return weights


def apply_linear_map(features, weights):
  """Applies fitted weights: (N, F) features, (F, T) weights -> (N, T) float64 predictions."""
  features = _check_finite_matrix('features', features)
  weights = np.asarray(weights, dtype=np.float64)
  if weights.ndim != 2 or weights.shape[0] != features.shape[1]:
    raise ValueError(f'weights must be (F, T) with F = {features.shape[1]} features; got shape {weights.shape}.')
  return features @ weights
