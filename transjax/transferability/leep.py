"""LEEP and NCE: scores from the source head's predictions on the target data.

Nguyen, Hassner, Seeger, Archambeau. "LEEP: A New Measure to Evaluate Transferability of
Learned Representations", ICML 2020. Tran, Nguyen, Hassner. "Transferability and Hardness
of Supervised Classification Tasks" (NCE), ICCV 2019.

Both read the empirical joint distribution of target label y and source label z over the
target sample; `target_given_source` is that joint's conditional P(y | z), which also maps a
pretrained network's own prediction to the target classes for the theory scores.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from transjax.transferability import common


def _source_probs(source_probs: Any, num_samples: int) -> jax.Array:
  """(N, C_s) float64 probabilities, checked to be rows of a distribution."""
  theta = jnp.asarray(np.asarray(source_probs, np.float64))
  if theta.ndim != 2 or theta.shape[0] != num_samples:
    raise ValueError(f"source_probs must be (N={num_samples}, C_s), got {theta.shape}.")
  if not np.allclose(np.asarray(jnp.sum(theta, axis=1)), 1.0, atol=1e-4) or np.any(
      np.asarray(theta) < 0):
    raise ValueError("source_probs rows must be probability distributions (softmax outputs).")
  return theta


def target_given_source(theta: jax.Array, y_onehot: jax.Array) -> jax.Array:
  """P(y | z) = P(y, z) / P(z), with P(y, z) = 1/N sum_i theta_iz 1[y_i = y].

  Args:
    theta: (N, C_s) source-class probabilities of the target samples.
    y_onehot: (N, C_t) one-hot target labels.

  Returns:
    (C_t, C_s) conditional; a source class no sample gives weight to has a zero column.
  """
  joint = y_onehot.T @ theta / theta.shape[0]
  marginal = jnp.sum(joint, axis=0, keepdims=True)
  return jnp.where(marginal > 0, joint / jnp.where(marginal > 0, marginal, 1.0), 0.0)


def mapped_predictions(source_probs: Any, labels: Any) -> jax.Array:
  """The source head's prediction carried to the target classes: theta @ P(y | z)^T.

  Row i is LEEP's "expected empirical predictor" p(y | x_i) = sum_z P(y | z) theta_iz, a
  distribution over the target classes (sorted label order). Call inside
  `common.in_float64`.

  Args:
    source_probs: (N, C_s) source-head softmax on the target samples.
    labels: (N,) integer target labels.

  Returns:
    (N, C_t) predictions.
  """
  dense, num_classes = common.dense_labels(labels)
  theta = _source_probs(source_probs, len(dense))
  return theta @ target_given_source(theta, common.one_hot(dense, num_classes)).T


@common.in_float64
def leep(source_probs: Any, labels: Any) -> float:
  """LEEP (Nguyen et al., ICML 2020): 1/N sum_i log sum_z P(y_i | z) theta_i(z).

  theta_i = the source head's softmax on target sample x_i and P(y | z) the conditional of
  the empirical joint P(y, z) = 1/N sum_i theta_i(z) 1[y_i = y]: the average log-likelihood
  of the target labels under the source classifier followed by the best fixed
  source-to-target label map. At most 0; higher = better transfer. Invariant to
  relabelling target or source classes.

  Args:
    source_probs: (N, C_s) source-head softmax on the target samples.
    labels: (N,) integer target labels.

  Returns:
    The LEEP score.
  """
  dense, _ = common.dense_labels(labels)
  predictions = mapped_predictions(source_probs, labels)
  return float(jnp.mean(jnp.log(predictions[jnp.arange(len(dense)), dense])))


@common.in_float64
def nce(source_probs: Any, labels: Any) -> float:
  """NCE (Tran et al., ICCV 2019): -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z).

  Z = argmax_z theta_i(z) is the source head's hard label of each target sample and
  P(y, z) the empirical joint of (target label, source label), 0 log 0 = 0. The negative
  conditional entropy: 0 when the source label determines the target label, lower the
  less it does; higher = better transfer.

  Args:
    source_probs: (N, C_s) source-head probabilities (or any scores: only the argmax is used).
    labels: (N,) integer target labels.

  Returns:
    The NCE score.
  """
  dense, num_classes = common.dense_labels(labels)
  theta = jnp.asarray(np.asarray(source_probs, np.float64))
  z = jax.nn.one_hot(jnp.argmax(theta, axis=1), theta.shape[1], dtype=jnp.float64)
  y = common.one_hot(dense, num_classes)
  joint = y.T @ z / len(dense)
  conditional = target_given_source(z, y)
  return float(jnp.sum(xlogy(joint, conditional)))
