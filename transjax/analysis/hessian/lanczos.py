"""Top-k Hessian eigenvalues by Lanczos with full reorthogonalisation (the paper's Fig 3).

`lanczos_top_k` on any operator with `dim`, `dtype`, `matvec` (`operator.HessianOperator`,
`operator.DenseOperator`); `layer_top_k` on one layer's Hessian. The Lanczos run itself
(`_lanczos_fast`) and the tridiagonal eigensolver are shared with `density.slq_density`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from absl import logging

from transjax import distributed, progress
from transjax.analysis.hessian import basis as basis_lib
from transjax.analysis.hessian import operator


@dataclasses.dataclass
class EigenResult:
  """Top-k eigenvalues (descending) and how they were obtained."""
  method: str
  eigenvalues: np.ndarray
  residuals: np.ndarray          # Ritz residual bound ||H x - theta x|| (lanczos) or last relative change
  hvp_count: int
  iterations: int
  converged: bool
  tol: float
  seconds: float
  eigenvectors: np.ndarray | None = None   # (k, dim) when requested

  def to_dict(self) -> dict[str, Any]:
    return {"method": self.method, "eigenvalues": [float(x) for x in self.eigenvalues],
            "residuals": [float(x) for x in self.residuals], "hvp_count": self.hvp_count,
            "iterations": self.iterations, "converged": self.converged, "tol": self.tol,
            "seconds": self.seconds}


@functools.partial(jax.jit, donate_argnums=(0,))
def _lanczos_update(basis, q, w, j, beta_prev):
  """One Lanczos step after its HVP w = H q: row j of the (donated, updated in place)
  basis set to q, alpha = q.w, the three-term recurrence w - alpha q - beta_prev q_prev,
  then w reorthogonalised against rows 0..j.

  After the recurrence what is left along the earlier rows is rounding's drift, so one
  pass over the rows in use almost always suffices (DGKS_ETA decides a second): each
  pass reads the rows in use twice, which is the memory traffic of a step (LeNet, 61,706
  parameters, 60 rows: 15 MB a read)."""
  basis = basis.at[j].set(q)
  alpha = jnp.vdot(w, q)
  q_prev = basis[jnp.maximum(j - 1, 0)]
  w = w - alpha * q - jnp.where(j > 0, beta_prev, 0.0).astype(w.dtype) * q_prev
  before = jnp.linalg.norm(w)
  w = basis_lib._project_out(basis, w, j + 1)
  w = jax.lax.cond(jnp.linalg.norm(w) < basis_lib.DGKS_ETA * before,
                   lambda w: basis_lib._project_out(basis, w, j + 1), lambda w: w, w)
  return basis, w, alpha, jnp.linalg.norm(w)


def _lanczos_fast(op, v0, max_steps, key, stop):
  """Lanczos with full reorthogonalisation; restarts on an invariant subspace.

  Returns (alphas, betas, basis, steps): T has diagonal alphas[:steps] and off-diagonal
  betas[:steps-1]; betas[steps-1] is the residual norm of the last step. The basis is
  updated in place (donated) and orthogonalised over its rows in use only: per step one
  HVP and one small compiled update, no basis copy (tests/test_hessian.py keeps the plain
  step-by-step loop it equals).
  """
  basis = jnp.zeros((max_steps, op.dim), op.dtype)
  alphas, betas = np.zeros(max_steps), np.zeros(max_steps)
  q = (v0 / jnp.linalg.norm(v0)).astype(op.dtype)
  steps = 0
  for j in range(max_steps):
    w = op.matvec(q)
    basis, w, alpha, beta = _lanczos_update(basis, q, w, j, betas[j - 1] if j else 0.0)
    alpha, beta = float(alpha), float(beta)
    alphas[j], betas[j] = alpha, beta
    steps = j + 1
    if stop is not None and stop(steps, alphas[:steps], betas[:steps], beta):
      break
    if steps == max_steps:
      break
    scale = max(np.max(np.abs(alphas[:steps])), 1e-30)
    if beta <= 1e-10 * scale:  # invariant subspace: restart orthogonally, T splits
      key, sub = jax.random.split(key)
      w = basis_lib._orthogonalize_active(
          basis, basis_lib._random_unit(sub, op.dim, op.dtype), j + 1)
      betas[j] = 0.0
      q = w / jnp.linalg.norm(w)
    else:
      q = w / beta
  return alphas[:steps], betas[:steps], basis[:steps], steps


def _tridiag_eigh(alphas, betas):
  """(theta, s): the eigenvalues (ascending) and eigenvectors (columns) of the Lanczos
  tridiagonal T with diagonal alphas and off-diagonal betas[:-1].

  LAPACK's tridiagonal solver, not a dense `np.linalg.eigh` of T: the dense one goes
  through OpenBLAS's level-3 routines, whose threads then spin-wait for more work and
  take the cores from the next HVP. Called after every Lanczos step, that slowed every
  HVP (docs/analysis.md, "Measurements behind the code").
  """
  alphas = np.asarray(alphas, np.float64)
  return scipy.linalg.eigh_tridiagonal(alphas, np.asarray(betas[:len(alphas) - 1], np.float64))


def _select(theta, k, which):
  order = np.argsort(-np.abs(theta)) if which == "LM" else np.argsort(-theta)
  return order[:k]


def lanczos_top_k(op, k: int = 20, *, tol: float = 1e-6, max_steps: int | None = None,
                  seed: int = 0, which: str = "LA", return_vectors: bool = False,
                  log_every: int = 0, memory_fix: str = "") -> EigenResult:
  """Top-k eigenvalues by Lanczos with full reorthogonalisation.

  Converged when every wanted Ritz value theta_i has residual bound
  |beta_m s_{m,i}| = ||H x_i - theta_i x_i|| <= tol * max(|theta_i|, 1e-12 * max|theta|)
  (eigenvalue error is at most the residual, and ~ residual^2 / gap).

  Args:
    op: a `HessianOperator` (loss with train=False) or any operator with the same interface.
    k: number of eigenvalues (the paper: 20).
    tol: relative Ritz-residual tolerance.
    max_steps: Krylov dimension limit (default min(dim, 8k + 40)).
    seed: starting vector seed.
    which: "LA" largest algebraic (the paper's top eigenvalues) or "LM" largest magnitude.
    return_vectors: also return the Ritz vectors (k, dim).
    log_every: log progress every this many steps (0: never).
    memory_fix: how the caller's user lowers the steps (the config fields to set), for
      the error when the basis does not fit.

  Raises:
    BasisTooLargeError: the (max_steps x dim) basis would not fit in memory (checked
      before the first HVP).
  """
  if which not in ("LA", "LM"):
    raise ValueError(f"which must be 'LA' or 'LM', got {which!r}.")
  k = min(k, op.dim)
  max_steps = basis_lib.lanczos_steps(k, op.dim, max_steps)
  basis_lib.check_basis_fits(max_steps, op.dim, op.dtype, what=f"lanczos top-{k}",
                             fix=memory_fix)
  start, count0 = time.perf_counter(), op.hvp_count
  state: dict[str, Any] = {}

  def stop(steps, alphas, betas, beta):
    if steps < k and steps < op.dim:
      return False
    theta, s = _tridiag_eigh(alphas, betas)
    idx = _select(theta, k, which)
    res = np.abs(beta * s[-1, idx])
    floor = 1e-12 * max(np.max(np.abs(theta)), 1e-30)
    state.update(theta=theta[idx], res=res)
    if log_every and steps % log_every == 0:
      per_step = (time.perf_counter() - start) / steps
      logging.info("lanczos step %d/%d (at most): top %.6g, max rel residual %.3g, "
                   "%.2f s/step, at most %s left", steps, max_steps, theta[idx][0],
                   np.max(res / np.maximum(np.abs(theta[idx]), floor)), per_step,
                   progress.format_seconds((max_steps - steps) * per_step))
    return bool(np.all(res <= tol * np.maximum(np.abs(theta[idx]), floor)))

  key = jax.random.key(seed)
  key, sub = jax.random.split(key)
  alphas, betas, basis, steps = _lanczos_fast(
      op, basis_lib._random_unit(sub, op.dim, op.dtype), max_steps, key, stop)
  theta, s = _tridiag_eigh(alphas, betas)
  idx = _select(theta, k, which)
  res = np.abs(betas[-1] * s[-1, idx])
  floor = 1e-12 * max(np.max(np.abs(theta)), 1e-30)
  converged = bool(np.all(res <= tol * np.maximum(np.abs(theta[idx]), floor)))
  vectors = None
  if return_vectors:
    vectors = distributed.to_numpy(jnp.asarray(s[:, idx].T, op.dtype) @ basis)
  order = np.argsort(-theta[idx])
  return EigenResult("lanczos", theta[idx][order], res[order], op.hvp_count - count0, steps,
                     converged, tol, time.perf_counter() - start,
                     None if vectors is None else vectors[order])


def layer_top_k(loss_fn: Callable, params: Any, state: Any, batches: Any,
                layer: str | Sequence[str], k: int = 20, *, tol: float = 1e-6,
                max_steps: int | None = None, seed: int = 0,
                bn_mode: str = "running") -> EigenResult:
  """Top-k Hessian eigenvalues of one layer or block (the others fixed; train=False in
  `bn_mode`).

  The per-layer spectrum PyHessian users get by setting requires_grad=False on the other
  parameters. Here the gradient's reverse pass is kept from one evaluation
  (`HessianOperator(reuse_primal=True)`), so the activations below the layer are computed
  once, not once per Lanczos step.
  """
  op = operator.HessianOperator(loss_fn, params, state, batches, mask=layer,
                                reuse_primal=True, bn_mode=bn_mode)
  return lanczos_top_k(op, k, tol=tol, max_steps=max_steps, seed=seed)
