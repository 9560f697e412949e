"""The Hessian of the loss as a linear operator: Hessian-vector products on flat vectors.

A Hessian-vector product is forward-over-reverse, `jax.jvp(jax.grad(f), (x,), (v,))[1]`,
or, where `HessianOperator` keeps the gradient's reverse pass (`reuse_primal`), the
vector-Jacobian product of the gradient with v; `f = subset.restricted_loss(...)`
(transjax.analysis.subset): restricting to a mask closes over the unmasked leaves, so the
vector (and the Hessian) lives only on the masked parameters. `DenseOperator` gives a
matrix the same interface (`dim`, `dtype`, `matvec`, `matmat`), which is all the solvers
of this package use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from transjax import distributed, functional, memory, sharding
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
      32 images at 224 px: 8 GiB). It is faster than forward-over-reverse for the whole
      LeNet (the Toeplitz convs made its reverse pass cheap to transpose; with lax's
      transposed convolutions it was the slower one) and much faster restricted to one
      layer (docs/analysis.md, "Measurements behind the code").

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
    sizes = np.array([functional.batch_size(b) for b in self.batches], np.float64)
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
