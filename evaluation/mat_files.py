"""MATLAB .mat files of the BBC Pose evaluation toolkit: regressed predictions and annotations.

Predictions are stored under the key 'my_pred' as a 2 x J x N array (row 0 = x, row 1 = y), the layout the
official toolkit and the PyTorch original read (`preds_test.mat`, `preds_val.mat`). The toolkit's annotations
(`results.mat`) hold a struct 'results' whose fields are the joints ('gt', 2 x J x N), frame numbers and
video numbers.
"""

import os

import numpy as np
import scipy.io

from landmarks_jax.data import files

PREDICTIONS_KEY = 'my_pred'


def write_predictions(path, pred_px):
  """Writes (N, J, 2) pixel joints to `path` as 'my_pred' of shape (2, J, N).

  The file appears whole or not at all: it is written beside `path` and then moved over it.
  Missing parent folders are created.
  """
  pred_px = np.asarray(pred_px, dtype=np.float64)
  if pred_px.ndim != 3 or pred_px.shape[-1] != 2:
    raise ValueError(f'pred_px must be (N, J, 2) pixel joints; got shape {pred_px.shape}.')
  if not np.all(np.isfinite(pred_px)):
    raise ValueError(f'pred_px holds NaN or infinite values; refusing to write {path}.')
  files.write_atomically(
    path, lambda temporary: scipy.io.savemat(temporary, {PREDICTIONS_KEY: pred_px.transpose(2, 1, 0)})
  )


def _load_mat(path):
  if not os.path.isfile(path):
    raise FileNotFoundError(f'No .mat file at {path}; check the path.')
  try:
    return scipy.io.loadmat(path)
  except Exception as error:  # scipy raises several types for files that are not .mat.
    raise ValueError(f'{path} is not a readable MATLAB .mat file ({error}); re-create or re-download it.') from error


def _joints_from_toolkit_layout(array, path, what):
  """(2, J, N) toolkit joints -> (N, J, 2) float64."""
  array = np.asarray(array)
  if array.ndim != 3 or array.shape[0] != 2:
    raise ValueError(f'{what} in {path} must be a 2 x J x N array; got shape {array.shape}.')
  return array.astype(np.float64).transpose(2, 1, 0)


def read_predictions(path):
  """Reads a 'my_pred' file (as written by `write_predictions`) back to (N, J, 2) pixel joints."""
  contents = _load_mat(path)
  if PREDICTIONS_KEY not in contents:
    keys = sorted(key for key in contents if not key.startswith('__'))
    raise ValueError(f'{path} has no {PREDICTIONS_KEY!r} array (keys: {keys}); is it a predictions file?')
  return _joints_from_toolkit_layout(contents[PREDICTIONS_KEY], path, PREDICTIONS_KEY)


def read_bbc_results(path):
  """Reads the toolkit's test annotations (`results.mat`).

  As in the PyTorch original, the joints are the field 'gt' and the frame and video numbers are the struct's
  second and third fields.

  Returns:
    {'joints': (N, J, 2) float64 pixels, 'frame': (N,) int64, 'video': (N,) int64}.
  """
  contents = _load_mat(path)
  if 'results' not in contents:
    raise ValueError(f"{path} has no 'results' struct; expected the BBC Pose toolkit's results.mat.")
  results = contents['results']
  if results.dtype.names is None or 'gt' not in results.dtype.names or len(results.dtype.names) < 3:
    raise ValueError(f"'results' in {path} must be a struct with 'gt', frame and video fields.")
  record = results[0, 0]
  joints = _joints_from_toolkit_layout(record['gt'], path, 'results.gt')
  frame = np.asarray(record[1]).astype(np.int64).reshape(-1)
  video = np.asarray(record[2]).astype(np.int64).reshape(-1)
  if not frame.shape == video.shape == (joints.shape[0],):
    raise ValueError(
      f'{path}: {joints.shape[0]} annotated frames but {frame.size} frame and {video.size} video numbers.'
    )
  return {'joints': joints, 'frame': frame, 'video': video}
