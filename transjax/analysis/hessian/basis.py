"""The orthonormal basis the eigensolvers keep: its size, whether it fits, and how a
vector is made orthogonal to it.

`lanczos_top_k` and `slq_density` hold a (steps x dim) Krylov basis; `check_basis_fits`
refuses, before the first Hessian-vector product, one that would not fit in memory, with
the number of steps that would. The Gram-Schmidt steps: `_orthogonalize` (against a
whole basis, twice; power iteration's deflation) and `_project_out` (only the rows in
use, in blocks; the Lanczos recurrence, with DGKS's criterion for a second pass).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transjax import memory


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
