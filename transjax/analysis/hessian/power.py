"""Top-k Hessian eigenvalues by power iteration with deflation (PyHessian), for comparison
with Lanczos."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from transjax import distributed
from transjax.analysis.hessian import basis as basis_lib
from transjax.analysis.hessian import lanczos


def power_iteration_top_k(op, k: int = 20, *, tol: float = 1e-3, max_iters: int = 100,
                          seed: int = 0,
                          return_vectors: bool = False) -> lanczos.EigenResult:
  """Top-k (largest-magnitude) eigenvalues by power iteration with deflation.

  PyHessian's method (Yao et al. 2020): for i = 1..k, iterate v <- H v / ||H v|| with v
  kept orthogonal to the eigenvectors already found, until the Rayleigh quotient changes by
  less than tol relative (|new - old| / (|old| + 1e-6)). Kept for comparison with Lanczos.
  """
  k = min(k, op.dim)
  start, count0 = time.perf_counter(), op.hvp_count
  key = jax.random.key(seed)
  values, changes, total_iters, all_converged = [], [], 0, True
  basis = jnp.zeros((k, op.dim), op.dtype)
  for i in range(k):
    key, sub = jax.random.split(key)
    v = basis_lib._random_unit(sub, op.dim, op.dtype)
    value, change, converged = None, np.inf, False
    for _ in range(max_iters):
      v = basis_lib._orthogonalize(basis, v, i)
      v = v / jnp.linalg.norm(v)
      hv = op.matvec(v)
      total_iters += 1
      new = float(jnp.vdot(hv, v))
      norm = float(jnp.linalg.norm(hv))
      if value is not None:
        change = abs(value - new) / (abs(value) + 1e-6)
      value = new
      v = hv / max(norm, 1e-30)
      if change < tol:
        converged = True
        break
    all_converged &= converged
    v = basis_lib._orthogonalize(basis, v, i)
    v = v / jnp.linalg.norm(v)
    basis = basis_lib._set_row(basis, i, v)
    values.append(value)
    changes.append(change)
  values_np = np.array(values)
  order = np.argsort(-values_np)
  vectors = distributed.to_numpy(basis)[order] if return_vectors else None
  return lanczos.EigenResult("power_iteration", values_np[order], np.array(changes)[order],
                             op.hvp_count - count0, total_iters, all_converged, tol,
                             time.perf_counter() - start, vectors)
