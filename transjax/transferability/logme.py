"""LogME: the log maximum evidence of a Bayesian linear model on the features.

You, Liu, Wang, Long. "LogME: Practical Assessment of Pre-trained Models for Transfer
Learning", ICML 2021; the fixed-point form from "Ranking and Tuning Pre-trained Models: A
New Paradigm for Exploiting Model Hubs", JMLR 2022 (the authors' default since).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from transjax.transferability import common

# The reference (thuml/LogME) caps the fixed point at 11 steps and stops when
# alpha / beta moves by less than 1e-3 relatively; its 1e-5 keeps the updates finite
# when a target is fitted exactly.
MAX_ITERATIONS = 11
TOLERANCE = 1e-3
_EPS = 1e-5
# Singular values at or below this are the features' null space (the reference's rank cut).
_RANK_CUTOFF = 1e-10


def log_evidence(x2: jax.Array, res_x2: jax.Array, sigma: jax.Array, valid: jax.Array,
                 alpha: jax.Array, beta: jax.Array, num_samples: int,
                 dim: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """log p(y | F, alpha, beta) of y = F w + noise, w ~ N(0, I / alpha), noise ~ N(0, 1 / beta).

  In the SVD F = U S V^T (sigma = S^2, x = U^T y):
    L = D/2 log a + N/2 log b - 1/2 sum log(a + b sigma) - b/2 ||y - F m||^2 - a/2 ||m||^2
        - N/2 log(2 pi),
  with m = b (a I + b F^T F)^-1 F^T y the posterior mean, ||m||^2 = sum sigma x^2 / (t +
  sigma)^2 and ||y - F m||^2 = sum x^2 / (1 + sigma / t)^2 + res_x2 for t = a / b.

  Args:
    x2: (k,) squared coordinates of y on the left singular vectors.
    res_x2: ||y||^2 - sum(x2): y's part outside F's column space.
    sigma: (k,) squared singular values (0 where not `valid`).
    valid: (k,) which singular values are above the rank cut.
    alpha: prior precision a.
    beta: noise precision b.
    num_samples: N.
    dim: D, the feature dimension.

  Returns:
    (L, gamma, ||m||^2, ||y - F m||^2); gamma = sum sigma / (sigma + t) is the number of
    well-determined parameters the fixed point needs.
  """
  t = alpha / beta
  gamma = jnp.sum(sigma / (sigma + t))
  m2 = jnp.sum(sigma * x2 / (t + sigma) ** 2)
  res2 = jnp.sum(x2 / (1.0 + sigma / t) ** 2) + res_x2
  log_det = jnp.sum(jnp.where(valid, jnp.log(alpha + beta * sigma), 0.0))
  evidence = (dim / 2.0 * jnp.log(alpha) + num_samples / 2.0 * jnp.log(beta) - 0.5 * log_det
              - beta / 2.0 * res2 - alpha / 2.0 * m2
              - num_samples / 2.0 * jnp.log(2.0 * jnp.pi))
  return evidence, gamma, m2, res2


def _class_evidence(x2, res_x2, sigma, valid, num_samples, dim, max_iterations, tol):
  """MacKay's fixed point alpha = gamma / ||m||^2, beta = (N - gamma) / ||y - F m||^2,
  then the evidence at the last (alpha, beta) with the statistics of the step before, as
  the reference evaluates it. Returns (evidence / N, alpha, beta)."""

  def step(carry):
    alpha, beta, i, _, _, _ = carry
    _, gamma, m2, res2 = log_evidence(x2, res_x2, sigma, valid, alpha, beta, num_samples, dim)
    new_alpha = gamma / (m2 + _EPS)
    new_beta = (num_samples - gamma) / (res2 + _EPS)
    t = alpha / beta
    done = jnp.abs(new_alpha / new_beta - t) / t <= tol
    return new_alpha, new_beta, i + 1, done, m2, res2

  def keep_going(carry):
    return (carry[2] < max_iterations) & ~carry[3]

  one = jnp.ones((), jnp.float64)
  alpha, beta, _, _, m2, res2 = lax.while_loop(
      keep_going, step, (one, one, 0, jnp.zeros((), bool), 0 * one, 0 * one))
  log_det = jnp.sum(jnp.where(valid, jnp.log(alpha + beta * sigma), 0.0))
  evidence = (dim / 2.0 * jnp.log(alpha) + num_samples / 2.0 * jnp.log(beta) - 0.5 * log_det
              - beta / 2.0 * res2 - alpha / 2.0 * m2
              - num_samples / 2.0 * jnp.log(2.0 * jnp.pi))
  return evidence / num_samples, alpha, beta


@functools.partial(jax.jit, static_argnames=("max_iterations",))
def _evidence_of_indicators(f: jax.Array, y: jax.Array, max_iterations: int,
                            tol: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One SVD of f (N, D), then the fixed point for every column of y (N, C) at once."""
  n, d = f.shape
  u, s, _ = jnp.linalg.svd(f, full_matrices=False)
  valid = s > _RANK_CUTOFF
  sigma = jnp.where(valid, s ** 2, 0.0)
  x = jnp.where(valid[:, None], u.T @ y, 0.0)                       # (k, C)
  x2 = x ** 2
  res_x2 = jnp.sum(y ** 2, axis=0) - jnp.sum(x2, axis=0)
  run = jax.vmap(_class_evidence, in_axes=(1, 0, None, None, None, None, None, None))
  return run(x2, res_x2, sigma, valid, n, d, max_iterations, tol)


def per_class_evidence(features: Any, labels: Any, *, max_iterations: int = MAX_ITERATIONS,
                       tol: float = TOLERANCE) -> tuple[jax.Array, jax.Array, jax.Array]:
  """LogME's per-class maximised evidence / N and the (alpha, beta) that reach it.

  Call inside `common.in_float64`.

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.
    max_iterations: cap on fixed-point steps.
    tol: relative change of alpha / beta that stops the iteration.

  Returns:
    ((C,) evidence / N, (C,) alpha, (C,) beta), classes in sorted label order.
  """
  f = common.as_features(features)
  dense, num_classes = common.dense_labels(labels)
  return _evidence_of_indicators(f, common.one_hot(dense, num_classes), max_iterations, tol)


@common.in_float64
def logme(features: Any, labels: Any, *, max_iterations: int = MAX_ITERATIONS,
          tol: float = TOLERANCE) -> float:
  """LogME (You et al., ICML 2021): mean over classes of max_{a,b} log p(y_c | F, a, b) / N.

  For each class c, y_c is the 0/1 indicator of c and p(y_c | F, a, b) the evidence of
  Bayesian linear regression y_c = F w + e with w ~ N(0, I/a), e ~ N(0, I/b) (see
  `log_evidence`), maximised over (a, b) by MacKay's fixed point after one SVD of F; the
  score is the mean over classes of the maximum divided by N. Higher = better transfer (the
  labels are likelier under a linear model of the features). The features are used as
  given (no centring or scaling), as the reference does; the score therefore changes
  under feature scaling, but not under an orthogonal rotation of the features.

  Args:
    features: (N, D) features of the target data from the candidate model.
    labels: (N,) integer target labels.
    max_iterations: cap on fixed-point steps (the reference's 11).
    tol: relative change of a / b that stops it (the reference's 1e-3).

  Returns:
    The LogME score.
  """
  evidence, _, _ = per_class_evidence(features, labels, max_iterations=max_iterations, tol=tol)
  return float(jnp.mean(evidence))
