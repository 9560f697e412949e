"""TransRate: how much coding rate the features lose once the labels are known.

Huang, Huang, Rong, Yang, Wei. "Frustratingly Easy Transferability Estimation", ICML 2022
(the algorithm in its appendix).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transjax.transferability import common

DISTORTION = 1e-4   # the paper's epsilon


def coding_rate(z: jax.Array, weight: jax.Array | None = None, *,
                eps: float = DISTORTION) -> jax.Array:
  """R(Z, eps) = 1/2 logdet(I + Z^T Z / (n eps)) of the rows of Z (weighted rows: 0 or 1).

  Args:
    z: (N, D) data.
    weight: (N,) 0/1 row mask selecting a subset (n = its count), or None for all rows.
    eps: distortion.

  Returns:
    The coding rate in nats.
  """
  if weight is None:
    weight = jnp.ones(z.shape[0], z.dtype)
  n = jnp.sum(weight)
  gram = (z * weight[:, None]).T @ z
  _, logdet = jnp.linalg.slogdet(jnp.eye(z.shape[1]) + gram / (n * eps))
  return 0.5 * logdet


@common.in_float64
def transrate(features: Any, labels: Any, *, eps: float = DISTORTION) -> float:
  """TransRate (Huang et al., ICML 2022): R(Z, eps) - 1/C sum_c R(Z_c, eps).

  Z are the features centred over the whole sample, Z_c the rows of class c, and
  R(Z, eps) = 1/2 logdet(I + Z^T Z / (n eps)) the coding rate with distortion eps (1e-4) of
  n rows: the information the features carry about the labels, up to distortion, as the
  paper's appendix computes it (the per-class rates averaged uniformly). Higher = better
  transfer. Invariant under an orthogonal rotation of the features; not under scaling
  (eps is absolute), so features of different models are compared at their own scales.

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.
    eps: distortion.

  Returns:
    The TransRate score, in nats.
  """
  z = common.as_features(features)
  z = z - jnp.mean(z, axis=0, keepdims=True)
  dense, num_classes = common.dense_labels(labels)
  masks = common.one_hot(dense, num_classes).T                         # (C, N)
  per_class = jax.vmap(lambda m: coding_rate(z, m, eps=eps))(masks)
  return float(coding_rate(z, eps=eps) - jnp.mean(per_class))
