"""H-score and its shrinkage-regularised form.

Bao, Li, Huang, Zhang, Zheng, Zamir, Guibas. "An Information-Theoretic Approach to
Transferability in Task Transfer Learning", ICIP 2019. Ibrahim, Ponomareva, Mazumder.
"Newer is Not Always Better: Rethinking Transferability Metrics, Their Peculiarities,
Stability and Performance", ECML-PKDD 2022.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transjax.transferability import common

# The reference implementations' pseudo-inverse cut-off (numpy's default rcond).
_PINV_RTOL = 1e-15


def _class_conditional_means(f: jax.Array, labels: Any) -> jax.Array:
  """g = E[f | y] evaluated at each sample: row i is the mean feature of y_i's class."""
  dense, num_classes = common.dense_labels(labels)
  y = common.one_hot(dense, num_classes)
  return y @ common.class_means(f, y)


@common.in_float64
def hscore(features: Any, labels: Any) -> float:
  """H-score (Bao et al., ICIP 2019): tr(cov(f)^+ cov(E[f | y])).

  cov(f) is the features' covariance, E[f | y] each sample's class-mean feature, ^+ the
  pseudo-inverse (cut-off 1e-15 relative, as the reference). The score is the Fisher-like
  ratio of between-class to total variance, summed over the whitened directions: in
  [0, min(D, C - 1)], higher = better transfer. Invariant under any invertible linear map of
  the features (f -> f A), and under duplicating feature columns (the pseudo-inverse
  ignores the null space they add).

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.

  Returns:
    The H-score.
  """
  f = common.as_features(features)
  g = _class_conditional_means(f, labels)
  cov_f = common.covariance(f, ddof=1)
  cov_g = common.covariance(g, ddof=1)
  return float(jnp.trace(jnp.linalg.pinv(cov_f, rtol=_PINV_RTOL, hermitian=True) @ cov_g))


def ledoit_wolf_shrinkage(x: jax.Array) -> jax.Array:
  """Ledoit & Wolf (2004)'s optimal shrinkage of the sample covariance towards mu I.

  The formula of `sklearn.covariance.ledoit_wolf_shrinkage` (data centred here): with
  S = X^T X / N and mu = tr(S) / D,
    delta = ||S - mu I||_F^2 / D,
    beta = (1/N sum_i ||x_i x_i^T||_F^2 - ||S||_F^2) / (N D),
    shrinkage = min(beta, delta) / delta   (0 where beta = 0).

  Args:
    x: (N, D) data.

  Returns:
    The shrinkage in [0, 1].
  """
  x = x - jnp.mean(x, axis=0, keepdims=True)
  n, d = x.shape
  x2 = x ** 2
  emp_cov_trace = jnp.sum(x2, axis=0) / n
  mu = jnp.sum(emp_cov_trace) / d
  beta_sum = jnp.sum(x2.T @ x2)
  delta_sum = jnp.sum((x.T @ x) ** 2) / n ** 2
  beta = (beta_sum / n - delta_sum) / (d * n)
  delta = (delta_sum - 2.0 * mu * jnp.sum(emp_cov_trace) + d * mu ** 2) / d
  beta = jnp.minimum(beta, delta)
  return jnp.where(beta == 0, 0.0, beta / jnp.where(delta == 0, 1.0, delta))


@common.in_float64
def shrinkage_hscore(features: Any, labels: Any) -> float:
  """Shrinkage H-score (Ibrahim et al., 2022): tr(cov_a(f)^-1 (1 - a) cov(E[f | y])).

  cov_a(f) = (1 - a) S + a (tr(S)/D) I is the Ledoit-Wolf covariance of the centred
  features (S = X^T X / N) with its optimal shrinkage a (`ledoit_wolf_shrinkage`), and
  cov(E[f | y]) the covariance of the class-mean features (divided by N - 1, as the
  reference). Shrinking makes the inverse well defined when D is large against N or the
  features are redundant, where plain H-score's estimate is unstable. Higher = better
  transfer. Invariant under scaling the features by a constant (a does not change).

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.

  Returns:
    The shrinkage H-score.
  """
  f = common.as_features(features)
  f = f - jnp.mean(f, axis=0, keepdims=True)
  alpha = ledoit_wolf_shrinkage(f)
  s = common.covariance(f, ddof=0)
  d = s.shape[0]
  cov_a = (1.0 - alpha) * s + alpha * jnp.trace(s) / d * jnp.eye(d)
  cov_g = common.covariance(_class_conditional_means(f, labels), ddof=1)
  return float(jnp.trace(jnp.linalg.pinv(cov_a, rtol=_PINV_RTOL, hermitian=True)
                         @ ((1.0 - alpha) * cov_g)))
