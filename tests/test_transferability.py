"""The transferability scores against references: hand computations, the papers' reference
formulas transcribed in NumPy / scikit-learn, closed forms on tiny data, and the invariances
each paper states. Tiny synthetic features, float64."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import sklearn.covariance
import sklearn.decomposition
import sklearn.preprocessing

from transjax import transferability as tr
from transjax.transferability import (common, gbc, hscore, knn, leep, logme, nleep, parc, sfda,
                                      transrate)

FEATURE_SCORES = [n for n in tr.SCORES if n not in tr.NEEDS_SOURCE]


def _task(seed: int = 0, n: int = 90, d: int = 6, c: int = 3, sep: float = 2.5):
  """Gaussian features whose first c dimensions carry the class (a shift of `sep`)."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  x = rng.normal(size=(n, d))
  x[:, :c] += sep * np.eye(c)[y]
  return x, y


def _class_mean_rows(x, y):
  g = np.zeros_like(x)
  for c in np.unique(y):
    g[y == c] = x[y == c].mean(axis=0)
  return g


@pytest.mark.parametrize("name", FEATURE_SCORES)
def test_separable_labels_score_higher_than_shuffled(name):
  x, y = _task()
  shuffled = np.random.default_rng(1).permutation(y)
  assert tr.score(name, x, y) > tr.score(name, x, shuffled)


def test_the_registry_needs_source_probabilities_for_leep_and_nce():
  x, y = _task()
  with pytest.raises(ValueError, match="source"):
    tr.score("leep", x, y)
  with pytest.raises(KeyError):
    tr.score("nope", x, y)


def test_labels_are_any_integers():
  x, y = _task()
  np.testing.assert_allclose(tr.score("logme", x, 10 * y + 7), tr.score("logme", x, y), rtol=1e-12)


# ----------------------------------------------------------------------------- LogME


def _direct_evidence(f, y, alpha, beta):
  """log p(y | F, a, b) of Bayesian linear regression, straight from its definition."""
  n, d = f.shape
  a_mat = alpha * np.eye(d) + beta * f.T @ f
  m = beta * np.linalg.solve(a_mat, f.T @ y)
  return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.linalg.slogdet(a_mat)[1]
          - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * m @ m - n / 2 * np.log(2 * np.pi))


def test_logme_is_the_maximum_of_the_direct_evidence_over_alpha_beta():
  f, y = _task(n=40, d=4, c=2)
  import jax  # pylint: disable=import-outside-toplevel
  with jax.enable_x64(True):
    evidence, alphas, betas = logme.per_class_evidence(f, y, max_iterations=100, tol=1e-10)
  grid = np.logspace(-3, 3, 121)
  for c in range(2):
    yc = (y == c).astype(np.float64)
    np.testing.assert_allclose(float(evidence[c]) * 40,
                               _direct_evidence(f, yc, float(alphas[c]), float(betas[c])),
                               rtol=1e-9)
    best_on_grid = max(_direct_evidence(f, yc, a, b) for a in grid for b in grid)
    assert float(evidence[c]) * 40 >= best_on_grid - 1e-9
    assert float(evidence[c]) * 40 - best_on_grid < 0.01


def test_logme_with_the_reference_stopping_is_the_mean_class_evidence():
  f, y = _task(n=60, d=5, c=3)
  import jax  # pylint: disable=import-outside-toplevel
  with jax.enable_x64(True):
    evidence = np.asarray(logme.per_class_evidence(f, y)[0])
  np.testing.assert_allclose(logme.logme(f, y), float(np.mean(evidence)), rtol=1e-12)


def test_logme_is_invariant_to_rotating_the_features_and_n_below_d_works():
  f, y = _task(n=30, d=40, c=3)
  q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(40, 40)))
  np.testing.assert_allclose(logme.logme(f @ q, y), logme.logme(f, y), rtol=1e-8)


# ----------------------------------------------------------------------------- LEEP, NCE

THETA = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
Y4 = np.array([0, 0, 1, 1])


def test_leep_by_hand():
  # Joint P(y, z) = 1/4 sum_i theta_iz [y_i = y]; P(z) its column sums; P(y | z) = joint / P(z).
  p_y0_z0, p_y0_z1 = (0.9 + 0.8) / 2.1, (0.1 + 0.2) / 1.9
  p_y1_z0, p_y1_z1 = (0.3 + 0.1) / 2.1, (0.7 + 0.9) / 1.9
  expected = np.mean(np.log([0.9 * p_y0_z0 + 0.1 * p_y0_z1, 0.8 * p_y0_z0 + 0.2 * p_y0_z1,
                             0.3 * p_y1_z0 + 0.7 * p_y1_z1, 0.1 * p_y1_z0 + 0.9 * p_y1_z1]))
  np.testing.assert_allclose(leep.leep(THETA, Y4), expected, rtol=1e-12)


def test_leep_is_zero_for_a_head_that_predicts_the_target_and_ignores_class_order():
  y = np.array([0, 1, 2, 2, 1, 0])
  perfect = np.eye(4)[[3, 1, 0, 0, 1, 3]]          # source class = a relabelling of y
  np.testing.assert_allclose(leep.leep(perfect, y), 0.0, atol=1e-12)
  x, y = _task(n=60)
  theta = np.random.default_rng(3).dirichlet(np.ones(5), 60)
  np.testing.assert_allclose(leep.leep(theta[:, ::-1], y), leep.leep(theta, y), rtol=1e-12)
  assert leep.leep(theta, y) < 0


def test_nce_by_hand():
  # z = argmax = [0, 0, 1, 1] determines y: H(Y | Z) = 0.
  np.testing.assert_allclose(leep.nce(THETA, Y4), 0.0, atol=1e-15)
  # z constant: H(Y | Z) = H(Y) with P(Y) = (1/4, 3/4).
  constant = np.tile([0.6, 0.4], (4, 1))
  y = np.array([0, 1, 1, 1])
  np.testing.assert_allclose(leep.nce(constant, y), 0.25 * np.log(0.25) + 0.75 * np.log(0.75),
                             rtol=1e-12)
  # z = [0, 0, 1, 1], y = [0, 1, 1, 1]: H(Y | Z) = 1/2 H(1/2) + 1/2 * 0.
  np.testing.assert_allclose(leep.nce(THETA, y), 0.5 * np.log(0.5), rtol=1e-12)


def test_leep_rejects_rows_that_are_not_distributions():
  with pytest.raises(ValueError, match="distribution"):
    leep.leep(2 * THETA, Y4)


# ----------------------------------------------------------------------------- H-scores


def _reference_hscore(f, y):
  """Bao et al.'s published implementation."""
  g = _class_mean_rows(f, y)
  return np.trace(np.linalg.pinv(np.cov(f, rowvar=False), rcond=1e-15) @ np.cov(g, rowvar=False))


def _reference_shrinkage_hscore(f, y):
  """Ibrahim et al.'s formula with scikit-learn's Ledoit-Wolf (as the public implementations)."""
  f = f - f.mean(axis=0)
  lw = sklearn.covariance.LedoitWolf(assume_centered=False).fit(f)
  g = _class_mean_rows(f, y)
  return np.trace(np.linalg.pinv(lw.covariance_, rcond=1e-15)
                  @ ((1 - lw.shrinkage_) * np.cov(g, rowvar=False)))


def test_hscore_matches_the_published_implementation():
  f, y = _task(n=70, d=5)
  np.testing.assert_allclose(hscore.hscore(f, y), _reference_hscore(f, y), rtol=1e-9)


def test_hscore_is_invariant_to_invertible_maps_and_duplicated_features():
  f, y = _task(n=70, d=5)
  a = np.random.default_rng(4).normal(size=(5, 5))
  np.testing.assert_allclose(hscore.hscore(f @ a, y), hscore.hscore(f, y), rtol=1e-7)
  np.testing.assert_allclose(hscore.hscore(np.hstack([f, f[:, :2]]), y), hscore.hscore(f, y),
                             rtol=1e-7)


def test_ledoit_wolf_shrinkage_matches_sklearn():
  import jax  # pylint: disable=import-outside-toplevel
  f, _ = _task(n=30, d=12)
  f = f @ np.random.default_rng(5).normal(size=(12, 12))
  with jax.enable_x64(True):
    got = float(hscore.ledoit_wolf_shrinkage(jax.numpy.asarray(f)))
  np.testing.assert_allclose(got, sklearn.covariance.ledoit_wolf_shrinkage(f - f.mean(0)),
                             rtol=1e-10)


def test_shrinkage_hscore_matches_its_formula_and_is_scale_invariant():
  f, y = _task(n=40, d=20)
  np.testing.assert_allclose(hscore.shrinkage_hscore(f, y), _reference_shrinkage_hscore(f, y),
                             rtol=1e-9)
  np.testing.assert_allclose(hscore.shrinkage_hscore(7.5 * f, y), hscore.shrinkage_hscore(f, y),
                             rtol=1e-9)


# ----------------------------------------------------------------------------- SFDA


def _reference_fisher(x, y, lam):
  """TencentARC/SFDA's classifier: generalized eigenvectors of (S_b, S_w^lam), all kept."""
  classes = np.unique(y)
  priors = np.array([np.mean(y == c) for c in classes])
  means = np.stack([x[y == c].mean(0) for c in classes])
  sw = sum(p * np.cov(x[y == c].T, bias=True) for p, c in zip(priors, classes))
  d = x.shape[1]

  def shrink(s):
    return (1 - lam) * s + lam * np.trace(s) / d * np.eye(d)

  sw_lam = shrink(sw)
  _, vecs = scipy.linalg.eigh(shrink(np.cov(x.T, bias=True)) - sw_lam, sw_lam)
  coef = means @ vecs @ vecs.T
  logits = x @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
  return scipy.special.softmax(logits, axis=1)


def _reference_sfda(x, y):
  x = x.copy()
  classes = np.unique(y)
  sw = sum(np.mean(y == c) * np.cov(x[y == c].T, bias=True) for c in classes)
  lam = max(np.exp(-5 * np.linalg.eigvalsh(sw)[-1]), 1e-10)
  prob = scipy.special.softmax(_reference_fisher(x, y, lam), axis=1)
  means = np.stack([x[y == c].mean(0) for c in classes])
  others = (means.sum(0) - means) / (len(classes) - 1)
  for c in classes:
    p = prob[y == c, c][:, None]
    x[y == c] = p * x[y == c] + (1 - p) * others[c]
  return np.mean(_reference_fisher(x, y, lam)[np.arange(len(y)), y])


def test_sfda_matches_the_reference_algorithm():
  x, y = _task(n=60, d=5, sep=0.8)
  x = 0.3 * x          # small scatter: lam = exp(-5 sigma_max) is far from its floor
  np.testing.assert_allclose(sfda.sfda(x, y), _reference_sfda(x, y), rtol=1e-9)


# ----------------------------------------------------------------------------- NLEEP


def test_gaussian_mixture_log_density_matches_scipy():
  import jax  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(6)
  x = rng.normal(size=(50, 3))
  resp = rng.dirichlet(np.ones(2), 50)
  with jax.enable_x64(True):
    mixture = nleep.m_step(jax.numpy.asarray(x), jax.numpy.asarray(resp))
    got = np.asarray(nleep.log_joint(jax.numpy.asarray(x), mixture))
  for k in range(2):
    w = resp[:, k]
    mean = w @ x / w.sum()
    cov = (w[:, None] * (x - mean)).T @ (x - mean) / w.sum() + 1e-6 * np.eye(3)
    expected = np.log(w.sum() / 50) + scipy.stats.multivariate_normal(mean, cov).logpdf(x)
    np.testing.assert_allclose(got[:, k], expected, rtol=1e-6)


def test_nleep_is_deterministic_finds_separated_clusters_and_is_scale_invariant():
  x, y = _task(n=90, d=4, c=3, sep=8.0)
  first = nleep.nleep(x, y, seed=3)
  assert first == nleep.nleep(x, y, seed=3)
  # Well-separated classes: the mixture's components fall inside classes, P(y | v) ~ 1.
  assert first > -0.05
  np.testing.assert_allclose(nleep.nleep(10.0 * x, y, seed=3), first, atol=1e-6)


def test_pca_matches_sklearn():
  x, _ = _task(n=50, d=8)
  x = x @ np.random.default_rng(7).normal(size=(8, 8))
  import jax  # pylint: disable=import-outside-toplevel
  for n_components in (3, 0.8):
    reference = sklearn.decomposition.PCA(n_components, svd_solver="full").fit_transform(x)
    with jax.enable_x64(True):
      got = np.asarray(common.pca(jax.numpy.asarray(x), n_components))
    np.testing.assert_allclose(got, reference, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- GBC


def test_gbc_by_hand_in_one_dimension():
  # Two 1-D classes: D_B = (m1 - m2)^2 / (4 (v1 + v2)) + 1/2 log((v1 + v2) / (2 sqrt(v1 v2))).
  x = np.array([0.0, 2.0, 3.0, 7.0])[:, None]
  y = np.array([0, 0, 1, 1])
  m1, v1, m2, v2 = 1.0, 1.0, 5.0, 4.0
  distance = (m1 - m2) ** 2 / (4 * (v1 + v2)) + 0.5 * np.log((v1 + v2) / (2 * np.sqrt(v1 * v2)))
  np.testing.assert_allclose(gbc.gbc(x, y), -2 * np.exp(-distance), rtol=1e-12)


def test_gbc_diagonal_matches_the_reference_formula_and_is_scale_invariant():
  x, y = _task(n=60, d=3)

  def reference(x, y):
    stats = [(x[y == c].mean(0), np.maximum(x[y == c].var(0), 1e-4)) for c in range(3)]
    total = 0.0
    for i in range(3):
      for j in range(3):
        if i != j:
          (m1, s1), (m2, s2) = stats[i], stats[j]
          avg = (s1 + s2) / 2
          db = np.sum((m1 - m2) ** 2 / avg) / 8 + 0.5 * (
              np.sum(np.log(avg)) - 0.5 * np.sum(np.log(s1)) - 0.5 * np.sum(np.log(s2)))
          total += np.exp(-db)
    return -total

  np.testing.assert_allclose(gbc.gbc(x, y, gaussian_type="diagonal"), reference(x, y), rtol=1e-10)
  for kind in ("diagonal", "spherical"):
    np.testing.assert_allclose(gbc.gbc(3.0 * x, y, gaussian_type=kind),
                               gbc.gbc(x, y, gaussian_type=kind), rtol=1e-9)


# ----------------------------------------------------------------------------- TransRate


def test_transrate_matches_the_papers_algorithm_and_is_rotation_invariant():
  x, y = _task(n=60, d=5)

  def rate(z):
    n, d = z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * 1e-4))[1]

  z = x - x.mean(0)
  expected = rate(z) - np.mean([rate(z[y == c]) for c in range(3)])
  np.testing.assert_allclose(transrate.transrate(x, y), expected, rtol=1e-10)
  q, _ = np.linalg.qr(np.random.default_rng(8).normal(size=(5, 5)))
  np.testing.assert_allclose(transrate.transrate(x @ q, y), expected, rtol=1e-9)


# ----------------------------------------------------------------------------- PARC, k-NN


def _reference_parc(f, y, dims):
  if dims is not None:
    f = sklearn.decomposition.PCA(dims, svd_solver="full").fit_transform(f)
  f = sklearn.preprocessing.StandardScaler().fit_transform(f)
  labels = np.eye(y.max() + 1)[y]
  upper = np.triu_indices(len(y), 1)
  # Rounded: the label RDM's same-class entries must tie exactly (0), as they do in exact maths.
  label_rdm = np.round(1 - np.corrcoef(labels), 12)
  return 100 * scipy.stats.spearmanr((1 - np.corrcoef(f))[upper], label_rdm[upper])[0]


@pytest.mark.parametrize("dims", [None, 3])
def test_parc_matches_the_reference(dims):
  x, y = _task(n=50, d=6)
  np.testing.assert_allclose(parc.parc(x, y, pca_dims=dims), _reference_parc(x, y, dims),
                             rtol=1e-9)


def test_parc_is_scale_invariant():
  x, y = _task(n=50, d=40)
  np.testing.assert_allclose(parc.parc(4.0 * x, y), parc.parc(x, y), rtol=1e-9)


def test_knn_by_hand_and_invariances():
  x = np.array([[0.0], [0.1], [1.0], [1.2], [5.0]])
  y = np.array([0, 0, 1, 1, 0])
  # Leave-one-out 1-NN: 0->0 ok, 1->0 ok, 2->3 ok, 3->2 ok, 4->3 wrong.
  np.testing.assert_allclose(knn.knn_accuracy(x, y), 0.8)
  # k = 2 at x=5: neighbours 1.2 (class 1) and 1.0 (class 1): wrong; at x=0: 0.1 (0), 1.0 (1):
  # a tie, the nearest (class 0) wins.
  np.testing.assert_allclose(knn.knn_accuracy(x, y, k=2), 0.8)
  f, y = _task(n=60, d=5)
  q, _ = np.linalg.qr(np.random.default_rng(9).normal(size=(5, 5)))
  np.testing.assert_allclose(knn.knn_accuracy(3 * f @ q + 1, y), knn.knn_accuracy(f, y))
