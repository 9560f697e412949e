"""GBC: Gaussian Bhattacharyya coefficient between the target classes in feature space.

Pándy, Agostinelli, Uijlings, Ferrari, Mensink. "Transferability Estimation using
Bhattacharyya Class Separability", CVPR 2022 (reference: google-research/stable_transfer).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from transjax.transferability import common

PCA_DIMS = 64            # the reference's reduction before fitting the class Gaussians
_MIN_VARIANCE = 1e-4     # the reference's floor on per-dimension variances


def bhattacharyya_distance(mu1: jnp.ndarray, var1: jnp.ndarray, mu2: jnp.ndarray,
                           var2: jnp.ndarray) -> jnp.ndarray:
  """D_B between N(mu1, diag var1) and N(mu2, diag var2) (per-dimension variances).

  D_B = 1/8 (mu1 - mu2)^T S^-1 (mu1 - mu2) + 1/2 log(det S / sqrt(det S1 det S2)),
  S = (S1 + S2) / 2. A spherical Gaussian passes its variance repeated on every dimension.
  """
  avg = (var1 + var2) / 2.0
  mahalanobis = jnp.sum((mu1 - mu2) ** 2 / avg) / 8.0
  log_ratio = jnp.sum(jnp.log(avg)) - 0.5 * jnp.sum(jnp.log(var1)) - 0.5 * jnp.sum(jnp.log(var2))
  return mahalanobis + 0.5 * log_ratio


@common.in_float64
def gbc(features: Any, labels: Any, *, gaussian_type: str = "spherical",
        pca_dims: int | None = PCA_DIMS) -> float:
  """GBC (Pándy et al., CVPR 2022): -sum_{c != c'} exp(-D_B(c, c')).

  The features are reduced by PCA to `pca_dims` dimensions (64, the reference's setting;
  None keeps them all); each class c is modelled as a Gaussian with its sample mean and
  per-dimension (biased) variances floored at 1e-4, averaged over the dimensions for
  "spherical" (the reference's default) or kept for "diagonal"; D_B is the Bhattacharyya
  distance and exp(-D_B) the overlap of two classes. At most 0; higher (less overlap) =
  better transfer. Invariant to scaling the features while every variance stays above the
  floor. The spherical case uses the exact Bhattacharyya distance between isotropic
  Gaussians (its log-determinant term counts every dimension); the reference code's
  spherical branch counts the log term once instead of D times.

  Args:
    features: (N, D) features.
    labels: (N,) integer labels.
    gaussian_type: "spherical" or "diagonal".
    pca_dims: PCA dimension, or None for no reduction.

  Returns:
    The GBC score.
  """
  if gaussian_type not in ("spherical", "diagonal"):
    raise ValueError(f"gaussian_type must be 'spherical' or 'diagonal', got {gaussian_type!r}.")
  x = common.as_features(features)
  if pca_dims is not None and x.shape[1] > pca_dims:
    x = common.pca(x, pca_dims)
  dense, num_classes = common.dense_labels(labels)
  y = common.one_hot(dense, num_classes)
  means = common.class_means(x, y)
  variances = common.class_means(x ** 2, y) - means ** 2
  variances = jnp.maximum(variances, _MIN_VARIANCE)
  if gaussian_type == "spherical":
    variances = jnp.broadcast_to(jnp.mean(variances, axis=1, keepdims=True), variances.shape)
  distance = jnp.vectorize(bhattacharyya_distance, signature="(d),(d),(d),(d)->()")(
      means[:, None], variances[:, None], means[None], variances[None])
  overlap = jnp.exp(-distance) * (1.0 - jnp.eye(num_classes))
  return float(-jnp.sum(overlap))
