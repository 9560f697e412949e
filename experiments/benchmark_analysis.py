r"""Benchmark of the analysis instruments against the tools a researcher uses today.

    python -m experiments.benchmark_analysis --output=runs/benchmark_analysis.json

Every comparison is measured in the same run on the same LeNet-5 (61,706 parameters,
transjax's random initialisation copied into an identical PyTorch LeNet) and the first
256 MNIST test images. The peers need `pip install -e ".[bench]"`; without it they are
recorded as not measured.
1. 2-D filter-normalised landscape (51 x 51, biases not moved): transjax's chunked vmap
   (timed on a second grid, its compilation reused; the first grid's time is recorded too)
   against the PyTorch point loop `p.data = theta + a d1 + b d2` on the same directions
   (values must agree) and `loss_landscapes.random_plane` (its own directions; time
   only). Goal: >= 3x the point loop.
2. Top-20 Hessian eigenvalues: transjax Lanczos (tol 1e-3 on the relative Ritz
   residual) against PyHessian 0.1 `eigenvalues(top_n=20, maxIter=100, tol=1e-3)` and
   `scipy.sparse.linalg.eigsh(k=20, tol=1e-6)` on a PyTorch double-backward HVP. The top
   eigenvalues must agree to 1e-3 relative. Goal: faster than eigsh, >= 5x PyHessian.
3. One HVP, transjax against PyTorch (and against one gradient).
4. Per-layer spectrum (--layer): top-k of one layer with the activations below it
   computed once (`hessian.layer_top_k`) against PyHessian with requires_grad=False on
   the other parameters.
Data: MNIST from $TRANSJAX_DATA_DIR or ../shared/data (beside the repository) when present,
else synthetic (named in the output).
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from transjax import cli
from transjax import functional
from transjax.analysis import hessian, landscape, subset
from transjax.models import build_model

_FLAGS = {}


def _define_flags():
  _FLAGS.update(
      output=flags.DEFINE_string("output", "runs/benchmark_analysis.json", "Where to write JSON."),
      resolution=flags.DEFINE_integer("resolution", 51, "Landscape grid side."),
      num_samples=flags.DEFINE_integer("num_samples", 256, "Fixed sample set size."),
      top_k=flags.DEFINE_integer("top_k", 20, "Number of Hessian eigenvalues."),
      tol=flags.DEFINE_float("tol", 1e-3, "Tolerance of Lanczos and PyHessian."),
      eigsh_tol=flags.DEFINE_float("eigsh_tol", 1e-6, "Tolerance of the eigsh peer."),
      layer=flags.DEFINE_string("layer", "conv2", "Layer of the per-layer spectrum ('' skips)."),
      peers=flags.DEFINE_bool("peers", True, "Time the PyTorch peers (needs .[bench])."),
      power_iteration=flags.DEFINE_bool("power_iteration", False,
                                        "Also time transjax's own power iteration."),
      data_dir=flags.DEFINE_string("data_dir", None, "MNIST folder (default: "
                                   "$TRANSJAX_DATA_DIR, then ../shared/data beside the repository)."))


def load_batch(n: int, data_dir: str | None):
  """(batch, description): MNIST normalised to [0,1] when found, else synthetic noise."""
  for d in (data_dir, os.environ.get("TRANSJAX_DATA_DIR"),
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")):
    if not d:
      continue
    try:
      from transjax import data  # pylint: disable=import-outside-toplevel
      ds = data.load("mnist", "test", data_dir=d)
      images = np.asarray(ds.images[:n], np.float32)
      if ds.images.dtype == np.uint8:
        images = images / 255.0
      return ({"image": jnp.asarray(images), "label": jnp.asarray(ds.labels[:n])},
              ds.provenance.describe(ds.name))
    except Exception as e:  # pylint: disable=broad-except
      logging.info("MNIST not loaded from %s: %s", d, e)
  logging.warning("notice: no MNIST test file found (--data_dir, $TRANSJAX_DATA_DIR, "
                  "../shared/data); timing on synthetic Gaussian images instead, recorded as "
                  "such in the JSON.")
  rng = np.random.default_rng(0)
  return ({"image": jnp.asarray(rng.normal(size=(n, 28, 28, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, n))}, "synthetic Gaussian images (stand-in)")


def _timed(fn, *args):
  jax.block_until_ready(fn(*args))  # compile
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t


# Landscape values of the two float32 implementations of the same function differ by
# summation order only: ~1e-7 relative per op through 5 layers (measured max 5e-7 on
# losses ~2.3); 1e-4 relative is far above that and far below any real difference.
LANDSCAPE_RTOL = 1e-4
EIGEN_RTOL = 1e-3


def _ratio(ours_s, peer: dict) -> float | None:
  return peer["seconds"] / ours_s if peer.get("measured", True) and "seconds" in peer else None


def _krylov_steps(k: int, dim: int) -> int:
  """Lanczos's step cap here: the library's default (`hessian.lanczos_steps`, 8k + 40),
  at least 200, at most the dimension; for the table's k = 20 it is 200."""
  return min(dim, max(hessian.lanczos_steps(k, dim), 200))


def _max_rel(a, b, n) -> float:
  a, b = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
  return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def benchmark(output: str, resolution: int, num_samples: int, top_k: int, tol: float,
              data_dir: str | None, *, eigsh_tol: float = 1e-6, layer: str = "conv2",
              with_peers: bool = True, power_iteration: bool = False) -> dict:
  batch, data_desc = load_batch(num_samples, data_dir)
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  loss_fn = functional.make_loss_fn(g)
  size = int(np.shape(batch["image"])[1])
  out = {"data": data_desc, "backend": jax.default_backend(), "devices": jax.device_count(),
         "num_samples": num_samples, "load_average": os.getloadavg()}
  peers = None
  if with_peers:
    from experiments import peers as peers_mod  # pylint: disable=import-outside-toplevel
    peers = peers_mod if peers_mod.available() else None
    if peers is None:
      out["peers"] = peers_mod.not_measured("PyTorch, PyHessian, loss-landscapes")
  if peers is not None:
    torch_model = peers.lenet_from_transjax(p, size)
    tx, ty = peers.torch_batch(batch)
    out["peers"] = {"measured": True, "torch_threads": peers.pick_threads(torch_model, tx, ty)}
  skipped = {"measured": False, "reason": "peers off or not installed (pip install -e '.[bench]')"}

  # 1. Landscape.
  dirs = landscape.random_directions(jax.random.key(0), p, 2)
  axis = landscape.paper_axis(resolution, 0.01)
  n_points = resolution**2
  land = {"grid": f"{resolution}x{resolution}", "points": n_points}
  # The first grid includes compiling its chunk function; the timed one reuses it (as
  # every later grid of the model in a process does).
  first = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  res = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  land.update(transjax_s=res.seconds, transjax_points_per_s=res.points_per_second,
              transjax_first_grid_s=first.seconds, chunk=res.plan.chunk_size)
  if peers is not None:
    t = time.perf_counter()
    ref = peers.landscape_point_loop(torch_model, tx, ty, dirs, [axis, axis],
                                      torch_model.size)
    loop = {"measured": True, "seconds": time.perf_counter() - t}
    loop["points_per_s"] = n_points / loop["seconds"]
    diff = np.abs(res.losses - ref) / np.maximum(np.abs(ref), 1e-30)
    loop.update(max_rel_diff=float(np.nanmax(diff)), rtol=LANDSCAPE_RTOL,
                agree=bool(np.nanmax(diff) <= LANDSCAPE_RTOL))
    t = time.perf_counter()
    peers.loss_landscapes_random_plane(torch_model, tx, ty, resolution, 1.0)
    plane = {"measured": True, "seconds": time.perf_counter() - t}
    plane["points_per_s"] = n_points / plane["seconds"]
  else:
    loop, plane = dict(skipped), dict(skipped)
  land["torch_point_loop"], land["loss_landscapes_random_plane"] = loop, plane
  land["ratio_vs_point_loop"] = _ratio(res.seconds, loop)
  land["ratio_vs_point_loop_first_grid"] = _ratio(first.seconds, loop)
  land["ratio_vs_random_plane"] = _ratio(res.seconds, plane)
  out["landscape"] = land

  # 2. Eigenvalues.
  eig = {"k": top_k, "tol": tol, "eigsh_tol": eigsh_tol}
  op = hessian.HessianOperator(loss_fn, p, s, batch)
  steps = _krylov_steps(top_k, op.dim)
  t = time.perf_counter()
  hessian.lanczos_top_k(op, top_k, tol=1e30, max_steps=steps)  # compile
  eig["transjax_compile_s"] = time.perf_counter() - t
  lz = hessian.lanczos_top_k(op, top_k, tol=tol, max_steps=steps)
  eig.update(transjax_hvps=lz.hvp_count, transjax_s=lz.seconds, transjax_converged=lz.converged,
             transjax_eigenvalues=lz.eigenvalues.tolist())
  if power_iteration:
    pw = hessian.power_iteration_top_k(op, top_k, tol=tol, max_iters=100)
    eig["transjax_power_iteration"] = {"hvps": pw.hvp_count, "seconds": pw.seconds}
  if peers is not None:
    es = peers.eigsh_top_k(torch_model, tx, ty, top_k, eigsh_tol)
    ph = peers.pyhessian_top_k(torch_model, tx, ty, top_k, tol)
    for d in (es, ph):
      d["measured"] = True
      d["max_rel_diff_topk"] = _max_rel(lz.eigenvalues, d["eigenvalues"], top_k)
      d["max_rel_diff_top1"] = _max_rel(lz.eigenvalues, d["eigenvalues"], 1)
    es["agree"] = es["max_rel_diff_topk"] <= EIGEN_RTOL
    ph["agree_top1"] = ph["max_rel_diff_top1"] <= EIGEN_RTOL
  else:
    es, ph = dict(skipped), dict(skipped)
  eig["eigsh_torch"], eig["pyhessian"] = es, ph
  eig["ratio_vs_eigsh"] = _ratio(lz.seconds, es)
  eig["ratio_vs_pyhessian"] = _ratio(lz.seconds, ph)
  out["eigenvalues"] = eig

  # 3. One HVP (and one gradient).
  sub = subset.partition(p)
  # The batch is an argument: closed over, its images are constants that XLA folds
  # through conv1's Toeplitz rows at compile time (it warned of 1.25 s once).
  grad = jax.jit(lambda sub, b: jax.grad(subset.restricted_loss(loss_fn, p, s, b))(sub))
  tg = min(_timed(grad, sub, batch) for _ in range(5))
  v = jnp.ones((op.dim,), op.dtype)
  th = min(_timed(op.matvec, v) for _ in range(5))
  hv = {"grad_s": tg, "hvp_s": th, "hvp_over_grad": th / tg}
  if peers is not None:
    hv["torch"] = {"measured": True, "seconds": peers.torch_hvp_seconds(torch_model, tx, ty)}
  else:
    hv["torch"] = dict(skipped)
  hv["ratio_vs_torch"] = _ratio(th, hv["torch"])
  out["hvp"] = hv

  # 4. Per-layer spectrum.
  if layer:
    lay = {"layer": layer, "k": top_k, "tol": tol}
    t = time.perf_counter()
    lop = hessian.HessianOperator(loss_fn, p, s, batch, mask=layer, reuse_primal=True)
    steps = _krylov_steps(top_k, lop.dim)
    hessian.lanczos_top_k(lop, top_k, tol=1e30, max_steps=steps)
    lay["transjax_setup_and_compile_s"] = time.perf_counter() - t
    lr = hessian.lanczos_top_k(lop, top_k, tol=tol, max_steps=steps)
    lay.update(dim=lop.dim, transjax_s=lr.seconds, transjax_hvps=lr.hvp_count,
               transjax_eigenvalues=lr.eigenvalues.tolist())
    if peers is not None:
      lph = peers.pyhessian_top_k(torch_model, tx, ty, top_k, tol, only=[layer])
      lph.update(measured=True, max_rel_diff_top1=_max_rel(lr.eigenvalues, lph["eigenvalues"], 1))
    else:
      lph = dict(skipped)
    lay["pyhessian"] = lph
    lay["ratio_vs_pyhessian"] = _ratio(lr.seconds, lph)
    out["layer_spectrum"] = lay

  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as fh:
    json.dump(out, fh, indent=2)
  return out


def _fmt(x, spec=".2f") -> str:
  return "not measured" if x is None else format(x, spec) + "x"


def print_table(o: dict) -> None:
  print(f"data: {o['data']}; backend {o['backend']} x{o['devices']}; {o['num_samples']} "
        f"samples; load average {o['load_average']}")
  l, e, h = o["landscape"], o["eigenvalues"], o["hvp"]
  lp, rp = l["torch_point_loop"], l["loss_landscapes_random_plane"]
  print(f"{'workload':34s} {'peer':44s} {'transjax':24s} transjax/peer")
  print(f"{'landscape ' + l['grid']:34s} "
        f"{'torch point loop ' + (format(lp['points_per_s'], '.0f') + ' points/s' if lp['measured'] else 'not measured'):44s} "
        f"{format(l['transjax_points_per_s'], '.0f') + ' points/s':24s} {_fmt(l['ratio_vs_point_loop'])}  (goal >= 3x)")
  if rp["measured"]:
    print(f"{'':34s} {'loss_landscapes.random_plane ' + format(rp['points_per_s'], '.0f') + ' points/s':44s} {'':24s} {_fmt(l['ratio_vs_random_plane'])}")
  if lp["measured"]:
    print(f"{'':34s} first grid, with compilation: {l['transjax_first_grid_s']:.1f} s, "
          f"{_fmt(l['ratio_vs_point_loop_first_grid'])} the point loop")
    print(f"{'':34s} values agree: {lp['agree']} (max rel diff {lp['max_rel_diff']:.1e}, rtol {lp['rtol']:.0e})")
  ph, es = e["pyhessian"], e["eigsh_torch"]
  ours = f"{e['transjax_s']:.1f} s, {e['transjax_hvps']} HVPs"
  print(f"{'top-' + str(e['k']) + ' eigenvalues tol ' + str(e['tol']):34s} "
        f"{('PyHessian ' + format(ph['seconds'], '.1f') + ' s, ' + str(ph['hvp_count']) + ' HVPs') if ph['measured'] else 'PyHessian not measured':44s} "
        f"{ours:24s} {_fmt(e['ratio_vs_pyhessian'])}  (goal >= 5x)")
  print(f"{'':34s} {('eigsh ' + format(es['seconds'], '.1f') + ' s, ' + str(es['hvp_count']) + ' HVPs') if es['measured'] else 'eigsh not measured':44s} "
        f"{'':24s} {_fmt(e['ratio_vs_eigsh'])}  (goal > 1x)")
  if es["measured"]:
    print(f"{'':34s} eigsh top-{e['k']} agree to 1e-3: {es['agree']} "
          f"(max rel {es['max_rel_diff_topk']:.1e}); PyHessian top-1 rel diff {ph['max_rel_diff_top1']:.1e}")
  th = h["torch"]
  print(f"{'one HVP':34s} {('torch ' + format(1e3 * th['seconds'], '.1f') + ' ms') if th['measured'] else 'not measured':44s} "
        f"{format(1e3 * h['hvp_s'], '.1f') + ' ms':24s} {_fmt(h['ratio_vs_torch'])}  (HVP/grad {h['hvp_over_grad']:.2f})")
  if "layer_spectrum" in o:
    y = o["layer_spectrum"]
    lph = y["pyhessian"]
    print(f"{'top-' + str(y['k']) + ' of ' + y['layer'] + ' (' + str(y['dim']) + ' params)':34s} "
          f"{('PyHessian ' + format(lph['seconds'], '.1f') + ' s, ' + str(lph['hvp_count']) + ' HVPs') if lph['measured'] else 'PyHessian not measured':44s} "
          f"{format(y['transjax_s'], '.2f') + ' s, ' + str(y['transjax_hvps']) + ' HVPs':24s} {_fmt(y['ratio_vs_pyhessian'])}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  o = benchmark(_FLAGS["output"].value, _FLAGS["resolution"].value, _FLAGS["num_samples"].value,
                _FLAGS["top_k"].value, _FLAGS["tol"].value, _FLAGS["data_dir"].value,
                eigsh_tol=_FLAGS["eigsh_tol"].value, layer=_FLAGS["layer"].value,
                with_peers=_FLAGS["peers"].value,
                power_iteration=_FLAGS["power_iteration"].value)
  print_table(o)
  print(f"-> {_FLAGS['output'].value}")


if __name__ == "__main__":
  _define_flags()
  app.run(lambda argv: cli.run_or_exit(main, argv), flags_parser=cli.parse_flags)
