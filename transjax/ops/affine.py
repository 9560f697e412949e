"""The loss landscape's hook: a convolution kernel that is affine in per-point coefficients.

A landscape grid point c moves every parameter to `w + sum_i c_i d_i`. Under `jax.vmap`
over the points that is just a batch of kernels, and a convolution of one shared input
with P kernels costs P convolutions. But the convolution is linear in its kernel, so
with the structure known it costs 1 + r convolutions (r directions) and a per-point
weighted sum of their outputs, which XLA fuses into the next layer's first pass:

    conv(x, w + sum_i c_i d_i) = conv(x, w) + sum_i c_i conv(x, d_i).

The landscape passes that structure as a value: an `AffineKernel(w, basis, coeffs)` in
place of the kernel array of every moved `transjax.ops.Conv` (`structured_params` picks
them and does nothing while the switch is off). `transjax.ops.Conv` hands it to
`transjax.ops.conv_general_dilated` unchanged, which convolves through `linear_map`,
whose batching rule takes the 1 + r convolutions when the input is shared by the points:
a landscape's first moved layer (everything below it is the same at every point and is
computed once). `transjax.ops.conv_relu_pool` reads it the same way and lays LeNet's
conv -> pool output out for the pool. Every other parameter, and every kernel of a
module that is not `transjax.ops.Conv`, gets the combined array, so a model of one's own
sees plain arrays; the values are the same either way, up to the order of additions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import custom_batching

from transjax.ops import switch


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AffineKernel:
  """`w + sum_i coeffs[i] basis[i]` kept as its parts: w (kernel), basis (r, *w.shape),
  coeffs (r,) (under the landscape's vmap, a batch of points' coefficients)."""
  w: jax.Array
  basis: jax.Array
  coeffs: jax.Array

  shape = property(lambda self: self.w.shape)
  dtype = property(lambda self: self.w.dtype)
  ndim = property(lambda self: self.w.ndim)

  def __getitem__(self, index):
    # nnx.Variable's `kernel[...]` indexes its value; the whole kernel stays structured.
    if index is not Ellipsis:
      return self.array()[index]
    return self

  def array(self) -> jax.Array:
    """The combined kernel."""
    return combine(self.w, self.basis, self.coeffs)


def combine(w, basis, coeffs):
  """w + sum_i coeffs[..., i] basis[i]; coeffs (r,) gives w's shape, (P, r) a leading P axis."""
  out = w
  for i in range(len(basis)):
    c = coeffs[..., i].reshape(coeffs.shape[:-1] + (1,) * w.ndim)
    out = out + (c * basis[i]).astype(w.dtype)
  return out


def as_array(kernel) -> jax.Array:
  """The kernel as an array, whether it is one or an `AffineKernel`."""
  return kernel.array() if isinstance(kernel, AffineKernel) else kernel


def structured_paths(graphdef: nnx.GraphDef | None, params: Any, state: Any) -> frozenset:
  """The parameter paths (key tuples ending in "kernel") of the model's `transjax.ops.Conv`
  kernels: the ones a landscape may pass as `AffineKernel`. Empty while the switch is off
  or without a graphdef (a loss of one's own)."""
  if graphdef is None or not switch.active():
    return frozenset()
  from transjax.ops.layers import Conv  # pylint: disable=import-outside-toplevel
  model = nnx.merge(graphdef, params, state, copy=True)
  return frozenset(tuple(path) + ("kernel",) for path, node in nnx.iter_graph(model)
                   if isinstance(node, Conv))


def _key_path(path) -> tuple:
  """A jax key path as plain names/indices, without the Variable's trailing `.value`."""
  keys = []
  for k in path:
    if isinstance(k, jax.tree_util.GetAttrKey):
      if k.name == "value":
        continue
      keys.append(k.name)
    elif isinstance(k, jax.tree_util.DictKey):
      keys.append(k.key)
    elif isinstance(k, jax.tree_util.SequenceKey):
      keys.append(k.idx)
    else:
      keys.append(getattr(k, "key", k))
  return tuple(keys)


def moved_params(params: Any, directions: Sequence[Any], coeffs: jax.Array,
                 moving: Sequence[bool], structured: frozenset) -> Any:
  """`params + sum_i coeffs[i] directions[i]`, leaf by leaf: unmoved leaves as they are,
  moved `structured` kernels as `AffineKernel`, every other moved leaf combined."""
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  d_leaves = [jax.tree.leaves(d) for d in directions]
  out = []
  for i, ((path, w), moves) in enumerate(zip(flat, moving)):
    if not moves:
      out.append(w)
      continue
    basis = jnp.stack([ds[i] for ds in d_leaves]).astype(w.dtype)
    c = coeffs.astype(w.dtype)
    out.append(AffineKernel(w, basis, c) if _key_path(path) in structured
               else combine(w, basis, c))
  return jax.tree.unflatten(treedef, out)


def linear_map(fn, x, kernel: AffineKernel) -> jax.Array:
  """`fn(x, kernel.array())` for an `fn` linear in its second argument.

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
      # into the per-group sum, a strided re-read at every group (LeNet's conv1 took
      # nearly twice as long a point; docs/analysis.md, "Measurements behind the code").
      ys = jax.lax.optimization_barrier(ys)
      return combine(ys[0], ys[1:], coeffs), True
    axes = tuple(0 if b else None for b in in_batched)
    return jax.vmap(lambda *a: fn(a[0], combine(*a[1:])), in_axes=axes)(
        x, w, basis, coeffs), True

  return apply(x, kernel.w, kernel.basis, kernel.coeffs)
