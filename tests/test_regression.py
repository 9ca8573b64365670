"""Tests for the landmark-to-joint linear regression."""

import numpy as np
import pytest

from landmarks_jax.evaluation import regression


def test_features_put_all_x_before_all_y():
  features = regression.landmark_features([[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]])
  np.testing.assert_array_equal(features, [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
  assert features.dtype == np.float32


def test_float16_features_round_like_the_original():
  features = regression.landmark_features([[0.1]], [[-0.3]], dtype=np.float16)
  assert features.dtype == np.float16
  # 0.1 and -0.3 are not representable in float16; the nearest values are these.
  np.testing.assert_array_equal(features.astype(np.float64), [[0.0999755859375, -0.300048828125]])


def test_recovers_a_known_linear_map():
  rng = np.random.default_rng(0)
  features = rng.uniform(-1, 1, size=(60, 8))
  true_weights = rng.normal(size=(8, 6))
  weights = regression.fit_linear_map(features, features @ true_weights)
  assert weights.shape == (8, 6)
  np.testing.assert_allclose(weights, true_weights, atol=1e-10)


def test_noisy_fit_solves_the_normal_equations():
  rng = np.random.default_rng(1)
  features = rng.uniform(-1, 1, size=(100, 6))
  targets = features @ rng.normal(size=(6, 4)) + 0.1 * rng.normal(size=(100, 4))
  weights = regression.fit_linear_map(features, targets)
  expected = np.linalg.solve(features.T @ features, features.T @ targets)
  np.testing.assert_allclose(weights, expected, atol=1e-10)


def test_no_intercept_is_fitted():
  # A constant offset cannot be represented: one feature x and target x + 1 on x = 1, 2 give the
  # least-squares slope (1*2 + 2*3) / (1 + 4) = 8 / 5, not slope 1 with offset 1.
  weights = regression.fit_linear_map([[1.0], [2.0]], [[2.0], [3.0]])
  np.testing.assert_allclose(weights, [[1.6]])


def test_underdetermined_fit_gives_the_minimum_norm_solution():
  weights = regression.fit_linear_map([[1.0, 1.0]], [[2.0]])
  np.testing.assert_allclose(weights, [[1.0], [1.0]])


def test_apply_multiplies_by_the_weights():
  features = np.array([[1.0, 2.0], [3.0, -1.0]])
  weights = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]])
  np.testing.assert_allclose(regression.apply_linear_map(features, weights), [[2.0, 2.0, 0.0], [2.5, -1.0, 7.0]])


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match='same number of rows'):
    regression.fit_linear_map(np.zeros((3, 2)), np.zeros((4, 1)))
  with pytest.raises(ValueError, match='NaN'):
    regression.fit_linear_map([[np.nan, 1.0]], [[1.0]])
  with pytest.raises(ValueError, match='features'):
    regression.apply_linear_map(np.zeros((2, 3)), np.zeros((2, 1)))
  with pytest.raises(ValueError, match='mu_x and mu_y'):
    regression.landmark_features(np.zeros((2, 3)), np.zeros((2, 4)))


def test_missing_targets_fit_each_column_on_its_annotated_examples():
  rng = np.random.default_rng(3)
  features = rng.normal(size=(40, 4))
  true = rng.normal(size=(4, 3))
  targets = features @ true
  targets[:10, 0] = np.nan  # missing annotations
  targets[5:25, 2] = np.nan
  weights = regression.fit_linear_map(features, targets)
  np.testing.assert_allclose(weights, true, atol=1e-10)
  targets[:, 1] = np.nan
  with pytest.raises(ValueError, match=r'columns \[1\] have no annotated example'):
    regression.fit_linear_map(features, targets)
