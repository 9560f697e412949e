"""Tests of theory.gram: closed-form H_inf, Monte Carlo, stable solves, singularity."""

import numpy as np
import pytest

from theory import gram
from theory.errors import SingularGramError


def _sphere(n, d, seed=0):
  x = np.random.default_rng(seed).standard_normal((n, d))
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_closed_form_matches_monte_carlo_within_standard_errors():
  x = _sphere(20, 5)
  closed = gram.gram_inf_sym(x)
  estimate, standard_error = gram.gram_monte_carlo(x, x, num_samples=10**6, seed=1)
  z_scores = np.abs(estimate - closed) / np.maximum(standard_error, 1e-12)
  assert np.max(z_scores) < 5.5  # 400 entries: |z| > 5.5 has probability ~1e-5 under H0.
  assert np.mean(z_scores) < 1.2  # Mean |z| of a standard normal is 0.8.


def test_gram_is_symmetric_psd_with_exact_half_diagonal():
  x = _sphere(30, 4, seed=2)
  h = gram.gram_inf_sym(x)
  np.testing.assert_array_equal(h, h.T)
  np.testing.assert_array_equal(np.diag(h), np.full(30, 0.5))
  spec = gram.spectrum(h)
  assert spec.lambda_min > 0
  assert spec.lambda_max <= 30 * 0.5


def test_cross_gram_agrees_with_symmetric_gram_and_clips_cosines():
  x = _sphere(8, 3, seed=3)
  np.testing.assert_allclose(gram.gram_inf(x, x), gram.gram_inf_sym(x), atol=1e-15)
  # A parallel pair whose rounded cosine exceeds 1 must not give NaN.
  nudged = x[:1] * (1 + 1e-15)
  assert np.all(np.isfinite(gram.gram_inf(nudged, x[:1])))


def test_transformed_labels_of_identical_tasks_are_the_source_labels():
  x = _sphere(15, 6, seed=4)
  y = np.tanh(x[:, 0])
  h = gram.gram_inf_sym(x)
  np.testing.assert_allclose(gram.transformed_labels(h, gram.gram_inf(x, x), y), y, atol=1e-10)
  np.testing.assert_allclose(gram.kernel_norm(h, y) ** 2, y @ np.linalg.solve(h, y), rtol=1e-10)


def test_duplicate_points_are_reported_singular_with_lambda_min():
  x = _sphere(6, 3, seed=5)
  x = np.vstack([x, x[:1]])
  with pytest.raises(SingularGramError, match="lambda_min"):
    gram.check_invertible(gram.gram_inf_sym(x), "H_inf_P")
  # Antiparallel points are fine: x and -x give an invertible 2x2 H_inf.
  assert gram.check_invertible(gram.gram_inf_sym(np.vstack([x[:1], -x[:1]])), "H").lambda_min > 0
