"""The loss at grid points: one point's function and a chunk's compiled evaluation.

A point is the loss at params + sum_i c_i d_i. Leaves no direction moves stay out of the
vmap, so what the points share is computed once a chunk, and moved `transjax.ops.Conv`
kernels reach the convolution as `ops.AffineKernel` values (`transjax.ops.affine`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from transjax import ops

# On CPU a chunk is a loop over groups of this many points, each group vmapped: the
# per-point activations of a group stay in cache, where a whole vmapped chunk wrote each
# layer's activations for all its points to memory and read them back (LeNet, 256
# images: 64 points as a (64, 256, 10, 10, 16) conv2 output, 105 MB). Everything the
# points share (the layers below the first moved one, and that layer's 1 + r
# convolutions, see transjax.ops.affine) does not depend on the loop and XLA computes
# it once per chunk. On LeNet's grid groups of 4-8 points ran faster than single points,
# and both faster than the whole chunk vmapped (docs/analysis.md, "Measurements behind
# the code").
CPU_VMAP_WIDTH = 8


def _point_fn(loss_fn, moving: Sequence[bool] | None = None):
  """`f(params, state, batch, directions, c)`: the loss at params + sum_i c_i d_i.

  `moving` (one flag per leaf, from `moving_leaves`): leaves every direction leaves at
  zero are not touched, so under `vmap` over c they stay unbatched and everything below
  the first moved layer is computed once for all grid points, not once per point. Moved
  kernels of `transjax.ops.Conv` modules reach the convolution as `ops.AffineKernel`
  values (the landscape's hook, `transjax.ops.affine`), so a convolution whose input is
  shared by the points (the first moved layer) is computed from 1 + len(c) convolutions
  instead of one per point.
  """

  def f(params, state, batch, directions, c):
    flags = moving if moving is not None else [True] * len(jax.tree.leaves(params))
    structured = ops.structured_paths(getattr(loss_fn, "graphdef", None), params, state)
    moved = ops.moved_params(params, directions, c, flags, structured)
    return loss_fn(moved, state, batch, False)[0]

  return f


@functools.lru_cache(maxsize=16)
def _batched_point_fn(loss_fn, moving: tuple[bool, ...], vectorize: str):
  """The jitted chunk evaluation, one per (loss, moved leaves, vectorize): later grids of
  the same model in a process (layers, checkpoints, centres) reuse its compilation.

  "vmap" on CPU is a loop over groups of CPU_VMAP_WIDTH vmapped points (`lax.map`'s
  batch_size), elsewhere the whole chunk vmapped; "map" is a loop over single points."""
  f = _point_fn(loss_fn, moving)
  if vectorize == "vmap" and jax.default_backend() != "cpu":
    return jax.jit(jax.vmap(f, in_axes=(None, None, None, None, 0)))
  width = CPU_VMAP_WIDTH if vectorize == "vmap" else None
  return jax.jit(lambda p, s, b, d, cs: jax.lax.map(lambda c: f(p, s, b, d, c), cs,
                                                    batch_size=width))


def moving_leaves(directions: Sequence[Any]) -> tuple[bool, ...]:
  """Per parameter leaf: does any direction move it (a nonzero entry)?"""
  per_dir = [[bool(np.any(np.asarray(x) != 0)) for x in jax.tree.leaves(d)] for d in directions]
  return tuple(any(col) for col in zip(*per_dir))
