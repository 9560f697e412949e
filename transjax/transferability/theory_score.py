"""The paper's theory as a transferability score, on the ReLU kernel of the features.

Theorem 2 of the paper (Liu, Long, Wang, Jordan) bounds how far fine-tuning moves the
weights of a wide two-layer ReLU network by about
    ||W - W(0)|| ~ sqrt((y_Q - y_P->Q)^T H_Q^-1 (y_Q - y_P->Q)),
and Arora et al. (ICML 2019) bound its generalisation gap by sqrt(2 y^T H^-1 y / n), with H
the infinite-width Gram matrix H_ij = x_i.x_j (pi - arccos(x_i.x_j)) / (2 pi) of unit inputs
(`theory.gram.gram_inf_sym`). Read on a pretrained model's features of the target sample,
the smaller these are, the smoother the labels are as a function of the representation,
and the less fine-tuning has to move: the scores here are their negatives, so that higher
= better transfer, like every score of this package.

Labels: the one-hot target labels Y (n x C), each column centred (Y - 1 p^T, p the class
frequencies): the constant part of a label is what the head's bias fits at no cost, and
without centring it the kernel's smallest eigen-directions would be charged for it.
y_P->Q: where the source head's probabilities are given, the pretrained network's own
prediction carried to the target classes by LEEP's empirical P(y | z)
(`leep.mapped_predictions`), centred the same way; otherwise 0 (a fresh head starts at 0).
Multi-class: the quadratic form is summed over the C columns (tr R^T H^-1 R).

Regularisation: H is singular where two samples have parallel features (duplicates) and
ill-conditioned where they nearly do, common for features of dimension D < n. The rule,
shared with `transjax.analysis.similarity.kernel_complexity`: H + lam I with
lam = ridge * tr(H) / n, ridge = 1e-3. On the sphere H's diagonal is 1/2, so lam = 5e-4
bounds the condition number by about n / ridge, leaves every eigen-direction with
eigenvalue >> lam as it is, and caps what a direction of H's null space can add at
||r_dir||^2 / lam. Exactly, r^T (H + lam I)^-1 r = min_f ||f||_H^2 + ||r - f(X)||^2 / lam:
the RKHS norm of a kernel-ridge fit plus its residual, the norm a network trained with a
tiny weight decay reaches instead of interpolating. The same ridge for every candidate keeps
the scores comparable.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theory import gram
from transjax.analysis.similarity import KERNEL_RIDGE
from transjax.transferability import common
from transjax.transferability import leep as leep_lib


def relu_kernel(features: Any) -> np.ndarray:
  """H-inf of the features normalised to the unit sphere (`theory.gram.gram_inf_sym`), float64.

  Args:
    features: (N, ...) features.

  Returns:
    (N, N) Gram matrix.

  Raises:
    ValueError: a feature vector is zero or not finite (no direction to normalise).
  """
  x = np.asarray(features, np.float64).reshape(len(features), -1)
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  if not np.all(np.isfinite(x)) or np.any(norms == 0):
    raise ValueError("the theory scores need finite, nonzero feature vectors.")
  return gram.gram_inf_sym(x / norms)


def residual_targets(labels: Any, source_probs: Any | None = None) -> jax.Array:
  """R = centred(Y_Q - y_P->Q): (N, C) what fine-tuning has to fit (see the module docstring).

  Call inside `common.in_float64`.

  Args:
    labels: (N,) integer target labels.
    source_probs: (N, C_s) source-head softmax on the target samples, or None.

  Returns:
    (N, C) float64 residual, columns in sorted label order, each column mean 0.
  """
  dense, num_classes = common.dense_labels(labels)
  r = common.one_hot(dense, num_classes)
  if source_probs is not None:
    r = r - leep_lib.mapped_predictions(source_probs, labels)
  return r - jnp.mean(r, axis=0, keepdims=True)


def kernel_quadratic_form(kernel: Any, targets: jax.Array, *,
                          ridge: float = KERNEL_RIDGE) -> jax.Array:
  """tr(R^T (K + lam I)^-1 R), lam = ridge * tr(K) / n, by a Cholesky solve in float64.

  Call inside `common.in_float64`.

  Args:
    kernel: (N, N) symmetric positive semi-definite Gram matrix.
    targets: (N, C) R.
    ridge: relative ridge (module docstring).

  Returns:
    The quadratic form (a scalar).
  """
  k = jnp.asarray(np.asarray(kernel, np.float64))
  n = k.shape[0]
  lam = ridge * jnp.trace(k) / n
  factor = jax.scipy.linalg.cho_factor(k + lam * jnp.eye(n), lower=True)
  return jnp.sum(targets * jax.scipy.linalg.cho_solve(factor, targets))


def deviation_score(kernel: Any, labels: Any, source_probs: Any | None = None, *,
                    ridge: float = KERNEL_RIDGE) -> float:
  """-sqrt(tr(R^T (K + lam I)^-1 R)): Theorem 2's predicted fine-tuning deviation, negated.

  Args:
    kernel: (N, N) kernel of the target sample (ReLU H-inf, or an empirical NTK).
    labels: (N,) integer target labels.
    source_probs: (N, C_s) source-head softmax, or None (y_P->Q = 0).
    ridge: relative ridge.

  Returns:
    The score (at most 0; higher = better transfer).
  """
  with jax.enable_x64(True):
    q = kernel_quadratic_form(kernel, residual_targets(labels, source_probs), ridge=ridge)
    return float(-jnp.sqrt(jnp.maximum(q, 0.0)))


def generalisation_score(kernel: Any, labels: Any, source_probs: Any | None = None, *,
                         ridge: float = KERNEL_RIDGE) -> float:
  """-sqrt(2 tr(R^T (K + lam I)^-1 R) / n): Arora et al.'s generalisation bound, negated.

  For one target sample this is the deviation score times sqrt(2 / n), so the two rank
  candidates identically; they differ across targets of different sizes.

  Args:
    kernel: (N, N) kernel of the target sample.
    labels: (N,) integer target labels.
    source_probs: (N, C_s) source-head softmax, or None.
    ridge: relative ridge.

  Returns:
    The score (at most 0; higher = better transfer).
  """
  with jax.enable_x64(True):
    q = kernel_quadratic_form(kernel, residual_targets(labels, source_probs), ridge=ridge)
    n = np.asarray(kernel).shape[0]
    return float(-jnp.sqrt(jnp.maximum(2.0 * q / n, 0.0)))


def theory_deviation(features: Any, labels: Any, source_probs: Any | None = None, *,
                     ridge: float = KERNEL_RIDGE) -> float:
  """Theory score (a), deviation form: -sqrt(R^T (H + lam I)^-1 R) on the ReLU H-inf of the
  unit-normalised features (Theorem 2 of the paper; module docstring for R and lam).

  Higher = better transfer. Invariant to scaling each feature vector (H sees directions only)
  and to rotating the features.

  Args:
    features: (N, D) features of the target sample.
    labels: (N,) integer target labels.
    source_probs: (N, C_s) the source head's softmax on the target sample, or None.
    ridge: relative ridge (1e-3).

  Returns:
    The score.
  """
  return deviation_score(relu_kernel(features), labels, source_probs, ridge=ridge)


def theory_generalisation(features: Any, labels: Any, source_probs: Any | None = None, *,
                          ridge: float = KERNEL_RIDGE) -> float:
  """Theory score (a), generalisation form: -sqrt(2 R^T (H + lam I)^-1 R / n) on the ReLU
  H-inf of the unit-normalised features (Arora et al., 2019; module docstring).

  Higher = better transfer; same invariances as `theory_deviation`.

  Args:
    features: (N, D) features of the target sample.
    labels: (N,) integer target labels.
    source_probs: (N, C_s) the source head's softmax on the target sample, or None.
    ridge: relative ridge (1e-3).

  Returns:
    The score.
  """
  return generalisation_score(relu_kernel(features), labels, source_probs, ridge=ridge)
