"""Hessian of the loss: Hessian-vector products, top-k eigenvalues, trace, spectral density.

Everything here is a pure function of the one `loss_fn` (transjax.functional) evaluated
with train=False, in the BatchNorm mode `bn_mode` (`transjax.analysis.batchnorm`: batch
statistics, statistics recalibrated on the sample set, or the stored running statistics;
"running", the default, is the behaviour before the mode existed), so the loss (and its
Hessian) is a deterministic function of the parameters.

    op = HessianOperator(loss_fn, params, state, batch, mask=params_lib.mask_for(p, "fc"))
    top = lanczos_top_k(op, k=20)           # the paper's Fig 3 (top-20 eigenvalues)
    tr = hutchinson_trace(op, num_probes=100)

A Hessian-vector product is forward-over-reverse, `jax.jvp(jax.grad(f), (x,), (v,))[1]`,
or, where `HessianOperator` keeps the gradient's reverse pass (`reuse_primal`), the
vector-Jacobian product of the gradient with v; `f = subset.restricted_loss(...)`
(transjax.analysis.subset): restricting to a mask closes over the unmasked leaves, so the
vector (and the Hessian) lives only on the masked parameters.
The solvers (`lanczos_top_k`, `power_iteration_top_k`, `hutchinson_trace`, `slq_density`)
take any operator with `dim`, `dtype`, `matvec` and `matmat` (see `DenseOperator`), so
they are tested against dense matrices and used unchanged on ResNet-50.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from absl import logging
from jax.flatten_util import ravel_pytree

from transjax import functional, memory, progress, sharding
from transjax import distributed
from transjax.analysis import batchnorm
from transjax.analysis.subset import partition, resolve_mask, restricted_loss

def _as_batches(batches: Any) -> list[Mapping[str, Any]]:
  """One batch (a mapping or an (images, labels) pair) or a sequence of them, as a list of
  batch mappings."""
  if functional.is_one_batch(batches):
    return [functional.as_batch(batches)]
  out = [functional.as_batch(b) for b in batches]
  if not out:
    raise ValueError("No batches given.")
  return out


def _batch_size(batch: Mapping[str, Any]) -> int:
  return functional.batch_size(batch)


# --------------------------------------------------------------------------------------
# Hessian-vector products.


def make_hvp(loss_fn: Callable) -> Callable:
  """Returns jitted `hvp(sub, params, state, batch, v) -> H v` (same structure as `sub`).

  Forward-over-reverse; the loss with train=False; `params` supplies the fixed leaves.
  """

  def hvp(sub, params, state, batch, v):
    f = restricted_loss(loss_fn, params, state, batch)
    return jax.jvp(jax.grad(f), (sub,), (v,))[1]

  return jax.jit(hvp)


def hvp(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any], v: Any,
        mask: Any = None, bn_mode: str = "running") -> dict[str, jax.Array]:
  """One Hessian-vector product on the masked parameters (v: dict {path: array})."""
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  sub = partition(params, mask)
  return make_hvp(loss_fn)(sub, params, state, batch, v)


def residual_budget_bytes() -> int:
  """Memory `HessianOperator(reuse_primal="auto")` may keep for its residuals: a quarter
  of the device's memory where it reports it, else 2 GiB (CPU)."""
  limit = memory.device_bytes_limit()
  return 2 << 30 if limit is None else limit // 4


class HessianOperator:
  """The Hessian of the mean loss over a sample set, as a linear operator on flat vectors.

  Args:
    loss_fn: transjax.functional loss (evaluated with train=False in `bn_mode`).
    params, state: the point at which the Hessian is taken.
    batches: one batch dict (a fixed sample set) or a sequence of batches (a whole
      dataset); the HVP is the sum of per-batch HVPs weighted by batch size / total, so
      memory is bounded by one batch.
    mask: None (all parameters), layer name(s), or a boolean mask pytree.
    bn_mode: "batch", "recalibrated" or "running" (`transjax.analysis.batchnorm`). With
      several batches, "batch" normalises each with its own statistics and
      "recalibrated" averages their statistics.

    reuse_primal: keep the gradient's reverse pass (its residuals) from one evaluation and
      get each H v as the vector-Jacobian product of the gradient (H is symmetric), so
      neither the forward pass nor anything that does not depend on the analysed
      parameters (the layers below a restricted layer) is recomputed per product, as
      PyHessian keeps its graph. "auto": when there are at most 8 batches and their
      residuals fit `residual_budget_bytes()` (LeNet on 256 images: 47 MiB; ResNet-50 on
      32 images at 224 px: 8 GiB). Measured per product on 256 MNIST images, 2-core EPYC:
      the whole LeNet 16.4-18.0 against 35-48 ms forward-over-reverse (the Toeplitz convs
      made its reverse pass cheap to transpose; with lax's transposed convolutions it was
      the slower one); restricted to fc1 or conv2, 100x and 3x faster.

  `hvp_count` counts full-sample-set products (a block of b vectors counts b).
  """

  def __init__(self, loss_fn: Callable, params: Any, state: Any, batches: Any,
               mask: Any = None, reuse_primal: bool | str = "auto", bn_mode: str = "running"):
    self.mask = resolve_mask(params, mask)
    self.batches = _as_batches(batches)
    self.bn_mode = batchnorm.check_mode(bn_mode)
    loss_fn, state = batchnorm.prepare(loss_fn, params, state, self.batches, bn_mode)
    self.params, self.state = params, state
    self.sub = partition(params, self.mask)
    self.flat0, self.unravel = ravel_pytree(self.sub)
    self.dim = int(self.flat0.size)
    self.dtype = self.flat0.dtype
    sizes = np.array([_batch_size(b) for b in self.batches], np.float64)
    self.weights = sizes / sizes.sum()
    self.num_samples = int(sizes.sum())
    self.hvp_count = 0
    unravel = self.unravel

    def flat_hvp(sub, params, state, batch, v_flat):
      f = restricted_loss(loss_fn, params, state, batch)
      out = jax.jvp(jax.grad(f), (sub,), (unravel(v_flat),))[1]
      return ravel_pytree(out)[0]

    self._matvec = jax.jit(flat_hvp)
    self._matmat = jax.jit(jax.vmap(flat_hvp, in_axes=(None, None, None, None, 0)))

    @jax.jit
    def residuals(sub, params, state, batch):
      return jax.vjp(jax.grad(restricted_loss(loss_fn, params, state, batch)), sub)[1]

    if reuse_primal == "auto":
      reuse_primal = (len(self.batches) <= 8 and self.residual_bytes(residuals)
                      <= residual_budget_bytes())
    self.reuse_primal = bool(reuse_primal)
    if self.reuse_primal:
      vjps = [residuals(self.sub, params, state, b) for b in self.batches]
      apply = lambda vjp, v: ravel_pytree(vjp(unravel(v))[0])[0]
      self._matvec = jax.jit(lambda vjp, v: apply(vjp, v))
      self._matmat = jax.jit(jax.vmap(apply, in_axes=(None, 0)))
      self._vjps = vjps

  def residual_bytes(self, residuals: Callable) -> int:
    """Bytes of the kept reverse passes of all batches (shapes only, nothing computed)."""
    total = 0
    for b in self.batches:
      shapes = jax.eval_shape(residuals, self.sub, self.params, self.state, b)
      total += sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
                   for x in jax.tree.leaves(shapes))
    return total

  def _accumulate(self, fn, x):
    total = None
    for i, (w, batch) in enumerate(zip(self.weights, self.batches)):
      if self.reuse_primal:
        y = fn(self._vjps[i], x)
      else:
        y = fn(self.sub, self.params, self.state, batch, x)
      total = y * w if total is None else total + y * w
    return total.astype(self.dtype)

  def matvec(self, v: jax.Array) -> jax.Array:
    """H v for a flat vector v of length `dim`."""
    self.hvp_count += 1
    return self._accumulate(self._matvec, jnp.asarray(v, self.dtype))

  def matmat(self, vs: jax.Array) -> jax.Array:
    """H V for a block of flat vectors (rows), vmapped; sharded over devices when several."""
    vs = jnp.asarray(vs, self.dtype)
    self.hvp_count += int(vs.shape[0])
    n_dev = jax.device_count()
    if n_dev > 1 and vs.shape[0] % n_dev == 0:
      vs = sharding.split_leading(vs, sharding.data_mesh())
    return self._accumulate(self._matmat, vs)

  def dense(self) -> np.ndarray:
    """The full Hessian (dim x dim) by `dim` HVPs; only for small problems and tests."""
    eye = jnp.eye(self.dim, dtype=self.dtype)
    return distributed.to_numpy(jnp.concatenate([self.matmat(eye[i:i + 64])
                                       for i in range(0, self.dim, 64)]))


class DenseOperator:
  """A symmetric matrix with the operator interface (for tests and toy problems)."""

  def __init__(self, matrix: Any):
    self.matrix = jnp.asarray(matrix)
    self.dim = int(self.matrix.shape[0])
    self.dtype = self.matrix.dtype
    self.hvp_count = 0

  def matvec(self, v):
    self.hvp_count += 1
    return self.matrix @ v

  def matmat(self, vs):
    self.hvp_count += int(vs.shape[0])
    return vs @ self.matrix.T


# --------------------------------------------------------------------------------------
# Results.


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


@dataclasses.dataclass
class TraceResult:
  """Hutchinson estimate of tr(H): mean of z^T H z over Rademacher probes, and its SE."""
  trace: float
  std_error: float
  num_probes: int
  hvp_count: int
  seconds: float
  samples: np.ndarray

  def to_dict(self) -> dict[str, Any]:
    return {"trace": self.trace, "std_error": self.std_error, "num_probes": self.num_probes,
            "hvp_count": self.hvp_count, "seconds": self.seconds}


@dataclasses.dataclass
class DensityResult:
  """Stochastic Lanczos quadrature: Gaussian-broadened spectral density on a grid."""
  grid: np.ndarray
  density: np.ndarray
  nodes: np.ndarray       # (num_probes, steps) Ritz values
  weights: np.ndarray     # (num_probes, steps) quadrature weights (sum to 1 per probe)
  sigma: float
  hvp_count: int
  seconds: float

  def to_dict(self) -> dict[str, Any]:
    return {"grid": self.grid.tolist(), "density": self.density.tolist(),
            "nodes": self.nodes.tolist(), "weights": self.weights.tolist(),
            "sigma": self.sigma, "hvp_count": self.hvp_count, "seconds": self.seconds}


# --------------------------------------------------------------------------------------
# Lanczos.


@jax.jit
def _orthogonalize(basis, w, n_valid):
  """w minus its projection on the first n_valid rows of basis (twice: DGKS)."""
  keep = (jnp.arange(basis.shape[0]) < n_valid).astype(basis.dtype)
  for _ in range(2):
    w = w - ((basis @ w) * keep) @ basis
  return w


@jax.jit
def _set_row(basis, i, row):
  return basis.at[i].set(row)


def _random_unit(key, dim, dtype):
  v = jax.random.normal(key, (dim,), dtype)
  return v / jnp.linalg.norm(v)


_ORTH_BLOCK = 32


def _project_out(basis, w, n_valid):
  """w minus its projection on rows [0, n_valid) of basis, once, touching only the blocks
  of rows in use (a loop over 32-row blocks, not the whole basis)."""
  rows = basis.shape[0]
  block = min(_ORTH_BLOCK, rows)
  padded = -(-rows // block) * block

  def one_block(b, w):
    start = jnp.minimum(b * block, rows - block)
    rows_b = jax.lax.dynamic_slice_in_dim(basis, start, block)
    idx = start + jnp.arange(block)
    # Rows before b * block were handled by the previous block (the last block may overlap).
    keep = ((idx < n_valid) & (idx >= b * block)).astype(basis.dtype)
    return w - ((rows_b @ w) * keep) @ rows_b

  n_blocks = (jnp.minimum(n_valid, padded) + block - 1) // block
  return jax.lax.fori_loop(0, n_blocks, one_block, w)


@jax.jit
def _orthogonalize_active(basis, w, n_valid):
  """w minus its projection on rows [0, n_valid) of basis, twice (a restart's random
  vector: nothing of it is known to be orthogonal yet)."""
  return _project_out(basis, _project_out(basis, w, n_valid), n_valid)


# DGKS's criterion (Daniel, Gragg, Kaufman & Stewart 1976): a second Gram-Schmidt pass only
# where the first removed more than 1 - 1/sqrt(2) of w's norm, i.e. where cancellation
# may have left w less orthogonal than rounding allows.
DGKS_ETA = 0.7071067811865476


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
  w = _project_out(basis, w, j + 1)
  w = jax.lax.cond(jnp.linalg.norm(w) < DGKS_ETA * before,
                   lambda w: _project_out(basis, w, j + 1), lambda w: w, w)
  return basis, w, alpha, jnp.linalg.norm(w)


class BasisTooLargeError(ValueError):
  """The Lanczos basis (Krylov dimension x parameters) does not fit in memory."""


# The share of the available memory the Lanczos basis may take: the model, its HVP and the
# data need the rest.
BASIS_MEMORY_FRACTION = 0.5


def lanczos_steps(k: int, dim: int, max_steps: int | None = None) -> int:
  """The Krylov dimension `lanczos_top_k` works in: `max_steps`, by default 8k + 40, at
  most `dim`."""
  return min(dim, max_steps or 8 * min(k, dim) + 40)


_BASIS_FIX = ("Ask for fewer steps or eigenvalues, or restrict the operator to fewer "
              "parameters (a layer mask).")


def check_basis_fits(steps: int, dim: int, dtype: Any, *, what: str = "lanczos",
                     fix: str = "") -> int:
  """Refuses, before any HVP, a Lanczos basis of `steps` x `dim` that would take more than
  BASIS_MEMORY_FRACTION of the device's (CPU: the host's available) memory; returns its
  bytes. At paper scale the default top-20 basis (200 steps x 23.5M ResNet-50 parameters,
  float32) is 17.5 GiB.

  Raises:
    BasisTooLargeError: with the sizes, the largest number of steps that fits, and `fix`
      (how the caller's user sets the steps; a generic hint when empty).
  """
  row_bytes = int(dim) * np.dtype(dtype).itemsize
  need = int(steps) * row_bytes
  avail, where = memory.available_bytes()
  if avail is None or need <= BASIS_MEMORY_FRACTION * avail:
    return need
  raise BasisTooLargeError(
      f"{what}: the Krylov basis of {steps} steps x {dim:,} parameters "
      f"({np.dtype(dtype).name}) needs {memory.format_bytes(need)}, more than "
      f"{BASIS_MEMORY_FRACTION:.0%} of the {memory.format_bytes(avail)} of {where}; at most "
      f"{int(BASIS_MEMORY_FRACTION * avail // row_bytes)} steps fit. {fix or _BASIS_FIX}")


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
      w = _orthogonalize_active(basis, _random_unit(sub, op.dim, op.dtype), j + 1)
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
  take the cores from the next HVP. Called after every Lanczos step, that made each
  LeNet HVP 65 instead of 41 ms (top-20 Lanczos 7.1 against 4.0 s, 2-core Xeon).
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
  max_steps = lanczos_steps(k, op.dim, max_steps)
  check_basis_fits(max_steps, op.dim, op.dtype, what=f"lanczos top-{k}", fix=memory_fix)
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
  alphas, betas, basis, steps = _lanczos_fast(op, _random_unit(sub, op.dim, op.dtype),
                                              max_steps, key, stop)
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
  op = HessianOperator(loss_fn, params, state, batches, mask=layer, reuse_primal=True,
                       bn_mode=bn_mode)
  return lanczos_top_k(op, k, tol=tol, max_steps=max_steps, seed=seed)


# --------------------------------------------------------------------------------------
# Power iteration with deflation (PyHessian).


def power_iteration_top_k(op, k: int = 20, *, tol: float = 1e-3, max_iters: int = 100,
                          seed: int = 0, return_vectors: bool = False) -> EigenResult:
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
    v = _random_unit(sub, op.dim, op.dtype)
    value, change, converged = None, np.inf, False
    for _ in range(max_iters):
      v = _orthogonalize(basis, v, i)
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
    v = _orthogonalize(basis, v, i)
    v = v / jnp.linalg.norm(v)
    basis = _set_row(basis, i, v)
    values.append(value)
    changes.append(change)
  values_np = np.array(values)
  order = np.argsort(-values_np)
  vectors = distributed.to_numpy(basis)[order] if return_vectors else None
  return EigenResult("power_iteration", values_np[order], np.array(changes)[order],
                     op.hvp_count - count0, total_iters, all_converged, tol,
                     time.perf_counter() - start, vectors)


# --------------------------------------------------------------------------------------
# Trace and spectral density.


def hutchinson_trace(op, num_probes: int = 100, *, block_size: int = 10,
                     seed: int = 0) -> TraceResult:
  """tr(H) ~ mean_z z^T H z with Rademacher z; reports mean and standard error.

  Probes are evaluated `block_size` at a time with a vmapped HVP.
  """
  if num_probes < 2:
    raise ValueError("hutchinson_trace needs at least 2 probes for a standard error.")
  start, count0 = time.perf_counter(), op.hvp_count
  key = jax.random.key(seed)
  samples = []
  done = 0
  while done < num_probes:
    b = min(block_size, num_probes - done)
    key, sub = jax.random.split(key)
    z = jax.random.rademacher(sub, (b, op.dim), op.dtype)
    hz = op.matmat(z)
    # A block split over devices is split over processes too: gathered, not np.asarray.
    samples.append(distributed.to_numpy(jnp.sum(z * hz, axis=1)).astype(np.float64))
    done += b
  samples_np = np.concatenate(samples)
  return TraceResult(float(samples_np.mean()),
                     float(samples_np.std(ddof=1) / np.sqrt(num_probes)), num_probes,
                     op.hvp_count - count0, time.perf_counter() - start, samples_np)


def slq_density(op, num_probes: int = 10, num_steps: int = 90, *, grid_size: int = 1000,
                sigma_rel: float = 0.01, seed: int = 0,
                margin: float = 0.05) -> DensityResult:
  """Spectral density by stochastic Lanczos quadrature (Ghorbani, Krishnan, Xiao 2019).

  For each of `num_probes` Gaussian probes, an m-step Lanczos (full reorthogonalisation)
  gives Ritz values theta_j and weights tau_j = (first component of the Ritz vector)^2;
  the density is the probe average of sum_j tau_j N(t; theta_j, sigma^2), on a grid that
  spans the Ritz values (plus `margin`), with sigma = sigma_rel * (spectrum width).
  """
  check_basis_fits(min(num_steps, op.dim), op.dim, op.dtype, what="slq_density",
                   fix="Lower num_steps or restrict the operator to fewer parameters.")
  start, count0 = time.perf_counter(), op.hvp_count
  key = jax.random.key(seed)
  nodes, weights = [], []
  for _ in range(num_probes):
    key, sub, sub2 = jax.random.split(key, 3)
    alphas, betas, _, steps = _lanczos_fast(op, jax.random.normal(sub, (op.dim,), op.dtype),
                                            min(num_steps, op.dim), sub2, None)
    theta, s = _tridiag_eigh(alphas, betas)
    tau = s[0, :] ** 2
    pad = num_steps - steps
    nodes.append(np.pad(theta, (0, pad), constant_values=np.nan))
    weights.append(np.pad(tau, (0, pad)))
  nodes_np, weights_np = np.array(nodes), np.array(weights)
  lo, hi = np.nanmin(nodes_np), np.nanmax(nodes_np)
  width = max(hi - lo, 1e-12)
  grid = np.linspace(lo - margin * width, hi + margin * width, grid_size)
  sigma = sigma_rel * width
  valid = ~np.isnan(nodes_np)
  diff = grid[None, None, :] - np.where(valid, nodes_np, 0.0)[..., None]
  gauss = np.exp(-0.5 * (diff / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
  density = np.sum(weights_np[..., None] * gauss * valid[..., None], axis=(0, 1)) / num_probes
  return DensityResult(grid, density, nodes_np, weights_np, float(sigma),
                       op.hvp_count - count0, time.perf_counter() - start)
