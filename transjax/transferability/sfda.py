"""SFDA: self-challenging Fisher discriminant analysis.

Shao, Zhao, Ge, Lu, Luo, Shan. "Not All Models Are Equal: Predicting Model Transferability
in a Self-challenging Fisher Space", ECCV 2022 (reference code: TencentARC/SFDA).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transjax.transferability import common

# The paper's lambda = exp(-a sigma_max(S_w)) with a = 5, floored as the reference does.
SHRINKAGE_SCALE = 5.0
_MIN_SHRINKAGE = 1e-10


def _shrink(cov: jax.Array, shrinkage: jax.Array) -> jax.Array:
  """(1 - lam) S + lam (tr(S) / D) I."""
  d = cov.shape[0]
  return (1.0 - shrinkage) * cov + shrinkage * jnp.trace(cov) / d * jnp.eye(d)


def within_scatter(x: jax.Array, y_onehot: jax.Array) -> jax.Array:
  """S_w = sum_c P(c) cov_c (biased): = (1/N) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T."""
  residual = x - y_onehot @ common.class_means(x, y_onehot)
  return residual.T @ residual / x.shape[0]


def adaptive_shrinkage(x: jax.Array, y_onehot: jax.Array) -> jax.Array:
  """The paper's lam = exp(-5 sigma_max(S_w)), at least 1e-10.

  sigma_max is S_w's largest eigenvalue, computed exactly (the reference approximates it by
  three power iterations, which can only under-estimate it).
  """
  largest = jnp.linalg.eigvalsh(within_scatter(x, y_onehot))[-1]
  return jnp.maximum(jnp.exp(-SHRINKAGE_SCALE * largest), _MIN_SHRINKAGE)


def fisher_probabilities(x: jax.Array, y_onehot: jax.Array, shrinkage: jax.Array) -> jax.Array:
  """softmax(x W^T + b) of the regularised Fisher discriminant fitted to (x, y).

  The reference solves S_b v = lam' S_w^lam v (S_w^lam = `_shrink`(S_w, lam)) and keeps all
  D generalized eigenvectors V, with V^T S_w^lam V = I, so its weights
  W = means V V^T equal means (S_w^lam)^-1, which is what is solved for here (no eigenvalue
  problem needed). b_c = -1/2 mu_c^T W_c + log P(c).

  Args:
    x: (N, D) features.
    y_onehot: (N, C) labels.
    shrinkage: lam in [0, 1].

  Returns:
    (N, C) class probabilities.
  """
  means = common.class_means(x, y_onehot)
  priors = jnp.mean(y_onehot, axis=0)
  shrunk_within = _shrink(within_scatter(x, y_onehot), shrinkage)
  weights = jnp.linalg.solve(shrunk_within, means.T).T            # (C, D)
  bias = -0.5 * jnp.sum(means * weights, axis=1) + jnp.log(priors)
  return jax.nn.softmax(x @ weights.T + bias, axis=1)


def confmix(x: jax.Array, y_onehot: jax.Array, probs: jax.Array) -> jax.Array:
  """ConfMix: x_i <- p_i x_i + (1 - p_i) mu_{-y_i}.

  p_i is the softened (softmax of the) Fisher probability of x_i's true class and mu_{-c}
  the mean of the other classes' means: samples the first classifier is unsure of are
  pulled towards the other classes, so the refit has to separate the hard ones.
  """
  means = common.class_means(x, y_onehot)
  num_classes = means.shape[0]
  others = (jnp.sum(means, axis=0, keepdims=True) - means) / (num_classes - 1)
  p = jnp.sum(jax.nn.softmax(probs, axis=1) * y_onehot, axis=1, keepdims=True)
  return p * x + (1.0 - p) * (y_onehot @ others)


@common.in_float64
def sfda(features: Any, labels: Any) -> float:
  """SFDA (Shao et al., ECCV 2022): mean true-class probability of a refitted Fisher classifier.

  1. Regularised Fisher discriminant on (x, y) with within-class scatter
     S_w^lam = (1 - lam) S_w + lam (tr S_w / D) I, lam = exp(-5 sigma_max(S_w)).
  2. ConfMix: x_i <- p_i x_i + (1 - p_i) mu_{-y_i}, p_i = softmax over classes of step 1's
     probabilities at the true class (the reference's softening).
  3. Refit the same classifier (same lam) on the mixed features; the score is the mean over
     samples of its probability of the true class (no log, as the reference).
  In (0, 1]; higher = better transfer.

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.

  Returns:
    The SFDA score.
  """
  x = common.as_features(features)
  dense, num_classes = common.dense_labels(labels)
  y = common.one_hot(dense, num_classes)
  shrinkage = adaptive_shrinkage(x, y)
  mixed = confmix(x, y, fisher_probabilities(x, y, shrinkage))
  probs = fisher_probabilities(mixed, y, shrinkage)
  return float(jnp.mean(jnp.sum(probs * y, axis=1)))
