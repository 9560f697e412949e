"""How a grid is cut into chunks: the memory one point needs, the budget, the chunk size.

A chunk is one jitted call over many points; its size is what fits the memory budget
(by XLA's memory analysis of one point), bounded on CPU by `CPU_MAX_CHUNK` and
`CHUNK_WORK_BYTES`, balanced and a multiple of the device count (`plan_chunks`).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from transjax import functional, memory
from transjax.analysis.landscape import points as points_lib

DEFAULT_BUDGET_BYTES = 2 << 30
# On CPU a chunk is a loop over groups of CPU_VMAP_WIDTH points (`points`), so its memory
# is a group's, whatever its length, and a longer chunk only spreads what the points
# share (computed once per chunk call; for LeNet's grid, conv1's 1 + r convolutions of
# the input: its im2col patches and their layout) over more of them: LeNet's grid ran
# faster with chunks of 521 points than of 64, at the same peak memory (docs/analysis.md,
# "Measurements behind the code"). The memory budget bounds a chunk only where one group
# does not fit it (`plan_chunks`, `points_in_memory`).
CPU_MAX_CHUNK = 512
# Such a looped chunk is also at most CHUNK_WORK_BYTES / (one point's memory) points: a
# point's memory stands in for its cost, so a heavier model gets shorter chunks and the
# progress line (once a chunk) still comes every few seconds. LeNet on 256 images: 16.5
# MB a point -> 520 points; a model 10x heavier gets 52 points.
CHUNK_WORK_BYTES = 8 << 30


class GridTooLargeError(ValueError):
  """Even one grid point does not fit the memory budget (the message has the numbers)."""


@dataclasses.dataclass
class ChunkPlan:
  """How the grid is evaluated: bytes per point (estimate), chunk size, number of chunks."""
  num_points: int
  bytes_per_point: int
  estimate_method: str
  budget_bytes: int
  chunk_size: int
  num_chunks: int
  num_devices: int
  vectorize: str = "vmap"
  resumed_points: int = 0   # points read back from a `resume_path` instead of evaluated

  def describe(self) -> str:
    return (f"{self.num_points} points, ~{self.bytes_per_point / 2**20:.2f} MiB/point "
            f"({self.estimate_method}), budget {self.budget_bytes / 2**20:.0f} MiB -> "
            f"chunks of {self.chunk_size} ({self.num_chunks} chunks, {self.vectorize}) on "
            f"{self.num_devices} device(s)")


def _tree_bytes(tree) -> int:
  return int(sum(math.prod(np.shape(x)) * jnp.dtype(jnp.result_type(x)).itemsize
                 for x in jax.tree.leaves(tree)))


def _shapes(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), tree)


def estimate_bytes_per_point(loss_fn, params, state, batch, directions) -> tuple[int, str]:
  """Memory one grid point needs: the compiled single-point function's temporaries plus a
  moved copy of the parameters (XLA memory analysis), or a conservative formula.

  It depends on shapes only, so it is computed once per loss and shapes in a process:
  the analysis compiles the point function, which later grids of the same model (layers,
  checkpoints, centres) need not repeat."""
  shapes = _shapes((params, state, batch, list(directions)))
  return _estimate_for_shapes(loss_fn, jax.tree.structure(shapes), tuple(jax.tree.leaves(shapes)))


@functools.lru_cache(maxsize=16)
def _estimate_for_shapes(loss_fn, treedef, leaves) -> tuple[int, str]:
  return _estimate_bytes_per_point(loss_fn, *jax.tree.unflatten(treedef, leaves))


def _estimate_bytes_per_point(loss_fn, params, state, batch, directions) -> tuple[int, str]:
  f = points_lib._point_fn(loss_fn)
  c = jax.ShapeDtypeStruct((len(directions),), jax.tree.leaves(params)[0].dtype)
  params_bytes = _tree_bytes(params)
  try:
    stats = jax.jit(f).lower(params, state, batch, directions, c).compile().memory_analysis()
    if stats is not None and stats.temp_size_in_bytes > 0:
      return int(stats.temp_size_in_bytes + params_bytes), "xla memory analysis"
  except Exception as e:  # pylint: disable=broad-except  # backends without the analysis
    logging.info("memory analysis unavailable (%s); using a formula", e)
  # Conservative: params copy + ~20 activations the size of the input per sample.
  return int(2 * params_bytes + 20 * _tree_bytes(functional.as_batch(batch)["image"])), "formula"


def plan_chunks(num_points: int, bytes_per_point: int, budget_bytes: int, *,
                method: str = "given", max_chunk: int | None = None,
                chunk_size: int | None = None, resident: int | None = None) -> ChunkPlan:
  """Chunk size = min(points that fit the budget, max_chunk), balanced over the chunks and
  a multiple of the device count; max_chunk defaults to CPU_MAX_CHUNK on CPU, 4096
  elsewhere.

  `resident`: how many points' memory a chunk holds at once, when that is not the whole
  chunk: on CPU a chunk is a loop over groups of CPU_VMAP_WIDTH points (1 with "map",
  see `points_in_memory`), so once a group fits, the budget does not bound the chunk;
  `CHUNK_WORK_BYTES` does, so that a heavier model's chunks stay short.

  Raises:
    GridTooLargeError: one point alone exceeds the budget.
  """
  n_dev = jax.device_count()
  if max_chunk is None:
    max_chunk = CPU_MAX_CHUNK if jax.default_backend() == "cpu" else 4096
  if chunk_size is None:
    if bytes_per_point * 1 > budget_bytes:
      raise GridTooLargeError(
          f"One grid point needs ~{bytes_per_point / 2**20:.1f} MiB ({method}) but the memory "
          f"budget is {budget_bytes / 2**20:.1f} MiB; even chunk=1 does not fit "
          f"({num_points} points). Raise memory_budget_bytes, use fewer samples, or restrict "
          "the analysis to fewer parameters.")
    fit = budget_bytes // max(bytes_per_point, 1)
    if resident is not None and fit >= resident:
      fit = max(resident, CHUNK_WORK_BYTES // max(bytes_per_point, 1))
    chunk_size = int(min(max_chunk, fit, num_points))
  chunk_size = max(1, min(chunk_size, num_points))
  # Balance the chunks: the last one is padded to full size, so avoid a mostly-empty one.
  chunk_size = math.ceil(num_points / math.ceil(num_points / chunk_size))
  if n_dev > 1:
    chunk_size = max(n_dev, chunk_size // n_dev * n_dev)
  return ChunkPlan(num_points, int(bytes_per_point), method, int(budget_bytes), chunk_size,
                   math.ceil(num_points / chunk_size), n_dev)


def points_in_memory(vectorize: str) -> int | None:
  """Points a chunk evaluates at once (None: the whole chunk, vmapped on an accelerator)."""
  if jax.default_backend() != "cpu":
    return 1 if vectorize == "map" else None
  return points_lib.CPU_VMAP_WIDTH if vectorize == "vmap" else 1


def _default_budget() -> int:
  limit = memory.device_bytes_limit()
  return DEFAULT_BUDGET_BYTES if limit is None else int(limit * 0.5)
