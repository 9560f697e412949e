"""Closed-form infinite-width Gram matrices of the two-layer ReLU network (Section 6.1).

Everything here is float64 numpy/scipy: the Gram matrices are small (n x n with
n <= a few thousand) and the linear algebra must be exact enough to compare with
finite-width measurements whose errors go down like m^-1/2.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg

from theory.errors import SingularGramError


@dataclasses.dataclass(frozen=True)
class Spectrum:
  """Extreme eigenvalues of a symmetric positive semi-definite matrix."""

  lambda_min: float
  lambda_max: float


def gram_inf(x_left: np.ndarray, x_right: np.ndarray) -> np.ndarray:
  """Returns H_ij = x_i.x_j (pi - arccos(x_i.x_j)) / (2 pi) for rows of the inputs.

  This is E_{w ~ N(0, I)}[x_i.x_j 1{w.x_i >= 0, w.x_j >= 0}] for unit vectors.

  Args:
    x_left: (n_left, d) inputs on the unit sphere.
    x_right: (n_right, d) inputs on the unit sphere.

  Returns:
    (n_left, n_right) float64 matrix.
  """
  x_left = np.asarray(x_left, dtype=np.float64)
  x_right = np.asarray(x_right, dtype=np.float64)
  inner = x_left @ x_right.T
  # Rounding can push |cos| a hair above 1, where arccos returns NaN.
  cosine = np.clip(inner, -1.0, 1.0)
  return inner * (np.pi - np.arccos(cosine)) / (2.0 * np.pi)


def gram_inf_sym(x: np.ndarray) -> np.ndarray:
  """Returns the symmetric H_inf of one sample, with an exact diagonal ||x_i||^2 / 2 (1/2 on the sphere)."""
  x = np.asarray(x, dtype=np.float64)
  gram = gram_inf(x, x)
  gram = 0.5 * (gram + gram.T)  # Symmetric to the last bit.
  squared_norms = np.sum(x * x, axis=1)
  # On the sphere the diagonal is exactly 1/2; do not let the rounding of ||x||^2 leak in.
  squared_norms = np.where(np.abs(squared_norms - 1.0) < 1e-12, 1.0, squared_norms)
  np.fill_diagonal(gram, 0.5 * squared_norms)
  return gram


def spectrum(gram: np.ndarray) -> Spectrum:
  """Returns the smallest and largest eigenvalues of a symmetric matrix."""
  eigenvalues = scipy.linalg.eigvalsh(gram)
  return Spectrum(lambda_min=float(eigenvalues[0]), lambda_max=float(eigenvalues[-1]))


def check_invertible(gram: np.ndarray, name: str, min_eigenvalue: float = 1e-10) -> Spectrum:
  """Returns the spectrum of `gram`, raising SingularGramError if it is (nearly) singular.

  Duplicate or parallel inputs make two rows of H_inf equal, so lambda_min = 0 and
  the theorems' H_inf^{-1} does not exist.

  Args:
    gram: symmetric PSD matrix.
    name: what it is, for the message (e.g. "H_inf_P").
    min_eigenvalue: smallest acceptable lambda_min.

  Returns:
    The spectrum.

  Raises:
    SingularGramError: lambda_min <= min_eigenvalue.
  """
  spec = spectrum(gram)
  if not spec.lambda_min > min_eigenvalue:
    raise SingularGramError(
        f"{name} is singular: lambda_min = {spec.lambda_min:.3e} <= {min_eigenvalue:.1e} "
        f"(lambda_max = {spec.lambda_max:.3e}). Duplicate or parallel inputs make H_inf "
        "singular; remove duplicates or draw distinct points.")
  return spec


def gram_monte_carlo(x_left: np.ndarray, x_right: np.ndarray, num_samples: int, seed: int,
                     chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
  """Monte-Carlo estimate of H_inf with w ~ N(0, I), and the standard error of each entry.

  Args:
    x_left: (n_left, d) inputs.
    x_right: (n_right, d) inputs.
    num_samples: number of Gaussian w.
    seed: numpy seed; the same seed gives the same estimate.
    chunk: samples per batch, to bound memory.

  Returns:
    (estimate, standard_error), both (n_left, n_right).
  """
  x_left = np.asarray(x_left, dtype=np.float64)
  x_right = np.asarray(x_right, dtype=np.float64)
  rng = np.random.default_rng(seed)
  both_active = np.zeros((x_left.shape[0], x_right.shape[0]))
  done = 0
  while done < num_samples:
    size = min(chunk, num_samples - done)
    w = rng.standard_normal((x_left.shape[1], size))
    active_left = (x_left @ w >= 0).astype(np.float64)
    active_right = (x_right @ w >= 0).astype(np.float64)
    both_active += active_left @ active_right.T
    done += size
  probability = both_active / num_samples
  inner = x_left @ x_right.T
  # Each sample is inner * Bernoulli(p), so its variance is inner^2 p (1 - p).
  standard_error = np.abs(inner) * np.sqrt(probability * (1 - probability) / num_samples)
  return inner * probability, standard_error


def solve_pos(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
  """Solves gram @ z = rhs for a symmetric positive definite gram (Cholesky, no inverse)."""
  return scipy.linalg.solve(gram, rhs, assume_a="pos")


def transformed_labels(gram_p: np.ndarray, gram_pq: np.ndarray, y_p: np.ndarray) -> np.ndarray:
  """Returns y_{P->Q} = H_inf_PQ^T H_inf_P^{-1} y_P."""
  return gram_pq.T @ solve_pos(gram_p, y_p)


def kernel_norm(gram: np.ndarray, vector: np.ndarray) -> float:
  """Returns sqrt(v^T H^{-1} v), the RKHS norm the Theorem 2 bound is made of."""
  return float(np.sqrt(max(float(vector @ solve_pos(gram, vector)), 0.0)))
