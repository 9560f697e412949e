"""The k-nearest-neighbour control: leave-one-out k-NN accuracy on the features.

Recent comparisons (e.g. Bolya et al., NeurIPS 2021; Agostinelli et al., ECCV 2022) found this
plain probe hard to beat; a score that does not beat it adds little.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transjax.transferability import common


@common.in_float64
def knn_accuracy(features: Any, labels: Any, *, k: int = 1, pca_dims: int | None = None) -> float:
  """Leave-one-out k-NN accuracy: the fraction of samples whose k nearest others (Euclidean)
  vote for their label.

  Each sample is classified by majority vote of its k nearest neighbours among the other
  samples; a tied vote goes to the tied class with the nearest member. In [0, 1]; higher =
  better transfer. Invariant to rotating, translating and scaling the features.

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.
    k: neighbours (1, as PARC's control).
    pca_dims: PCA dimension first, or None.

  Returns:
    The accuracy.
  """
  x = common.as_features(features)
  if pca_dims is not None:
    x = common.pca(x, pca_dims)
  dense, num_classes = common.dense_labels(labels)
  sq = jnp.sum(x ** 2, axis=1)
  dist = sq[:, None] + sq[None] - 2.0 * x @ x.T
  dist = jnp.where(jnp.eye(x.shape[0], dtype=bool), jnp.inf, dist)
  _, nearest = jax.lax.top_k(-dist, k)                                # (N, k), nearest first
  votes = jax.nn.one_hot(jnp.asarray(dense)[nearest], num_classes, dtype=jnp.float64)
  # Weights 1 + tiny(rank): counts decide; among equal counts the nearest member wins.
  weight = 1.0 + 1e-6 * (k - jnp.arange(k, dtype=jnp.float64)) / k
  predicted = jnp.argmax(jnp.einsum("nkc,k->nc", votes, weight), axis=1)
  return float(jnp.mean((predicted == jnp.asarray(dense)).astype(jnp.float64)))
