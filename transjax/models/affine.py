"""Parameters that are affine in per-point coefficients: a loss-landscape grid's weights.

A landscape grid point c moves every parameter to `w + sum_i c_i d_i`. Under `jax.vmap`
over the points that is just a batch of kernels, and a convolution of one shared input
with P kernels costs P convolutions. But the convolution is linear in its kernel, so
with the structure known it costs 1 + r convolutions (r directions) and a per-point
weighted sum of their outputs, which XLA fuses into the next layer's first pass:

    conv(x, w + sum_i c_i d_i) = conv(x, w) + sum_i c_i conv(x, d_i).

`affine(w, basis, coeffs)` computes `w + sum_i coeffs[i] basis[i]`; inside `scope()` it
also records the result with its parts. `transjax.models.conv` looks each kernel up
(`lookup`) and, for one it finds, convolves through `linear_map`, whose batching rule
takes the 1 + r convolutions when the input is shared by the points: a landscape's first
moved layer (everything below it is the same at every point and is computed once).
`transjax.models.conv_pool` looks up the kernels of LeNet's conv -> pool blocks the
same way and lays their output out for the pool.
Outside `scope()`, or for a kernel it did not make, nothing is recorded and every caller
takes its usual path; the values are the same either way, up to the order of additions.

The record holds the arrays themselves (so their ids stay unique while it lives) and is
dropped when the scope ends: the scope spans one trace of the point function.
"""

from __future__ import annotations

import contextlib
import threading

import jax
import jax.numpy as jnp
from jax import custom_batching

_LOCAL = threading.local()


@contextlib.contextmanager
def scope():
  """While tracing inside it, `affine`'s batched results are known to `lookup`."""
  previous = getattr(_LOCAL, "records", None)
  _LOCAL.records = {}
  try:
    yield
  finally:
    _LOCAL.records = previous


def lookup(kernel) -> tuple[jax.Array, jax.Array, jax.Array] | None:
  """(w, basis, coeffs) of a batched kernel `affine` made inside `scope()`, else None.

  `coeffs` is (P, r): kernel[p] = w + sum_i coeffs[p, i] basis[i]."""
  records = getattr(_LOCAL, "records", None)
  if not records:
    return None
  entry = records.get(id(kernel))
  return None if entry is None or entry[0] is not kernel else entry[1:]


def combine(w, basis, coeffs):
  """w + sum_i coeffs[..., i] basis[i]; coeffs (r,) gives w's shape, (P, r) a leading P axis."""
  out = w
  for i in range(len(basis)):
    c = coeffs[..., i].reshape(coeffs.shape[:-1] + (1,) * w.ndim)
    out = out + (c * basis[i]).astype(w.dtype)
  return out


def affine(w: jax.Array, basis: jax.Array, coeffs: jax.Array) -> jax.Array:
  """`w + sum_i coeffs[i] basis[i]` (basis (r, *w.shape), coeffs (r,)), in w's dtype;
  inside `scope()` the result is recorded for `lookup`."""
  out = combine(w, basis, coeffs)
  records = getattr(_LOCAL, "records", None)
  if records is not None:
    records[id(out)] = (out, w, basis, coeffs)
  return out


def linear_map(fn, x, w, basis, coeffs) -> jax.Array:
  """`fn(x, affine(w, basis, coeffs))` for an `fn` linear in its second argument.

  Under `vmap` with only the coefficients batched (one shared x and w: a grid's first
  moved layer) it is computed as fn(x, w) + sum_i coeffs[:, i] fn(x, basis[i]): 1 + r
  calls of fn instead of one per point. Any other batching vmaps fn itself.
  """

  @custom_batching.custom_vmap
  def apply(x, w, basis, coeffs):
    return fn(x, combine(w, basis, coeffs))

  @apply.def_vmap
  def _batched(axis_size, in_batched, x, w, basis, coeffs):
    del axis_size
    if tuple(in_batched) == (False, False, False, True):
      # The 1 + r kernels as one batch (one convolution or matmul with more outputs):
      # its result is materialised once, where separate elementwise forms (the CPU
      # one-channel conv) would be fused into the per-point sum and redone at every point.
      ys = jax.vmap(fn, in_axes=(None, 0))(x, jnp.concatenate([w[None], basis]))
      # Materialised as laid out here: a landscape evaluates its chunk as a loop over
      # small groups of points, and XLA hoists these 1 + r outputs out of the loop, but
      # it fused their layout change (the im2col conv's point axis moved to the front)
      # into the per-group sum, a strided re-read at every group (LeNet's conv1: 1.6
      # against 0.9 ms per point).
      ys = jax.lax.optimization_barrier(ys)
      return combine(ys[0], ys[1:], coeffs), True
    axes = tuple(0 if b else None for b in in_batched)
    return jax.vmap(lambda *a: fn(a[0], combine(*a[1:])), in_axes=axes)(
        x, w, basis, coeffs), True

  return apply(x, w, basis, coeffs)
