"""NLEEP: LEEP with a Gaussian mixture on the features in place of the source head.

Li, Jia, Zhang, Huang, Chen, Wang, Hsieh, Zhao, Qi, Zhu. "Ranking Neural Checkpoints",
CVPR 2021. The mixture is fitted here by a small EM in JAX (full covariances, k-means++ /
Lloyd initialisation), seeded and deterministic, with scikit-learn GaussianMixture's
defaults (reg_covar 1e-6, tol 1e-3 on the mean log-likelihood, at most 100 steps), which the
reference implementations call.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import logsumexp

from transjax.transferability import common
from transjax.transferability import leep as leep_lib

VARIANCE_KEPT = 0.8          # PCA to 80% of the variance (the paper)
COMPONENTS_PER_CLASS = 5     # 5 x C mixture components (the paper)
REG_COVAR = 1e-6
MAX_EM_STEPS = 100
EM_TOL = 1e-3
KMEANS_STEPS = 50


class Mixture(NamedTuple):
  """A Gaussian mixture: weights (K,), means (K, D), Cholesky factors of covariances (K, D, D)."""

  weights: jax.Array
  means: jax.Array
  chol: jax.Array


def kmeans_plus_plus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
  """k-means++ seeding: each next centre drawn with probability proportional to D(x)^2."""
  n = x.shape[0]
  first = jax.random.randint(key, (), 0, n)
  centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
  closest = jnp.sum((x - x[first]) ** 2, axis=1)

  def add(i, carry):
    centres, closest, key = carry
    key, sub = jax.random.split(key)
    p = closest / jnp.maximum(jnp.sum(closest), 1e-300)
    j = jax.random.choice(sub, n, p=p)
    centres = centres.at[i].set(x[j])
    closest = jnp.minimum(closest, jnp.sum((x - x[j]) ** 2, axis=1))
    return centres, closest, key

  centres, _, _ = lax.fori_loop(1, k, add, (centres, closest, key))
  return centres


def kmeans_assignments(key: jax.Array, x: jax.Array, k: int,
                       steps: int = KMEANS_STEPS) -> jax.Array:
  """(N, K) one-hot cluster assignments after `steps` Lloyd iterations from k-means++."""

  def assign(centres):
    d = jnp.sum((x[:, None, :] - centres[None]) ** 2, axis=-1)
    return jax.nn.one_hot(jnp.argmin(d, axis=1), k, dtype=x.dtype)

  def lloyd(_, centres):
    r = assign(centres)
    counts = jnp.sum(r, axis=0)[:, None]
    # An empty cluster keeps its centre.
    return jnp.where(counts > 0, r.T @ x / jnp.maximum(counts, 1.0), centres)

  return assign(lax.fori_loop(0, steps, lloyd, kmeans_plus_plus(key, x, k)))


def m_step(x: jax.Array, resp: jax.Array, reg_covar: float = REG_COVAR) -> Mixture:
  """Maximum-likelihood mixture for responsibilities `resp` (N, K), covariances + reg_covar I."""
  nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(x.dtype).eps
  means = resp.T @ x / nk[:, None]
  diff = x[None] - means[:, None]                                   # (K, N, D)
  cov = jnp.einsum("kn,knd,kne->kde", resp.T, diff, diff) / nk[:, None, None]
  cov = cov + reg_covar * jnp.eye(x.shape[1])
  return Mixture(weights=nk / x.shape[0], means=means, chol=jnp.linalg.cholesky(cov))


def log_joint(x: jax.Array, mixture: Mixture) -> jax.Array:
  """(N, K) log pi_k + log N(x_i | mu_k, Sigma_k)."""
  diff = x[None] - mixture.means[:, None]                            # (K, N, D)
  solved = jax.scipy.linalg.solve_triangular(mixture.chol, jnp.swapaxes(diff, 1, 2), lower=True)
  maha = jnp.sum(solved ** 2, axis=1)                               # (K, N)
  log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(mixture.chol, axis1=1, axis2=2)), axis=1)
  d = x.shape[1]
  log_pdf = -0.5 * (maha + log_det[:, None] + d * jnp.log(2.0 * jnp.pi))
  return (log_pdf + jnp.log(mixture.weights)[:, None]).T


@functools.partial(jax.jit, static_argnames=("num_components", "max_steps"))
def fit_gaussian_mixture(x: jax.Array, num_components: int, seed: int = 0, *,
                         max_steps: int = MAX_EM_STEPS, tol: float = EM_TOL) -> Mixture:
  """EM for a full-covariance Gaussian mixture, initialised from k-means (seeded).

  Stops when the mean log-likelihood per sample changes by less than `tol` or after
  `max_steps` steps (scikit-learn's criterion).

  Args:
    x: (N, D) data.
    num_components: K.
    seed: seed of the k-means++ initialisation; the same seed gives the same mixture.
    max_steps: cap on EM steps.
    tol: convergence threshold on the mean log-likelihood.

  Returns:
    The fitted mixture.
  """
  resp = kmeans_assignments(jax.random.key(seed), x, num_components)
  mixture = m_step(x, resp)

  def step(carry):
    mixture, previous, _, i = carry
    lj = log_joint(x, mixture)
    norm = logsumexp(lj, axis=1, keepdims=True)
    mean_ll = jnp.mean(norm)
    return m_step(x, jnp.exp(lj - norm)), mean_ll, previous, i + 1

  def keep_going(carry):
    _, current, previous, i = carry
    return (i < max_steps) & (jnp.abs(current - previous) >= tol)

  inf = jnp.array(jnp.inf, x.dtype)
  mixture, _, _, _ = lax.while_loop(keep_going, step, (mixture, inf, -inf, 0))
  return mixture


def posteriors(x: jax.Array, mixture: Mixture) -> jax.Array:
  """(N, K) P(component | x_i)."""
  lj = log_joint(x, mixture)
  return jnp.exp(lj - logsumexp(lj, axis=1, keepdims=True))


@common.in_float64
def nleep(features: Any, labels: Any, *, seed: int = 0,
          components_per_class: int = COMPONENTS_PER_CLASS,
          variance_kept: float = VARIANCE_KEPT) -> float:
  """NLEEP (Li et al., CVPR 2021): LEEP with a Gaussian mixture's posteriors as the source head.

  The features are reduced by PCA to the fewest components that keep 80% of the variance;
  a Gaussian mixture with 5 x C full-covariance components is fitted to them by EM; its
  posteriors P(v | x_i) stand for the source head, and the score is
  1/N sum_i log sum_v P(y_i | v) P(v | x_i) (`leep.leep`). At most 0; higher = better
  transfer. Unchanged by scaling or rotating the features (PCA and the mixture follow),
  up to the EM's initialisation.

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.
    seed: seed of the mixture's initialisation.
    components_per_class: mixture components per target class.
    variance_kept: PCA variance fraction.

  Returns:
    The NLEEP score.
  """
  x = common.pca(common.as_features(features), variance_kept)
  _, num_classes = common.dense_labels(labels)
  mixture = fit_gaussian_mixture(x, components_per_class * num_classes, seed)
  return leep_lib.leep(posteriors(x, mixture), labels)
