"""PARC: Pairwise Annotation Representation Comparison.

Bolya, Mittapalli, Hoffman. "Scalable Diverse Model Selection for Accessible Transfer
Learning", NeurIPS 2021 (reference: dbolya/parc).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax.scipy.stats import rankdata

from transjax.transferability import common

PCA_DIMS = 32   # the paper's feature reduction


def dissimilarity(x: jnp.ndarray) -> jnp.ndarray:
  """1 - corrcoef of the rows of x: the representational dissimilarity matrix (N, N)."""
  centred = x - jnp.mean(x, axis=1, keepdims=True)
  unit = centred / jnp.linalg.norm(centred, axis=1, keepdims=True)
  return 1.0 - unit @ unit.T


def label_dissimilarity(labels: jnp.ndarray, num_classes: int) -> jnp.ndarray:
  """1 - corrcoef of one-hot label rows, in closed form: 0 within a class, C / (C - 1) across.

  Computed exactly, because rounding noise (1e-16 instead of 0) would break the ties that
  Spearman's rank correlation must see among same-class pairs.
  """
  same = labels[:, None] == labels[None, :]
  return jnp.where(same, 0.0, num_classes / (num_classes - 1.0))


def spearman(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Spearman's rank correlation (average ranks for ties, as scipy.stats.spearmanr)."""
  ra = rankdata(a) - (a.shape[0] + 1) / 2.0
  rb = rankdata(b) - (b.shape[0] + 1) / 2.0
  return jnp.sum(ra * rb) / jnp.sqrt(jnp.sum(ra ** 2) * jnp.sum(rb ** 2))


@common.in_float64
def parc(features: Any, labels: Any, *, pca_dims: int | None = PCA_DIMS) -> float:
  """PARC (Bolya et al., NeurIPS 2021): 100 x Spearman(RDM(features), RDM(labels)).

  The features are reduced by PCA to 32 dimensions (None: kept whole) and standardised per
  dimension; RDM(x) = 1 - the Pearson correlation between samples' vectors, for the
  features and for the one-hot labels; the score is 100 times the Spearman correlation of
  the two RDMs' upper triangles: how far samples of a class look alike to the model and
  unlike the others. In [-100, 100]; higher = better transfer. Invariant to scaling the
  features. The PCA is exact (the reference runs randomised PCA with one power iteration,
  an approximation of the same projection).

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.
    pca_dims: PCA dimension, or None for no reduction.

  Returns:
    The PARC score.
  """
  x = common.as_features(features)
  if pca_dims is not None:
    x = common.pca(x, pca_dims)
  std = jnp.std(x, axis=0, keepdims=True)
  x = (x - jnp.mean(x, axis=0, keepdims=True)) / jnp.where(std > 0, std, 1.0)
  dense, num_classes = common.dense_labels(labels)
  rows, cols = jnp.triu_indices(x.shape[0], 1)
  feature_rdm = dissimilarity(x)[rows, cols]
  label_rdm = label_dissimilarity(jnp.asarray(dense), num_classes)[rows, cols]
  return float(100.0 * spearman(feature_rdm, label_rdm))
