"""Loss landscapes: filter-normalised random directions and 1-D / 2-D loss grids.

Paper, Appendix A "Visualization of loss landscapes": the value L(theta + eta (p a + q b))
with a, b random Gaussian directions filter-normalised as in Li et al. 2018, p, q in
-100..99 (a 200 x 200 grid), eta = 0.001, on 256 fixed samples. Restricting the
directions to one layer (a mask) gives the per-layer landscapes of Fig 5, the other layers
held fixed.

The loss is `loss_fn(..., train=False)` in the BatchNorm mode `bn_mode`
(`transjax.analysis.batchnorm`; "recalibrated" is the paper's analogue, "running" the
default and the behaviour before the mode existed), so the surface is a deterministic
function of the parameters. Grid points are evaluated with
`vmap` in chunks sized to a memory budget, sharded over a 1-D 'data' mesh when there are
several devices.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.flatten_util import ravel_pytree

from transjax import params as params_lib
from transjax import functional, memory, progress, sharding
from transjax import distributed
from transjax.analysis import batchnorm
from transjax.analysis.subset import resolve_mask
from transjax import ops

PAPER_RESOLUTION = 200
PAPER_ETA = 1e-3
PAPER_NUM_SAMPLES = 256
DEFAULT_BUDGET_BYTES = 2 << 30
# On CPU a chunk is a loop over groups of CPU_VMAP_WIDTH points (below), so its memory is
# a group's, whatever its length, and a longer chunk only spreads what the points share
# (computed once per chunk call) over more of them. LeNet's 51x51 grid on 256 MNIST
# images: that shared part (conv1's 1 + r convolutions of the input: its im2col patches
# and their layout) took ~23 ms a chunk, 0.36 ms a point at 64 points, in XLA's
# profile; five interleaved rounds on the 2-core VM gave 171-254 points/s (median 219)
# with chunks of 521 against 157-246 (median 182) with 64, at the same peak RSS
# (0.49 GiB). (With whole vmapped chunks, before the groups, 320 points ran slower than
# 16-128.) The memory budget bounds a chunk only where one group does not fit it
# (`plan_chunks`, `points_in_memory`).
CPU_MAX_CHUNK = 512
# Such a looped chunk is also at most CHUNK_WORK_BYTES / (one point's memory) points: a
# point's memory stands in for its cost, so a heavier model gets shorter chunks and the
# progress line (once a chunk) still comes every few seconds. LeNet on 256 images: 16.5
# MB a point -> 520 points, ~1.5 s a chunk on the 2-core CPU; a model 10x heavier gets
# 52 points.
CHUNK_WORK_BYTES = 8 << 30
# On CPU a chunk is a loop over groups of this many points, each group vmapped: the
# per-point activations of a group stay in cache, where a whole vmapped chunk wrote each
# layer's activations for all its points to memory and read them back (LeNet, 256
# images: 64 points as a (64, 256, 10, 10, 16) conv2 output, 105 MB). Everything the
# points share (the layers below the first moved one, and that layer's 1 + r
# convolutions, see transjax.ops.affine) does not depend on the loop and XLA computes
# it once per chunk. 51x51 LeNet grid, 2-core EPYC, in one process: groups of 4-8 points
# 258-306 points/s, single points 203-239, the whole chunk vmapped 156-203.
CPU_VMAP_WIDTH = 8


class GridTooLargeError(ValueError):
  """Even one grid point does not fit the memory budget (the message has the numbers)."""


# --------------------------------------------------------------------------------------
# Directions.


def filter_normalize(direction: Any, params: Any, mask: Any = None, *,
                     include_bias_bn: bool = False) -> Any:
  """Rescales each output filter of `direction` to the norm of the same filter of `params`.

  Conv kernels (HWIO) and dense kernels (in, out): the filter / neuron is the last axis.
  Leaves with ndim <= 1 (biases, BatchNorm scale/shift) become zero, or with
  `include_bias_bn` are rescaled as whole vectors. Leaves outside `mask` become zero.
  """
  mask = resolve_mask(params, mask)

  def one(d, w, m):
    if not m:
      return jnp.zeros_like(w)
    d = jnp.asarray(d, w.dtype)
    if w.ndim <= 1:
      if not include_bias_bn:
        return jnp.zeros_like(w)
      return d * jnp.linalg.norm(w) / (jnp.linalg.norm(d) + 1e-10)
    axes = tuple(range(w.ndim - 1))
    w_norm = jnp.sqrt(jnp.sum(jnp.square(w), axis=axes, keepdims=True))
    d_norm = jnp.sqrt(jnp.sum(jnp.square(d), axis=axes, keepdims=True))
    return d * w_norm / (d_norm + 1e-10)

  return jax.tree.map(one, direction, params, mask)


def random_direction(key: jax.Array, params: Any, mask: Any = None, *,
                     include_bias_bn: bool = False) -> Any:
  """A Gaussian direction, filter-normalised to `params`, zero outside `mask`."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  noise = [jax.random.normal(k, jnp.shape(w), jnp.asarray(w).dtype) for k, w in zip(keys, leaves)]
  return filter_normalize(jax.tree.unflatten(treedef, noise), params, mask,
                          include_bias_bn=include_bias_bn)


def orthogonalize(direction: Any, against: Any) -> Any:
  """Gram-Schmidt: `direction` minus its projection on `against` (flattened; zeros stay zero)."""
  d, unravel = ravel_pytree(direction)
  a, _ = ravel_pytree(against)
  return unravel(d - jnp.vdot(d, a) / jnp.vdot(a, a) * a)


def random_directions(key: jax.Array, params: Any, num: int = 2, mask: Any = None, *,
                      include_bias_bn: bool = False, orthogonal: bool = False) -> list[Any]:
  """`num` filter-normalised directions; with `orthogonal`, later ones are orthogonalised
  (Gram-Schmidt over the masked, flattened direction) against the earlier ones."""
  out = []
  for k in jax.random.split(key, num):
    d = random_direction(k, params, mask, include_bias_bn=include_bias_bn)
    if orthogonal:
      for prev in out:
        d = orthogonalize(d, prev)
    out.append(d)
  return out


def paper_axis(resolution: int = PAPER_RESOLUTION, eta: float = PAPER_ETA) -> np.ndarray:
  """eta * p for p = -resolution/2 .. resolution/2 - 1 (the paper: -100..99 times 0.001)."""
  half = resolution // 2
  return eta * np.arange(-half, resolution - half, dtype=np.float64)


# --------------------------------------------------------------------------------------
# Grid evaluation.


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


@dataclasses.dataclass
class LandscapeResult:
  """Loss values on a 1-D or 2-D grid around a centre."""
  axes: list[np.ndarray]          # coordinates along each direction (eta * p)
  losses: np.ndarray              # shape (len(axes[0]),) or (len(axes[0]), len(axes[1]))
  center_loss: float
  plan: ChunkPlan
  seconds: float
  points_per_second: float
  nan_count: int
  nan_points: list[list[float]]   # first few non-finite points, as coordinates

  def to_dict(self) -> dict[str, Any]:
    return {"axes": [a.tolist() for a in self.axes],
            "losses": np.where(np.isfinite(self.losses), self.losses, None).tolist(),
            "center_loss": self.center_loss, "plan": dataclasses.asdict(self.plan),
            "seconds": self.seconds, "points_per_second": self.points_per_second,
            "nan_count": self.nan_count, "nan_points": self.nan_points}


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


def _tree_bytes(tree) -> int:
  return int(sum(math.prod(np.shape(x)) * jnp.dtype(jnp.result_type(x)).itemsize
                 for x in jax.tree.leaves(tree)))


def _shapes(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), tree)


def estimate_bytes_per_point(loss_fn, params, state, batch, directions) -> tuple[int, str]:
  """Memory one grid point needs: the compiled single-point function's temporaries plus a
  moved copy of the parameters (XLA memory analysis), or a conservative formula.

  It depends on shapes only, so it is computed once per loss and shapes in a process:
  the analysis compiles the point function (~0.7 s for LeNet on 256 images, 2-core CPU),
  which later grids of the same model (layers, checkpoints, centres) need not repeat."""
  shapes = _shapes((params, state, batch, list(directions)))
  return _estimate_for_shapes(loss_fn, jax.tree.structure(shapes), tuple(jax.tree.leaves(shapes)))


@functools.lru_cache(maxsize=16)
def _estimate_for_shapes(loss_fn, treedef, leaves) -> tuple[int, str]:
  return _estimate_bytes_per_point(loss_fn, *jax.tree.unflatten(treedef, leaves))


def _estimate_bytes_per_point(loss_fn, params, state, batch, directions) -> tuple[int, str]:
  f = _point_fn(loss_fn)
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
  return CPU_VMAP_WIDTH if vectorize == "vmap" else 1


def _default_budget() -> int:
  limit = memory.device_bytes_limit()
  return DEFAULT_BUDGET_BYTES if limit is None else int(limit * 0.5)


def _fingerprint(params, state, batch, directions, coeffs) -> str:
  """A hash of everything a grid's values depend on but the loss function itself."""
  h = hashlib.sha256()
  for tree in (params, state, batch, list(directions), np.asarray(coeffs)):
    h.update(str(jax.tree.structure(tree)).encode())
    for leaf in jax.tree.leaves(tree):
      if jnp.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
      a = np.ascontiguousarray(distributed.to_numpy(leaf))  # a batch split over processes
      h.update(f"{a.shape}{a.dtype}".encode())
      h.update(a.tobytes())
  return h.hexdigest()


class _PartialGrid:
  """The losses of a grid's first points, saved after every chunk to `path` (.npz), so a
  killed run starts again where it stopped. A file made for another grid (other
  parameters, directions, data or coefficients) is ignored and overwritten."""

  def __init__(self, path: str, fingerprint: str):
    self.path, self.fingerprint = path, fingerprint

  def load(self, out: np.ndarray) -> int:
    """Fills out[:done] from the file; returns done (0 without a matching file)."""
    if not os.path.exists(self.path):
      return 0
    try:
      with np.load(self.path) as f:
        if str(f["fingerprint"]) != self.fingerprint or f["losses"].shape[0] > out.shape[0]:
          logging.warning("landscape: %s holds another grid's points; starting again",
                          self.path)
          return 0
        done = int(f["losses"].shape[0])
        out[:done] = f["losses"]
    except (OSError, KeyError, ValueError) as e:
      logging.warning("landscape: could not read %s (%s); starting again", self.path, e)
      return 0
    return done

  def save(self, losses: np.ndarray) -> None:
    if not distributed.is_writer():  # every process holds the same losses; one file
      return
    tmp = self.path + ".tmp.npz"
    np.savez(tmp, fingerprint=np.asarray(self.fingerprint), losses=losses)
    os.replace(tmp, self.path)


def evaluate_points(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                    directions: Sequence[Any], coeffs: np.ndarray, *,
                    chunk_size: int | None = None, memory_budget_bytes: int | None = None,
                    vectorize: str = "vmap", resume_path: str | None = None,
                    log_every_seconds: float = 10.0) -> tuple[np.ndarray, ChunkPlan, float]:
  """L(params + sum_i coeffs[:, i] directions[i]) for every row of coeffs (train=False).

  Returns (losses, plan, seconds). Each chunk is one jitted call: `vectorize="vmap"` vmaps
  the points (on CPU in groups of CPU_VMAP_WIDTH, one group after another); "map" runs
  them as a `lax.map` loop inside the call, which needs one point's memory instead of a
  chunk's. On CPU, vmap is fast only for models whose convolutions use
  `transjax.ops.Conv` (all transjax models do): there a grid point's convolution runs
  as a loop of ordinary convolutions instead of one grouped convolution, which XLA:CPU
  runs several times slower. The last chunk is padded so one compilation serves all; with
  several devices each chunk's point axis is sharded over a 1-D 'data' mesh.

  With `resume_path` the losses so far are saved there (.npz) after every chunk, and a
  file that holds the same grid (`_fingerprint`: parameters, state, batch, directions,
  coefficients) is read back first (`plan.resumed_points`), so an interrupted grid costs
  only its unfinished chunks.
  """
  if vectorize not in ("vmap", "map"):
    raise ValueError(f"vectorize must be 'vmap' or 'map', got {vectorize!r}.")
  coeffs = np.asarray(coeffs)
  num_points, num_dirs = coeffs.shape
  if num_dirs != len(directions):
    raise ValueError(f"coeffs has {num_dirs} columns for {len(directions)} directions.")
  budget = memory_budget_bytes or _default_budget()
  if chunk_size is None:
    bpp, method = estimate_bytes_per_point(loss_fn, params, state, batch, directions)
  else:
    bpp, method = 0, "chunk size given"
  plan = plan_chunks(num_points, bpp, budget, method=method, chunk_size=chunk_size,
                     resident=points_in_memory(vectorize))
  plan.vectorize = vectorize
  logging.info("landscape: %s", plan.describe())
  dtype = jnp.asarray(jax.tree.leaves(params)[0]).dtype
  batched = _batched_point_fn(loss_fn, moving_leaves(directions), vectorize)
  mesh = sharding.data_mesh() if plan.num_devices > 1 else None
  out = np.empty(num_points, np.float64)
  partial = None
  if resume_path:
    partial = _PartialGrid(resume_path, _fingerprint(params, state, batch, directions, coeffs))
    plan.resumed_points = partial.load(out)
    if plan.resumed_points:
      logging.info("landscape: resuming at %d/%d points from %s", plan.resumed_points,
                   num_points, resume_path)
  first = plan.resumed_points
  start = last_log = time.perf_counter()
  eta = progress.Estimate(num_points - first, "landscape", unit="points")
  for lo in range(first, num_points, plan.chunk_size):
    hi = min(num_points, lo + plan.chunk_size)
    chunk = np.zeros((plan.chunk_size, num_dirs), coeffs.dtype)
    chunk[:hi - lo] = coeffs[lo:hi]
    c = jnp.asarray(chunk, dtype)
    if mesh is not None:
      c = sharding.split_leading(c, mesh)
    # The chunk's points are split over every process's devices: gathered, not np.asarray.
    out[lo:hi] = distributed.to_numpy(batched(params, state, batch, directions, c))[:hi - lo]
    if partial is not None:
      partial.save(out[:hi])
    now = time.perf_counter()
    eta.update(hi - first)  # logs the cost of the whole grid once, after the first chunks
    if now - last_log > log_every_seconds or hi == num_points:
      logging.info("landscape: %d/%d points, %.1f points/s, %s", hi, num_points,
                   (hi - first) / (now - start), eta.text())
      last_log = now
  return out, plan, time.perf_counter() - start


def _nan_report(losses: np.ndarray, axes: list[np.ndarray], limit: int = 5):
  bad = np.argwhere(~np.isfinite(losses))
  points = [[float(axes[d][idx[d]]) for d in range(len(axes))] for idx in bad[:limit]]
  if len(bad):
    logging.warning("landscape: %d non-finite losses (kept the rest); first at %s", len(bad),
                    points)
  return int(len(bad)), points


def loss_landscape(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                   directions: Sequence[Any], axes: Sequence[np.ndarray], *,
                   chunk_size: int | None = None,
                   memory_budget_bytes: int | None = None,
                   vectorize: str = "vmap", resume_path: str | None = None,
                   bn_mode: str = "running") -> LandscapeResult:
  """The loss on the grid axes[0] x axes[1] (x ...) of coefficients along `directions`.

  1-D: one direction, one axis; 2-D: two. The paper's grid is
  `axes = [paper_axis(), paper_axis()]` (200 x 200, eta = 0.001) on 256 fixed samples.
  Non-finite losses are kept as NaN and reported (count and first few points).
  The loss uses train=False in `bn_mode` ("recalibrated": statistics of `batch` at the
  centre, fixed over the grid; "batch": each point's own batch statistics; "running": the
  stored ones). `resume_path`: see `evaluate_points` (the fingerprint covers the
  recalibrated statistics); points_per_second counts the points evaluated in this call.
  """
  if len(axes) != len(directions):
    raise ValueError(f"{len(axes)} axes for {len(directions)} directions.")
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  axes = [np.asarray(a, np.float64) for a in axes]
  mesh = np.meshgrid(*axes, indexing="ij")
  coeffs = np.stack([m.ravel() for m in mesh], axis=1)
  losses, plan, seconds = evaluate_points(loss_fn, params, state, batch, directions, coeffs,
                                          chunk_size=chunk_size,
                                          memory_budget_bytes=memory_budget_bytes,
                                          vectorize=vectorize, resume_path=resume_path)
  losses = losses.reshape(mesh[0].shape)
  center = float(jax.jit(lambda p, s, b: loss_fn(p, s, b, False)[0])(params, state, batch))
  nan_count, nan_points = _nan_report(losses, axes)
  evaluated = coeffs.shape[0] - plan.resumed_points
  pps = evaluated / seconds if evaluated and seconds > 0 else float("nan")
  return LandscapeResult(axes, losses, center, plan, seconds, pps, nan_count, nan_points)


def landscape_2d(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any], *,
                 key: jax.Array | int = 0, mask: Any = None, resolution: int = PAPER_RESOLUTION,
                 eta: float = PAPER_ETA, include_bias_bn: bool = False,
                 orthogonal: bool = False, chunk_size: int | None = None,
                 memory_budget_bytes: int | None = None,
                 vectorize: str = "vmap", resume_path: str | None = None,
                 bn_mode: str = "running") -> LandscapeResult:
  """The paper's 2-D landscape: two filter-normalised directions (restricted to `mask`,
  e.g. one layer), grid eta * (-res/2 .. res/2 - 1) on both axes."""
  if isinstance(key, int):
    key = jax.random.key(key)
  dirs = random_directions(key, params, 2, mask, include_bias_bn=include_bias_bn,
                           orthogonal=orthogonal)
  axis = paper_axis(resolution, eta)
  return loss_landscape(loss_fn, params, state, batch, dirs, [axis, axis],
                        chunk_size=chunk_size, memory_budget_bytes=memory_budget_bytes,
                        vectorize=vectorize, resume_path=resume_path, bn_mode=bn_mode)


def landscape_1d(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any], *,
                 key: jax.Array | int = 0, mask: Any = None, resolution: int = PAPER_RESOLUTION,
                 eta: float = PAPER_ETA, include_bias_bn: bool = False,
                 chunk_size: int | None = None,
                 memory_budget_bytes: int | None = None,
                 vectorize: str = "vmap", resume_path: str | None = None,
                 bn_mode: str = "running") -> LandscapeResult:
  """1-D slice along one filter-normalised direction (restricted to `mask`)."""
  if isinstance(key, int):
    key = jax.random.key(key)
  (d,) = random_directions(key, params, 1, mask, include_bias_bn=include_bias_bn)
  return loss_landscape(loss_fn, params, state, batch, [d], [paper_axis(resolution, eta)],
                        chunk_size=chunk_size, memory_budget_bytes=memory_budget_bytes,
                        vectorize=vectorize, resume_path=resume_path, bn_mode=bn_mode)


def sequential_landscape(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                         directions: Sequence[Any], axes: Sequence[np.ndarray], *,
                         bn_mode: str = "running") -> np.ndarray:
  """Reference: one jitted single-point evaluation per grid point (as the loss-landscape
  tool does); for benchmarks and tests."""
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  f = jax.jit(_point_fn(loss_fn))
  dtype = jnp.asarray(jax.tree.leaves(params)[0]).dtype
  mesh = np.meshgrid(*axes, indexing="ij")
  coeffs = np.stack([m.ravel() for m in mesh], axis=1)
  out = np.array([float(f(params, state, batch, directions, jnp.asarray(c, dtype)))
                  for c in coeffs])
  return out.reshape(mesh[0].shape)


def layer_mask(params: Any, layer: str | Sequence[str] | None) -> Any:
  """`params.mask_for` with the empty-mask check (UnknownLayerError lists valid layers)."""
  return resolve_mask(params, params_lib.mask_for(params, layer))


def quadratic_fit(losses: np.ndarray) -> tuple[float, float]:
  """(curvature, bumpiness) of a 2-D grid: least squares of the quadratic
  z = a + b u + c v + d u^2 + e u v + f v^2 in grid coordinates u, v scaled to [-1, 1]
  (so grids of one width compare whatever their resolution). curvature = d + f, half the
  Laplacian of the fitted bowl: how fast the loss rises from the centre, in loss per (half
  grid width)^2; bumpiness = the RMS of the residual: what no bowl explains. Finite points
  only; NaN with fewer than 6."""
  a = np.asarray(losses, np.float64)
  u, v = np.meshgrid(np.linspace(-1, 1, a.shape[0]), np.linspace(-1, 1, a.shape[1]),
                     indexing="ij")
  ok = np.isfinite(a)
  if ok.sum() < 6:
    return float("nan"), float("nan")
  u, v, z = u[ok], v[ok], a[ok]
  design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
  coef, *_ = np.linalg.lstsq(design, z, rcond=None)
  residual = z - design @ coef
  return float(coef[3] + coef[5]), float(np.sqrt(np.mean(residual ** 2)))


def grid_stats(losses: np.ndarray, center: float) -> dict[str, float]:
  """Flatness / smoothness of a 2-D grid: mean and max increase over the centre, range,
  roughness (mean |discrete Laplacian|, which mixes the bowl's curvature with bumps), and
  the two apart: curvature and bumpiness of a quadratic fit (`quadratic_fit`)."""
  a = np.asarray(losses, np.float64)
  lap = (a[2:, 1:-1] + a[:-2, 1:-1] + a[1:-1, 2:] + a[1:-1, :-2] - 4 * a[1:-1, 1:-1])
  curvature, bumpiness = quadratic_fit(a) if a.ndim == 2 else (float("nan"), float("nan"))
  return {"center": float(center), "mean_increase": float(np.nanmean(a - center)),
          "max_increase": float(np.nanmax(a - center)),
          "range": float(np.nanmax(a) - np.nanmin(a)),
          "roughness": float(np.nanmean(np.abs(lap))) if lap.size else 0.0,
          "curvature": curvature, "bumpiness": bumpiness,
          "nan_count": int(np.sum(~np.isfinite(a)))}
