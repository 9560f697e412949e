"""The paper's theory as a transferability score: the ReLU H-inf forms against a direct NumPy
evaluation, their invariances and regularisation rule, and the empirical NTK against closed
forms (a linear head; the paper's two-layer network, `theory.twolayer.activation_gram`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theory import gram, twolayer
from transjax.analysis import similarity
from transjax.transferability import ntk, theory_score


def _task(seed: int = 0, n: int = 40, d: int = 5, c: int = 3, sep: float = 2.5):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  x = rng.normal(size=(n, d))
  x[:, :c] += sep * np.eye(c)[y]
  return x, y


def _direct_quadratic_form(x, y, probs=None, ridge=1e-3):
  """tr(R^T (H + lam I)^-1 R) from the definitions, in NumPy."""
  u = x / np.linalg.norm(x, axis=1, keepdims=True)
  cos = np.clip(u @ u.T, -1, 1)
  h = cos * (np.pi - np.arccos(cos)) / (2 * np.pi)
  np.fill_diagonal(h, 0.5)   # exact on the sphere; arccos(1 - 1e-16) would add 1e-8
  r = np.eye(y.max() + 1)[y]
  if probs is not None:
    joint = r.T @ probs / len(y)
    r = r - probs @ (joint / joint.sum(0, keepdims=True)).T
  r = r - r.mean(0)
  lam = ridge * np.trace(h) / len(y)
  return np.sum(r * np.linalg.solve(h + lam * np.eye(len(y)), r))


def test_relu_kernel_is_the_theory_packages_h_inf_of_unit_features():
  x, _ = _task()
  u = x / np.linalg.norm(x, axis=1, keepdims=True)
  np.testing.assert_allclose(theory_score.relu_kernel(x), gram.gram_inf_sym(u), rtol=1e-14)


def test_deviation_and_generalisation_forms_match_a_direct_evaluation():
  x, y = _task()
  probs = np.random.default_rng(1).dirichlet(np.ones(4), len(y))
  for p in (None, probs):
    q = _direct_quadratic_form(x, y, p)
    np.testing.assert_allclose(theory_score.theory_deviation(x, y, p), -np.sqrt(q), rtol=1e-9)
    np.testing.assert_allclose(theory_score.theory_generalisation(x, y, p),
                               -np.sqrt(2 * q / len(y)), rtol=1e-9)


def test_the_ridge_rule_is_kernel_complexitys():
  # Same kernel, ridge and (uncentred one-hot) labels: tr(Y^T (H + lam I)^-1 Y) = n C k^2 / 2.
  x, y = _task()
  with jax.enable_x64(True):
    q = float(theory_score.kernel_quadratic_form(theory_score.relu_kernel(x),
                                                 jnp.asarray(np.eye(3)[y])))
  np.testing.assert_allclose(q, len(y) * 3 * similarity.kernel_complexity(x, y) ** 2 / 2,
                             rtol=1e-9)


def test_a_source_head_that_predicts_the_target_leaves_nothing_to_fit():
  x, y = _task()
  perfect = np.eye(5)[np.array([4, 0, 2])[y]]
  np.testing.assert_allclose(theory_score.theory_deviation(x, y, perfect), 0.0, atol=1e-12)


def test_invariant_to_rescaling_samples_and_rotating_features():
  x, y = _task()
  rng = np.random.default_rng(2)
  q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
  scales = rng.uniform(0.1, 10, size=(len(y), 1))
  np.testing.assert_allclose(theory_score.theory_deviation(scales * x @ q, y),
                             theory_score.theory_deviation(x, y), rtol=1e-9)


def test_duplicated_samples_stay_finite_under_the_ridge():
  x, y = _task()
  x2, y2 = np.vstack([x, x[:5]]), np.concatenate([y, y[:5]])
  assert np.isfinite(theory_score.theory_deviation(x2, y2))


def test_separable_beats_shuffled():
  x, y = _task(n=60)
  shuffled = np.random.default_rng(3).permutation(y)
  assert theory_score.theory_deviation(x, y) > theory_score.theory_deviation(x, shuffled)


def test_empirical_ntk_of_a_linear_head_is_x_xt_plus_one():
  x, _ = _task(n=12, d=4)
  params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    kernel = ntk.empirical_ntk(lambda p, z: z @ p["w"] + p["b"], params, x, batch_size=5)
  np.testing.assert_allclose(kernel, x @ x.T + 1.0, rtol=1e-12)


def test_empirical_ntk_of_the_papers_two_layer_network_is_its_activation_gram():
  # f(W; x) = 1/sqrt(m) sum_r a_r relu(w_r.x), a_r = +-1, trained in W (the paper's set-up):
  # its NTK is (x_i.x_j) (1/m) sum_r 1{w_r.x_i >= 0} 1{w_r.x_j >= 0}, whose m -> inf limit is H-inf.
  x, y = _task(n=15, d=4)
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  net = twolayer.init_network(seed=0, width=64, dim=4, kappa=1.0)

  def apply_fn(w, z):
    return jax.nn.relu(z @ w) @ net.signs / np.sqrt(net.width)

  with jax.enable_x64(True):
    kernel = ntk.empirical_ntk(apply_fn, jnp.asarray(net.w_init), x)
  np.testing.assert_allclose(kernel, twolayer.activation_gram(net.w_init, x, net.w_init, x),
                             rtol=1e-12, atol=1e-14)
  with jax.enable_x64(True):
    expected = theory_score.deviation_score(kernel, y)
    got = ntk.ntk_deviation(apply_fn, jnp.asarray(net.w_init), x, y)
    generalisation = ntk.ntk_generalisation(apply_fn, jnp.asarray(net.w_init), x, y)
  np.testing.assert_allclose(got, expected, rtol=1e-12)
  np.testing.assert_allclose(generalisation, got * np.sqrt(2 / len(y)), rtol=1e-12)
