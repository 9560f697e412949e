r"""transjax's hand-written Hessian solvers against `matfree` on the identical operator.

    python -m experiments.benchmark_matfree --output=runs/benchmark_matfree.json

Issue 25, item 4: `matfree` (JAX; Lanczos, stochastic Lanczos quadrature, Hutchinson) does
what `transjax.analysis.hessian` writes by hand. Both sides get the same operator, the
bound method `HessianOperator.matvec` (LeNet-5 at the weights `benchmark_analysis` uses,
or after `--train_steps` of SGD; the first `--num_samples` MNIST test images), and the
same random vectors:

1. Top-k eigenvalues. Ours: `hessian.lanczos_top_k` (full reorthogonalisation, stops when
   every wanted Ritz residual is below `--tol` relative). matfree: `decomp.tridiag_sym`
   (full reorthogonalisation; a fixed Krylov depth, it has no stopping rule) and the
   eigenvalues of its tridiagonal matrix (what `eig.eigh_partial` does, without forming
   the Ritz vectors), from the same start vector, run at the depth ours stopped at (the
   same HVPs) and at ours' cap `--max_steps` (what a user without a stopping rule runs).
2. Trace. Ours: `hessian.hutchinson_trace`. matfree: `stochtrace.
   estimator_monte_carlo_mean_and_sem(stochtrace.monte_carlo_trace(), sampler)` applied
   block by block to the very Rademacher probes ours draws (the sampler returns them).
3. Spectral density. Ours: `hessian.slq_density`. matfree: `decomp.tridiag_sym` on the
   same Gaussian probes at the same Krylov depth, one probe at a time (as ours) and vmapped
   over the probes (matfree's estimator style); nodes = eigenvalues of T, weights = squared
   first components, broadened exactly as ours on ours' grid.

Timing: every workload is called once first (compilation; that first call's time is
reported as `*_first_s`), then `--rounds` interleaved rounds (ours, matfree, ours,
matfree, ...); `*_s` is the best round, `*_median_s` the median.

Accuracy: on a restricted operator small enough for a dense Hessian (`--accuracy_mask`,
default conv2: 2,416 parameters) the same comparison runs against `numpy.linalg.eigh` of
the dense Hessian (top-k relative error, exact trace, and the L1 distance of each density
from the dense eigenvalues broadened on the same grid with the same sigma). HVP counts
there are counted (a host callback in the matvec, in a separate untimed run); on the full
operator they are the same functions of the settings.

matfree is not a dependency of transjax: `pip install matfree` (recorded as not measured
without it).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from experiments.benchmark_analysis import load_batch
from transjax import cli, functional
from transjax.analysis import hessian
from transjax.models import build_model


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  return dict(
      output=flags.DEFINE_string("output", "runs/benchmark_matfree.json",
                                 "Where to write the JSON."),
      num_samples=flags.DEFINE_integer("num_samples", 256,
                                       "Fixed sample set (first MNIST test images)."),
      top_k=flags.DEFINE_integer("top_k", 20, "Number of top eigenvalues."),
      tol=flags.DEFINE_float("tol", 1e-6, "Relative Ritz-residual tolerance of our Lanczos; "
                             "matfree runs at the depth ours stopped at."),
      max_steps=flags.DEFINE_integer("max_steps", 200, "Our Lanczos step cap; matfree is "
                                     "also run at this fixed depth."),
      trace_probes=flags.DEFINE_integer("trace_probes", 100, "Hutchinson probes."),
      block_size=flags.DEFINE_integer("block_size", 10, "Hutchinson probes per vmapped block "
                                      "(both sides)."),
      slq_probes=flags.DEFINE_integer("slq_probes", 10, "SLQ probes."),
      slq_steps=flags.DEFINE_integer("slq_steps", 90, "SLQ Krylov depth."),
      rounds=flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds (best reported)."),
      seed=flags.DEFINE_integer("seed", 0, "Seed of the start vector and the probes."),
      train_steps=flags.DEFINE_integer("train_steps", 0, "SGD steps (batch 64, lr --lr) on "
                                       "MNIST train before measuring; 0: the initial weights "
                                       "benchmark_analysis uses."),
      lr=flags.DEFINE_float("lr", 0.05, "Learning rate of --train_steps."),
      accuracy_mask=flags.DEFINE_string("accuracy_mask", "conv2", "Layer(s) (comma-separated) "
                                        "of the dense-reference operator ('' skips)."),
      fixed_depth=flags.DEFINE_bool("fixed_depth", True, "Also time matfree's Lanczos at "
                                    "the fixed depth --max_steps."),
      slq_vmap=flags.DEFINE_bool("slq_vmap", True, "Also time matfree's SLQ vmapped over "
                                 "the probes."),
      full=flags.DEFINE_bool("full", True, "Also time on the full operator (all parameters)."),
      data_dir=flags.DEFINE_string("data_dir", None, "MNIST folder (default: "
                                   "$TRANSJAX_DATA_DIR, then ../shared/data beside the "
                                   "repository)."))


_FLAGS = cli.BinaryFlags(_define_flags)


def matfree_available() -> bool:
  try:
    import matfree  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return False
  return True


def matfree_version() -> str | None:
  try:
    from importlib import metadata  # pylint: disable=import-outside-toplevel
    return metadata.version("matfree")
  except Exception:  # pylint: disable=broad-except
    return None


# --------------------------------------------------------------------------------------
# The random vectors ours draws, drawn again for matfree.


def start_vector(dim: int, dtype, seed: int) -> jax.Array:
  """`lanczos_top_k`'s start vector."""
  _, sub = jax.random.split(jax.random.key(seed))
  v = jax.random.normal(sub, (dim,), dtype)
  return v / jnp.linalg.norm(v)


def hutchinson_blocks(dim: int, dtype, num_probes: int, block_size: int,
                      seed: int) -> list[jax.Array]:
  """`hutchinson_trace`'s Rademacher probes, block by block."""
  key, blocks, done = jax.random.key(seed), [], 0
  while done < num_probes:
    b = min(block_size, num_probes - done)
    key, sub = jax.random.split(key)
    blocks.append(jax.random.rademacher(sub, (b, dim), dtype))
    done += b
  return blocks


def slq_probes(dim: int, dtype, num_probes: int, seed: int) -> jax.Array:
  """`slq_density`'s Gaussian probes (num_probes, dim)."""
  key, out = jax.random.key(seed), []
  for _ in range(num_probes):
    key, sub, _ = jax.random.split(key, 3)
    out.append(jax.random.normal(sub, (dim,), dtype))
  return jnp.stack(out)


# --------------------------------------------------------------------------------------
# matfree's side.


def matfree_top_k(matvec, steps: int, k: int):
  """jitted `v0 -> (top-k eigenvalues descending, their Ritz residual bounds)`: matfree's
  Lanczos (`decomp.tridiag_sym`, full reorthogonalisation) of depth `steps`."""
  from matfree import decomp  # pylint: disable=import-outside-toplevel
  tri = decomp.tridiag_sym(steps, reortho="full", materialize=True)

  @jax.jit
  def run(v0):
    _, t, r, _ = tri(matvec, v0)
    theta, s = jnp.linalg.eigh(t)
    top = theta[::-1][:k]
    res = jnp.linalg.norm(r) * jnp.abs(s[-1, ::-1][:k])
    return top, res

  return run


def matfree_trace(matvec):
  """jitted `probe block -> (mean, sem)`: matfree's Monte-Carlo estimator of tr(H) with a
  sampler that returns the given block."""
  from matfree import stochtrace  # pylint: disable=import-outside-toplevel
  est = stochtrace.estimator_monte_carlo_mean_and_sem(stochtrace.monte_carlo_trace(),
                                                      sampler=lambda block: block)
  return jax.jit(lambda block: est(matvec, block))


def pool_blocks(means, sems, sizes) -> tuple[float, float]:
  """Mean and standard error (ddof 1, as ours) of all samples from per-block means and
  ddof-0 standard errors."""
  means, sems, sizes = (np.asarray(x, np.float64) for x in (means, sems, sizes))
  n = sizes.sum()
  mean = float(np.sum(sizes * means) / n)
  second = np.sum(sizes * (sems**2 * sizes + means**2)) / n   # E[x^2]; sem^2 * b = var0
  var1 = max(second - mean**2, 0.0) * n / (n - 1)
  return mean, float(np.sqrt(var1 / n))


def matfree_slq(matvec, steps: int, vmapped: bool):
  """jitted `probes -> (nodes, weights)` (num_probes, steps): matfree's Lanczos on each
  probe; one probe per call (loop) or all probes vmapped."""
  from matfree import decomp  # pylint: disable=import-outside-toplevel
  tri = decomp.tridiag_sym(steps, reortho="full", materialize=True)

  def one(v):
    _, t, _, _ = tri(matvec, v)
    theta, s = jnp.linalg.eigh(t)
    return theta, s[0] ** 2

  if vmapped:
    return jax.jit(jax.vmap(one))
  one_jit = jax.jit(one)

  def loop(probes):
    outs = [one_jit(v) for v in probes]
    return jnp.stack([o[0] for o in outs]), jnp.stack([o[1] for o in outs])

  return loop


def broaden(nodes, weights, grid, sigma) -> np.ndarray:
  """`slq_density`'s probe-averaged Gaussian broadening on a given grid."""
  nodes, weights = np.asarray(nodes, np.float64), np.asarray(weights, np.float64)
  valid = ~np.isnan(nodes)
  diff = grid[None, None, :] - np.where(valid, nodes, 0.0)[..., None]
  gauss = np.exp(-0.5 * (diff / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
  return np.sum(weights[..., None] * gauss * valid[..., None], axis=(0, 1)) / nodes.shape[0]


def l1(grid, a, b) -> float:
  return float(np.trapezoid(np.abs(np.asarray(a) - np.asarray(b)), grid))


# --------------------------------------------------------------------------------------
# Counting, timing, reference.


class _Counter:
  """A matvec that counts its HVPs through a host callback (one per vector, also under
  vmap); for the untimed counting runs only."""

  def __init__(self, matvec):
    self.count = 0
    self._matvec = matvec

  def _add(self, _):
    self.count += 1

  def __call__(self, v):
    jax.debug.callback(self._add, v[0])
    return self._matvec(v)


def _say(msg: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _block(x):
  return jax.block_until_ready(x)


def _call(fn):
  t = time.perf_counter()
  out = _block(fn())
  return time.perf_counter() - t, out


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def dense_reference(op) -> dict:
  """The operator's dense Hessian (`op.dense()`, symmetrised, float64): its eigenvalues
  (descending) and trace."""
  h = np.asarray(op.dense(), np.float64)
  h = 0.5 * (h + h.T)
  evals = np.linalg.eigvalsh(h)[::-1]
  return {"eigenvalues": evals, "trace": float(np.trace(h)), "dim": int(h.shape[0])}


def _timing(times: list[float]) -> dict:
  return {"s": float(min(times)), "median_s": float(np.median(times)),
          "rounds_s": [float(t) for t in times]}


def compare(op, *, top_k: int = 20, tol: float = 1e-6, max_steps: int = 200,
            trace_probes: int = 100, block_size: int = 10, slq_probes_n: int = 10,
            slq_steps: int = 90, rounds: int = 3, seed: int = 0,
            reference: dict | None = None, count_hvps: bool = False,
            fixed_depth: bool = True, slq_vmap: bool = True) -> dict:
  """Ours against matfree on `op` (top-k, trace, density): times, HVP counts, agreement,
  and, with `reference` (`dense_reference(op)`), accuracy against the dense Hessian.

  count_hvps: also run each matfree workload once with a counting matvec (untimed).
  fixed_depth: also time matfree's Lanczos at depth `max_steps`.
  slq_vmap: also time matfree's SLQ vmapped over the probes.
  """
  dim, dtype = op.dim, op.dtype
  max_steps = min(max_steps, dim)
  slq_steps = min(slq_steps, dim - 1)
  out: dict = {"dim": dim, "dtype": np.dtype(dtype).name}
  _say(f"dim {dim}: one HVP, from Python and in a fori_loop")
  out["hvp_in_loop"] = hvp_in_loop(op, seed=seed)

  # ---- top-k
  _say(f"dim {dim}: top-{top_k}")
  v0 = start_vector(dim, dtype, seed)
  t, _ = _call(lambda: hessian.lanczos_top_k(op, top_k, tol=1e30, max_steps=max_steps,
                                             seed=seed))
  ours_first = t
  ours_res = hessian.lanczos_top_k(op, top_k, tol=tol, max_steps=max_steps, seed=seed)
  steps = ours_res.iterations
  mf = matfree_top_k(op.matvec, steps, top_k)
  mf_first, (mf_vals, mf_res) = _call(lambda: mf(v0))
  runs = {"ours": [], "matfree": []}
  mf_fixed = matfree_top_k(op.matvec, max_steps, top_k) if fixed_depth else None
  if mf_fixed is not None:
    runs["matfree_fixed"] = []
    mf_fixed_first, (fx_vals, fx_res) = _call(lambda: mf_fixed(v0))
  for _ in range(rounds):
    ours_res = hessian.lanczos_top_k(op, top_k, tol=tol, max_steps=max_steps, seed=seed)
    runs["ours"].append(ours_res.seconds)
    t, (mf_vals, mf_res) = _call(lambda: mf(v0))
    runs["matfree"].append(t)
    if mf_fixed is not None:
      t, (fx_vals, fx_res) = _call(lambda: mf_fixed(v0))
      runs["matfree_fixed"].append(t)
  ours_vals = np.asarray(ours_res.eigenvalues)
  top = {"k": top_k, "tol": tol, "max_steps": max_steps,
         "ours": {**_timing(runs["ours"]), "first_s": ours_first, "hvps": ours_res.hvp_count,
                  "steps": steps, "converged": ours_res.converged,
                  "eigenvalues": ours_vals.tolist(),
                  "max_rel_residual": float(np.max(ours_res.residuals
                                                   / np.abs(ours_vals)))},
         "matfree": {**_timing(runs["matfree"]), "first_s": mf_first, "hvps": steps,
                     "depth": steps, "eigenvalues": np.asarray(mf_vals).tolist(),
                     "max_rel_residual": float(np.max(np.asarray(mf_res)
                                                      / np.abs(np.asarray(mf_vals))))}}
  top["matfree_vs_ours_max_rel"] = _rel(mf_vals, ours_vals)
  top["ratio_ours_over_matfree"] = top["ours"]["s"] / top["matfree"]["s"]
  top["ours_per_hvp_ms"] = 1e3 * top["ours"]["s"] / top["ours"]["hvps"]
  top["matfree_per_hvp_ms"] = 1e3 * top["matfree"]["s"] / steps
  if mf_fixed is not None:
    top["matfree_fixed_depth"] = {
        **_timing(runs["matfree_fixed"]), "first_s": mf_fixed_first, "hvps": max_steps,
        "depth": max_steps, "eigenvalues": np.asarray(fx_vals).tolist(),
        "max_rel_residual": float(np.max(np.asarray(fx_res) / np.abs(np.asarray(fx_vals))))}
    top["matfree_fixed_depth"]["vs_ours_max_rel"] = _rel(fx_vals, ours_vals)
    top["ratio_ours_over_matfree_fixed_depth"] = top["ours"]["s"] / top["matfree_fixed_depth"]["s"]
  out["top_k"] = top

  # ---- trace
  _say(f"dim {dim}: trace")
  blocks = hutchinson_blocks(dim, dtype, trace_probes, block_size, seed)
  sizes = [int(b.shape[0]) for b in blocks]
  mft = matfree_trace(op.matvec)

  def run_mf_trace():
    outs = [mft(b) for b in blocks]
    return jnp.stack([o[0] for o in outs]), jnp.stack([o[1] for o in outs])

  ours_first, _ = _call(lambda: hessian.hutchinson_trace(op, trace_probes,
                                                         block_size=block_size, seed=seed))
  mf_first, _ = _call(run_mf_trace)
  runs = {"ours": [], "matfree": []}
  for _ in range(rounds):
    tr = hessian.hutchinson_trace(op, trace_probes, block_size=block_size, seed=seed)
    runs["ours"].append(tr.seconds)
    t, (means, sems) = _call(run_mf_trace)
    runs["matfree"].append(t)
  mf_mean, mf_se = pool_blocks(means, sems, sizes)
  trace = {"num_probes": trace_probes, "block_size": block_size,
           "ours": {**_timing(runs["ours"]), "first_s": ours_first, "hvps": tr.hvp_count,
                    "trace": tr.trace, "std_error": tr.std_error},
           "matfree": {**_timing(runs["matfree"]), "first_s": mf_first, "hvps": trace_probes,
                       "trace": mf_mean, "std_error": mf_se},
           "matfree_vs_ours_rel": abs(mf_mean - tr.trace) / max(abs(tr.trace), 1e-30)}
  trace["ratio_ours_over_matfree"] = trace["ours"]["s"] / trace["matfree"]["s"]
  out["trace"] = trace

  # ---- density
  _say(f"dim {dim}: density")
  probes = slq_probes(dim, dtype, slq_probes_n, seed)
  mf_loop = matfree_slq(op.matvec, slq_steps, vmapped=False)
  mf_vmap = matfree_slq(op.matvec, slq_steps, vmapped=True) if slq_vmap else None
  ours_first, _ = _call(lambda: hessian.slq_density(op, slq_probes_n, slq_steps, seed=seed))
  loop_first, _ = _call(lambda: mf_loop(probes))
  vmap_first = _call(lambda: mf_vmap(probes))[0] if slq_vmap else None
  runs = {"ours": [], "matfree_loop": [], "matfree_vmap": []}
  for _ in range(rounds):
    dens = hessian.slq_density(op, slq_probes_n, slq_steps, seed=seed)
    runs["ours"].append(dens.seconds)
    t, (lnodes, lweights) = _call(lambda: mf_loop(probes))
    runs["matfree_loop"].append(t)
    if slq_vmap:
      t, (vnodes, vweights) = _call(lambda: mf_vmap(probes))
      runs["matfree_vmap"].append(t)
  grid, sigma = dens.grid, dens.sigma
  p_loop = broaden(lnodes, lweights, grid, sigma)
  p_vmap = broaden(vnodes, vweights, grid, sigma) if slq_vmap else None
  den = {"num_probes": slq_probes_n, "steps": slq_steps, "sigma": sigma,
         "ours": {**_timing(runs["ours"]), "first_s": ours_first, "hvps": dens.hvp_count},
         "matfree_loop": {**_timing(runs["matfree_loop"]), "first_s": loop_first,
                          "hvps": slq_probes_n * slq_steps,
                          "l1_vs_ours": l1(grid, p_loop, dens.density)},
         "ours_mass": float(np.trapezoid(dens.density, grid)),
         # The density's first moment is tr(H)/dim: each probe's sum_j tau_j theta_j.
         "ours_mean_eigenvalue": float(np.nanmean(np.nansum(dens.nodes * dens.weights, 1))),
         "matfree_mean_eigenvalue": float(np.mean(np.sum(np.asarray(lnodes, np.float64)
                                                         * np.asarray(lweights), 1)))}
  den["ratio_ours_over_matfree_loop"] = den["ours"]["s"] / den["matfree_loop"]["s"]
  if slq_vmap:
    den["matfree_vmap"] = {**_timing(runs["matfree_vmap"]), "first_s": vmap_first,
                           "hvps": slq_probes_n * slq_steps,
                           "l1_vs_ours": l1(grid, p_vmap, dens.density)}
    den["ratio_ours_over_matfree_vmap"] = den["ours"]["s"] / den["matfree_vmap"]["s"]
  out["density"] = den

  if count_hvps:
    c = _Counter(op.matvec)
    _block(matfree_top_k(c, steps, top_k)(v0))
    top["matfree"]["hvps_counted"], c.count = c.count, 0
    _block([matfree_trace(c)(b) for b in blocks])
    trace["matfree"]["hvps_counted"], c.count = c.count, 0
    _block(matfree_slq(c, slq_steps, vmapped=False)(probes))
    den["matfree_loop"]["hvps_counted"], c.count = c.count, 0
    if slq_vmap:
      _block(matfree_slq(c, slq_steps, vmapped=True)(probes))
      den["matfree_vmap"]["hvps_counted"] = c.count

  if reference is not None:
    ref_vals = np.asarray(reference["eigenvalues"])[:top_k]
    top["dense_top_k"] = ref_vals.tolist()
    top["ours"]["max_rel_error"] = _rel(ours_vals, ref_vals)
    top["matfree"]["max_rel_error"] = _rel(mf_vals, ref_vals)
    if mf_fixed is not None:
      top["matfree_fixed_depth"]["max_rel_error"] = _rel(fx_vals, ref_vals)
    exact = reference["trace"]
    trace["exact"] = exact
    trace["ours"]["rel_error"] = abs(tr.trace - exact) / abs(exact)
    trace["matfree"]["rel_error"] = abs(mf_mean - exact) / abs(exact)
    p_ref = broaden(np.asarray(reference["eigenvalues"])[None],
                    np.full((1, reference["dim"]), 1.0 / reference["dim"]), grid, sigma)
    den["exact_mean_eigenvalue"] = exact / reference["dim"]
    den["ours"]["l1_vs_dense"] = l1(grid, dens.density, p_ref)
    den["matfree_loop"]["l1_vs_dense"] = l1(grid, p_loop, p_ref)
    if slq_vmap:
      den["matfree_vmap"]["l1_vs_dense"] = l1(grid, p_vmap, p_ref)
    den["dense_mass_on_grid"] = float(np.trapezoid(p_ref, grid))
  return out


def hvp_in_loop(op, n: int = 30, rounds: int = 4, seed: int = 0) -> dict:
  """ms per HVP of `n` normalised products v <- Hv/|Hv|, dispatched from Python (how ours
  runs: one jitted `op.matvec` per step) against inside one jitted `lax.fori_loop` (how
  matfree's Lanczos runs), interleaved rounds, best and median."""
  v0 = start_vector(op.dim, op.dtype, seed)

  def python_loop(v):
    for _ in range(n):
      w = op.matvec(v)
      v = w / jnp.linalg.norm(w)
    return v

  @jax.jit
  def fori(v):
    def body(_, v):
      w = op.matvec(v)
      return w / jnp.linalg.norm(w)
    return jax.lax.fori_loop(0, n, body, v)

  _block(python_loop(v0))
  _block(fori(v0))
  times = {"python_loop": [], "fori_loop": []}
  for _ in range(rounds):
    for name, f in (("python_loop", python_loop), ("fori_loop", fori)):
      t, _ = _call(lambda f=f: f(v0))
      times[name].append(1e3 * t / n)
  out = {k: {"ms": float(min(v)), "median_ms": float(np.median(v))} for k, v in times.items()}
  out["fori_over_python"] = out["fori_loop"]["ms"] / out["python_loop"]["ms"]
  return out


def breakdown_check(seeds: int = 6, depth: int = 10, k: int = 3) -> dict:
  """Lanczos past an exhausted Krylov space: a float32 rank-5 operator (diag 5, 4, 3, 2, 1,
  then 45 zeros) at depth `depth` > 6, the invariant subspace a start vector spans.

  Ours restarts with a vector orthogonal to its basis when the residual vanishes (T
  splits); matfree's `tridiag_sym` normalises the rounding residual and goes on with a
  vector that is not orthogonal to its basis, whose Ritz values include ghosts. Records,
  over `seeds` start vectors, the worst top-k error of each (ours forced to the full depth
  with tol 0) and each side's largest Ritz value of SLQ (probes at the same depth)."""
  d = np.zeros(50, np.float32)
  d[:5] = [5, 4, 3, 2, 1]
  op = hessian.DenseOperator(np.diag(d))
  exact = np.sort(d)[::-1][:k]
  ours_err, mf_err, mf_bad = 0.0, 0.0, 0
  for seed in range(seeds):
    o = hessian.lanczos_top_k(op, k, tol=0.0, max_steps=depth, seed=seed)
    vals, _ = matfree_top_k(op.matvec, depth, k)(start_vector(50, op.dtype, seed))
    ours_err = max(ours_err, _rel(o.eigenvalues, exact))
    e = _rel(vals, exact)
    mf_err, mf_bad = max(mf_err, e), mf_bad + int(e > 1e-3)
  dens = hessian.slq_density(op, seeds, depth, seed=0)
  nodes, _ = matfree_slq(op.matvec, depth, vmapped=True)(slq_probes(50, op.dtype, seeds, 0))
  return {"operator": "diag(5,4,3,2,1, 0 x45), float32", "depth": depth, "k": k,
          "seeds": seeds, "ours_top_k_max_rel_error": ours_err,
          "matfree_top_k_max_rel_error": mf_err, "matfree_seeds_wrong": mf_bad,
          "ours_slq_max_node": float(np.nanmax(dens.nodes)),
          "matfree_slq_max_node": float(np.max(np.asarray(nodes))), "exact_max": 5.0}


def rank_deficient_check(loss_fn, params, state, batch, *, mask="fc", k: int = 20,
                         depth: int = 200, seeds: int = 3) -> dict:
  """The same on a real Hessian: the head (`mask`) on a few images, whose Hessian has
  rank at most images x (classes - 1) (16 MNIST images: 144 of 850), below the depth
  (ours' default cap for top-20, 200). Ours at tol 1e-6 and forced to the full depth
  (tol 0), matfree at the full depth, against the dense Hessian."""
  op = hessian.HessianOperator(loss_fn, params, state, batch, mask=mask)
  ref = dense_reference(op)
  evals = ref["eigenvalues"]
  out = {"mask": mask, "dim": op.dim, "images": int(np.shape(batch["label"])[0]),
         "rank": int(np.sum(np.abs(evals) > 1e-6 * abs(evals[0]))), "depth": depth, "k": k,
         "dense_top": float(evals[0]), "ours_steps": [], "ours_max_rel_error": [],
         "ours_full_depth_max_rel_error": [], "matfree_max_rel_error": [], "matfree_top": []}
  run = matfree_top_k(op.matvec, min(depth, op.dim), k)
  for seed in range(seeds):
    o = hessian.lanczos_top_k(op, k, tol=1e-6, max_steps=depth, seed=seed)
    o_full = hessian.lanczos_top_k(op, k, tol=0.0, max_steps=depth, seed=seed)
    vals, _ = run(start_vector(op.dim, op.dtype, seed))
    out["ours_steps"].append(o.iterations)
    out["ours_max_rel_error"].append(_rel(o.eigenvalues, evals[:k]))
    out["ours_full_depth_max_rel_error"].append(_rel(o_full.eigenvalues, evals[:k]))
    out["matfree_max_rel_error"].append(_rel(vals, evals[:k]))
    out["matfree_top"].append(float(np.asarray(vals)[0]))
  return out


# --------------------------------------------------------------------------------------
# The problem.


def make_problem(num_samples: int, data_dir: str | None, train_steps: int = 0,
                 lr: float = 0.05, seed: int = 0):
  """(loss_fn, params, state, batch, description): LeNet-5 as `benchmark_analysis` builds
  it, optionally trained `train_steps` SGD steps on MNIST train (batch 64)."""
  batch, desc = load_batch(num_samples, data_dir)
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  loss_fn = functional.make_loss_fn(g)
  if train_steps:
    from transjax import data  # pylint: disable=import-outside-toplevel
    ds = data.load("mnist", "train", data_dir=data.find_data_dir(data_dir))
    images = np.asarray(ds.images, np.float32)
    if ds.images.dtype == np.uint8:
      images = images / 255.0
    labels = np.asarray(ds.labels)

    @jax.jit
    def step(p, x, y):
      grad = jax.grad(lambda q: loss_fn(q, s, {"image": x, "label": y}, False)[0])(p)
      return jax.tree.map(lambda a, b: a - lr * b, p, grad)

    order = np.random.default_rng(seed).permutation(len(labels))
    for i in range(train_steps):
      idx = order[(i * 64) % (len(order) - 64):][:64]
      p = step(p, jnp.asarray(images[idx]), jnp.asarray(labels[idx]))
    desc += f"; LeNet after {train_steps} SGD steps (batch 64, lr {lr}) on MNIST train"
  else:
    desc += "; LeNet at benchmark_analysis's initial weights"
  return loss_fn, p, s, batch, desc


def benchmark(output: str, *, num_samples: int = 256, top_k: int = 20, tol: float = 1e-6,
              max_steps: int = 200, trace_probes: int = 100, block_size: int = 10,
              slq_probes_n: int = 10, slq_steps: int = 90, rounds: int = 3, seed: int = 0,
              train_steps: int = 0, lr: float = 0.05, accuracy_mask: str = "conv2",
              full: bool = True, fixed_depth: bool = True, slq_vmap: bool = True,
              data_dir: str | None = None) -> dict:
  out = {"matfree_version": matfree_version(), "jax_version": jax.__version__,
         "backend": jax.default_backend(), "load_average_start": os.getloadavg(),
         "settings": {"num_samples": num_samples, "top_k": top_k, "tol": tol,
                      "max_steps": max_steps, "trace_probes": trace_probes,
                      "block_size": block_size, "slq_probes": slq_probes_n,
                      "slq_steps": slq_steps, "rounds": rounds, "seed": seed,
                      "train_steps": train_steps, "fixed_depth": fixed_depth,
                      "slq_vmap": slq_vmap}}
  if not matfree_available():
    out["measured"] = False
    out["reason"] = "matfree not installed (pip install matfree)"
  else:
    out["measured"] = True
    out["breakdown"] = breakdown_check()
    loss_fn, p, s, batch, desc = make_problem(num_samples, data_dir, train_steps, lr, seed)
    out["data"] = desc
    _say("rank-deficient head check")
    out["rank_deficient_head"] = rank_deficient_check(
        loss_fn, p, s, {k: v[:16] for k, v in batch.items()})
    kw = dict(top_k=top_k, tol=tol, max_steps=max_steps, trace_probes=trace_probes,
              block_size=block_size, slq_probes_n=slq_probes_n, slq_steps=slq_steps,
              rounds=rounds, seed=seed, fixed_depth=fixed_depth, slq_vmap=slq_vmap)
    if accuracy_mask:
      mask = accuracy_mask.split(",")
      op = hessian.HessianOperator(loss_fn, p, s, batch, mask=mask)
      t = time.perf_counter()
      _say(f"dense Hessian of {mask} ({op.dim} parameters)")
      ref = dense_reference(op)
      acc = {"mask": mask, "reuse_primal": op.reuse_primal,
             "dense_s": time.perf_counter() - t}
      acc.update(compare(op, reference=ref, count_hvps=True, **kw))
      out["accuracy"] = acc
    if full:
      op = hessian.HessianOperator(loss_fn, p, s, batch)
      res = {"mask": None, "reuse_primal": op.reuse_primal}
      res.update(compare(op, **kw))
      out["full"] = res
  out["load_average_end"] = os.getloadavg()
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as fh:
    json.dump(out, fh, indent=2)
  return out


def print_table(o: dict) -> None:
  if not o["measured"]:
    print(f"matfree not measured: {o['reason']}")
    return
  print(f"{o['data']}; matfree {o['matfree_version']}, jax {o['jax_version']}, "
        f"{o['backend']}; load average {o['load_average_start']} -> {o['load_average_end']}")
  b = o["breakdown"]
  print(f"breakdown ({b['operator']}, depth {b['depth']}, {b['seeds']} seeds): top-{b['k']} "
        f"max rel error ours {b['ours_top_k_max_rel_error']:.1e}, matfree "
        f"{b['matfree_top_k_max_rel_error']:.2f} (wrong for {b['matfree_seeds_wrong']} seeds); "
        f"largest SLQ node ours {b['ours_slq_max_node']:.4g}, matfree "
        f"{b['matfree_slq_max_node']:.4g} (exact {b['exact_max']:g})")
  h = o["rank_deficient_head"]
  print(f"rank-deficient head ({h['mask']}, {h['dim']} parameters, {h['images']} images, "
        f"rank {h['rank']}), top-{h['k']}: ours ({h['ours_steps']} steps) max rel error "
        f"{max(h['ours_max_rel_error']):.1e}, forced to depth {h['depth']} "
        f"{max(h['ours_full_depth_max_rel_error']):.1e}; matfree at depth {h['depth']} "
        f"{max(h['matfree_max_rel_error']):.3g} (top {h['matfree_top']} against "
        f"{h['dense_top']:.4g})")
  for name in ("accuracy", "full"):
    if name not in o:
      continue
    r = o[name]
    print(f"\n== {name}: {r['dim']} parameters (mask {r['mask']}), {r['dtype']}")
    t = r["top_k"]
    err = lambda d, key="max_rel_error": (f", err vs dense {d[key]:.1e}" if key in d else "")
    print(f"top-{t['k']}: ours {t['ours']['s']:.3f} s ({t['ours']['hvps']} HVPs, first "
          f"{t['ours']['first_s']:.2f} s{err(t['ours'])}); matfree same depth "
          f"{t['matfree']['s']:.3f} s (first {t['matfree']['first_s']:.2f} s"
          f"{err(t['matfree'])}, vs ours {t['matfree_vs_ours_max_rel']:.1e}); "
          f"ours/matfree {t['ratio_ours_over_matfree']:.2f}x")
    if "matfree_fixed_depth" in t:
      f = t["matfree_fixed_depth"]
      print(f"       matfree depth {f['depth']}: {f['s']:.3f} s (first {f['first_s']:.2f} s"
            f"{err(f)}); ours/matfree {t['ratio_ours_over_matfree_fixed_depth']:.2f}x")
    tr = o[name]["trace"]
    ex = f", exact {tr['exact']:.6g}" if "exact" in tr else ""
    print(f"trace ({tr['num_probes']} probes): ours {tr['ours']['s']:.3f} s "
          f"({tr['ours']['trace']:.6g} +- {tr['ours']['std_error']:.3g}); matfree "
          f"{tr['matfree']['s']:.3f} s ({tr['matfree']['trace']:.6g}){ex}; rel diff "
          f"{tr['matfree_vs_ours_rel']:.1e}; ours/matfree {tr['ratio_ours_over_matfree']:.2f}x")
    h = r["hvp_in_loop"]
    print(f"one HVP: {h['python_loop']['ms']:.1f} ms from Python (ours), "
          f"{h['fori_loop']['ms']:.1f} ms in a fori_loop (matfree's) "
          f"= {h['fori_over_python']:.2f}x")
    d = o[name]["density"]
    lv = lambda x: f", L1 vs dense {x['l1_vs_dense']:.3f}" if "l1_vs_dense" in x else ""
    print(f"density ({d['num_probes']} x {d['steps']}): ours {d['ours']['s']:.2f} s"
          f"{lv(d['ours'])}; matfree loop {d['matfree_loop']['s']:.2f} s (L1 vs ours "
          f"{d['matfree_loop']['l1_vs_ours']:.1e}{lv(d['matfree_loop'])}); ours/matfree "
          f"{d['ratio_ours_over_matfree_loop']:.2f}x")
    if "matfree_vmap" in d:
      print(f"       matfree vmapped over probes {d['matfree_vmap']['s']:.2f} s (L1 vs ours "
            f"{d['matfree_vmap']['l1_vs_ours']:.1e}); ours/matfree "
            f"{d['ratio_ours_over_matfree_vmap']:.2f}x")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = _FLAGS.values()
  o = benchmark(f["output"], num_samples=f["num_samples"], top_k=f["top_k"], tol=f["tol"],
                max_steps=f["max_steps"], trace_probes=f["trace_probes"],
                block_size=f["block_size"], slq_probes_n=f["slq_probes"],
                slq_steps=f["slq_steps"], rounds=f["rounds"], seed=f["seed"],
                train_steps=f["train_steps"], lr=f["lr"], accuracy_mask=f["accuracy_mask"],
                full=f["full"], fixed_depth=f["fixed_depth"], slq_vmap=f["slq_vmap"],
                data_dir=f["data_dir"])
  print_table(o)
  print(f"-> {f['output']}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(lambda argv: cli.run_or_exit(main, argv), flags_parser=cli.parse_flags)
