"""Loss grids: the loss on a 1-D or 2-D grid of coefficients along the directions.

The paper's grid is 200 x 200 points eta * (p, q), p, q in -100..99, eta = 0.001, on 256
fixed samples (`paper_axis`, `landscape_2d`). `evaluate_points` runs the chunks
(`chunks.plan_chunks`, `points`), sharded over a 1-D 'data' mesh when there are several
devices, and resumes from a file of finished points (`resume`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from transjax import distributed, progress, sharding
from transjax.analysis import batchnorm
from transjax.analysis.landscape import chunks, resume
from transjax.analysis.landscape import directions as directions_lib
from transjax.analysis.landscape import points as points_lib

PAPER_RESOLUTION = 200
PAPER_ETA = 1e-3
PAPER_NUM_SAMPLES = 256


def paper_axis(resolution: int = PAPER_RESOLUTION, eta: float = PAPER_ETA) -> np.ndarray:
  """eta * p for p = -resolution/2 .. resolution/2 - 1 (the paper: -100..99 times 0.001)."""
  half = resolution // 2
  return eta * np.arange(-half, resolution - half, dtype=np.float64)


@dataclasses.dataclass
class LandscapeResult:
  """Loss values on a 1-D or 2-D grid around a centre."""
  axes: list[np.ndarray]          # coordinates along each direction (eta * p)
  losses: np.ndarray              # shape (len(axes[0]),) or (len(axes[0]), len(axes[1]))
  center_loss: float
  plan: chunks.ChunkPlan
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


def evaluate_points(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                    directions: Sequence[Any], coeffs: np.ndarray, *,
                    chunk_size: int | None = None, memory_budget_bytes: int | None = None,
                    vectorize: str = "vmap", resume_path: str | None = None,
                    log_every_seconds: float = 10.0
                    ) -> tuple[np.ndarray, chunks.ChunkPlan, float]:
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
  budget = memory_budget_bytes or chunks._default_budget()
  if chunk_size is None:
    bpp, method = chunks.estimate_bytes_per_point(loss_fn, params, state, batch, directions)
  else:
    bpp, method = 0, "chunk size given"
  plan = chunks.plan_chunks(num_points, bpp, budget, method=method, chunk_size=chunk_size,
                            resident=chunks.points_in_memory(vectorize))
  plan.vectorize = vectorize
  logging.info("landscape: %s", plan.describe())
  dtype = jnp.asarray(jax.tree.leaves(params)[0]).dtype
  batched = points_lib._batched_point_fn(loss_fn, points_lib.moving_leaves(directions),
                                         vectorize)
  mesh = sharding.data_mesh() if plan.num_devices > 1 else None
  out = np.empty(num_points, np.float64)
  partial = None
  if resume_path:
    partial = resume._PartialGrid(
        resume_path, resume._fingerprint(params, state, batch, directions, coeffs))
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
  dirs = directions_lib.random_directions(key, params, 2, mask,
                                          include_bias_bn=include_bias_bn,
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
  (d,) = directions_lib.random_directions(key, params, 1, mask,
                                          include_bias_bn=include_bias_bn)
  return loss_landscape(loss_fn, params, state, batch, [d], [paper_axis(resolution, eta)],
                        chunk_size=chunk_size, memory_budget_bytes=memory_budget_bytes,
                        vectorize=vectorize, resume_path=resume_path, bn_mode=bn_mode)


def sequential_landscape(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                         directions: Sequence[Any], axes: Sequence[np.ndarray], *,
                         bn_mode: str = "running") -> np.ndarray:
  """Reference: one jitted single-point evaluation per grid point (as the loss-landscape
  tool does); for benchmarks and tests."""
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  f = jax.jit(points_lib._point_fn(loss_fn))
  dtype = jnp.asarray(jax.tree.leaves(params)[0]).dtype
  mesh = np.meshgrid(*axes, indexing="ij")
  coeffs = np.stack([m.ravel() for m in mesh], axis=1)
  out = np.array([float(f(params, state, batch, directions, jnp.asarray(c, dtype)))
                  for c in coeffs])
  return out.reshape(mesh[0].shape)
