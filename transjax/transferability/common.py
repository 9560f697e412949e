"""What every transferability score shares: float64, dense labels, class statistics, PCA.

The scores are pure functions of NumPy-like arrays that return a Python float. Their maths
runs in JAX under `jax.enable_x64(True)`: evidences, log-determinants and pseudo-inverses of
covariance matrices lose their meaning in float32 (LogME's evidence differences between
models are often below float32's resolution of the terms it sums), and the context keeps
the process-wide dtype setting untouched, as `theory/` does.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


def in_float64(fn: F) -> F:
  """Runs `fn` with JAX's 64-bit mode on (only for the call).

  Args:
    fn: a function whose JAX computations should be float64.

  Returns:
    The wrapped function.
  """

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    with jax.enable_x64(True):
      return fn(*args, **kwargs)

  return wrapper  # type: ignore[return-value]


def as_features(features: Any) -> jax.Array:
  """(N, D) float64 features: images or feature maps are flattened per sample.

  Call inside `in_float64`, or the cast silently stays float32.

  Args:
    features: (N, ...) array.

  Returns:
    (N, D) float64 array.

  Raises:
    ValueError: the features are not finite.
  """
  x = np.asarray(features, np.float64)
  x = x.reshape(x.shape[0], -1)
  if not np.all(np.isfinite(x)):
    raise ValueError("features must be finite.")
  return jnp.asarray(x, jnp.float64)


def dense_labels(labels: Any) -> tuple[np.ndarray, int]:
  """Maps any integer labels to 0..C-1 (sorted order) and returns them with C.

  Args:
    labels: (N,) integer labels, any values.

  Returns:
    ((N,) int32 labels in [0, C), C).

  Raises:
    ValueError: fewer than two classes (no score is defined for one).
  """
  labels = np.asarray(labels).reshape(-1)
  classes, dense = np.unique(labels, return_inverse=True)
  if len(classes) < 2:
    raise ValueError(f"need at least two classes, got {len(classes)}.")
  return dense.astype(np.int32), int(len(classes))


def one_hot(labels: np.ndarray, num_classes: int) -> jax.Array:
  """(N, C) float64 one-hot matrix of dense labels."""
  return jax.nn.one_hot(jnp.asarray(labels), num_classes, dtype=jnp.float64)


def class_means(x: jax.Array, y_onehot: jax.Array) -> jax.Array:
  """(C, D) mean feature of each class (every class is assumed present)."""
  return (y_onehot.T @ x) / jnp.sum(y_onehot, axis=0)[:, None]


def covariance(x: jax.Array, *, ddof: int = 0) -> jax.Array:
  """(D, D) covariance of the rows of x, divided by N - ddof."""
  centred = x - jnp.mean(x, axis=0, keepdims=True)
  return centred.T @ centred / (x.shape[0] - ddof)


def pca(x: jax.Array, n_components: int | float) -> jax.Array:
  """The centred data projected on its leading principal axes (sklearn's PCA.fit_transform).

  An exact SVD with scikit-learn's sign convention (each axis points so that its largest
  loading is positive): PARC's row correlations change with an axis's sign, so the
  convention is part of its definition.

  Args:
    x: (N, D) data.
    n_components: an int k keeps min(k, N, D) axes; a float in (0, 1) keeps the fewest axes
      whose explained variance ratio sums to more than it (sklearn's rule).

  Returns:
    (N, k) projections U_k S_k.
  """
  centred = x - jnp.mean(x, axis=0, keepdims=True)
  u, s, vt = jnp.linalg.svd(centred, full_matrices=False)
  largest = jnp.argmax(jnp.abs(vt), axis=1)
  u = u * jnp.sign(vt[jnp.arange(vt.shape[0]), largest])[None, :]
  if isinstance(n_components, float):
    if not 0.0 < n_components < 1.0:
      raise ValueError(f"a variance fraction must lie in (0, 1), got {n_components}.")
    ratio = np.cumsum(np.asarray(s) ** 2) / float(np.sum(np.asarray(s) ** 2))
    k = int(np.searchsorted(ratio, n_components, side="right")) + 1
  else:
    k = int(n_components)
  k = max(1, min(k, s.shape[0]))
  return u[:, :k] * s[:k]
