"""Tests for the toolkit's .mat prediction and annotation files."""

import numpy as np
import pytest
import scipy.io

from landmarks_jax.evaluation import mat_files


def _predictions():
  return np.random.default_rng(0).uniform(0, 700, size=(5, 7, 2))


def test_written_file_has_the_toolkit_layout(tmp_path):
  pred = _predictions()
  path = tmp_path / 'preds_test.mat'
  mat_files.write_predictions(str(path), pred)
  stored = scipy.io.loadmat(str(path))['my_pred']
  assert stored.shape == (2, 7, 5)
  # Row 0 holds x, row 1 holds y; joint j of frame n is column (j, n).
  assert stored[0, 3, 4] == pred[4, 3, 0]
  assert stored[1, 6, 2] == pred[2, 6, 1]
  np.testing.assert_array_equal(stored[1], pred[:, :, 1].T)


def test_read_inverts_write(tmp_path):
  pred = _predictions()
  path = str(tmp_path / 'new_folder' / 'preds_val.mat')
  mat_files.write_predictions(path, pred)
  np.testing.assert_array_equal(mat_files.read_predictions(path), pred)


def test_bad_predictions_leave_an_existing_file_intact(tmp_path):
  path = str(tmp_path / 'preds_test.mat')
  pred = _predictions()
  mat_files.write_predictions(path, pred)
  bad = pred.copy()
  bad[0, 0, 0] = np.nan
  with pytest.raises(ValueError, match='NaN'):
    mat_files.write_predictions(path, bad)
  np.testing.assert_array_equal(mat_files.read_predictions(path), pred)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['preds_test.mat']


def test_unreadable_files_are_explained(tmp_path):
  with pytest.raises(FileNotFoundError, match='missing.mat'):
    mat_files.read_predictions(str(tmp_path / 'missing.mat'))
  garbage = tmp_path / 'garbage.mat'
  garbage.write_bytes(b'not a mat file at all')
  with pytest.raises(ValueError, match='not a readable MATLAB'):
    mat_files.read_predictions(str(garbage))
  other = tmp_path / 'other.mat'
  scipy.io.savemat(str(other), {'something': np.zeros(3)})
  with pytest.raises(ValueError, match="no 'my_pred'"):
    mat_files.read_predictions(str(other))


def test_reads_toolkit_annotations(tmp_path):
  joints = _predictions()[:3]
  path = str(tmp_path / 'results.mat')
  scipy.io.savemat(
    path,
    {
      'results': {
        'gt': joints.transpose(2, 1, 0),
        'frameIDs': np.array([[11, 52, 9]]),
        'videoIDs': np.array([[16, 16, 17]]),
      }
    },
  )
  results = mat_files.read_bbc_results(path)
  np.testing.assert_array_equal(results['joints'], joints)
  np.testing.assert_array_equal(results['frame'], [11, 52, 9])
  np.testing.assert_array_equal(results['video'], [16, 16, 17])
