r"""Benchmark of the analysis instruments, each comparison measured in the same run.

    python -m experiments.benchmark_analysis --output=/tmp/bench_analysis.json

1. 2-D LeNet landscape on 256 samples (51 x 51): chunked vectorised evaluation (vmap, the
   default, and the memory-lean lax.map variant) against a sequential loop of jitted
   one-point calls (the reference loss-landscape tool's way). Goal: >= 3x.
2. Top-20 Hessian eigenvalues of LeNet to the same tolerance: Lanczos against power
   iteration with deflation (HVP count, wall time). Goal: >= 5x fewer HVPs.
3. Cost of one HVP over the cost of one gradient. Goal: <= 3.
Data: MNIST from $TRANSJAX_DATA_DIR or ../shared/data (beside the repository) when present, else synthetic
(named in the output). The model is a randomly initialised LeNet: the costs do not depend
on the weights. On CPU the vmap path runs each grid point's later convolutions as a loop
(transjax.models.conv), so its gain there comes from the first layer, whose input all
points share; the later layers already run at full speed one point at a time.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from transjax import functional
from transjax.analysis import hessian, landscape, subset
from transjax.models import build_model

_FLAGS = {}


def _define_flags():
  _FLAGS.update(
      output=flags.DEFINE_string("output", "benchmark_analysis.json", "Where to write JSON."),
      resolution=flags.DEFINE_integer("resolution", 51, "Landscape grid side."),
      num_samples=flags.DEFINE_integer("num_samples", 256, "Fixed sample set size."),
      top_k=flags.DEFINE_integer("top_k", 20, "Number of Hessian eigenvalues."),
      tol=flags.DEFINE_float("tol", 1e-3, "Tolerance for both eigen-solvers."),
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
      ds = data.load("mnist", "train", data_dir=d)
      images = np.asarray(ds.images[:n], np.float32)
      if ds.images.dtype == np.uint8:
        images = images / 255.0
      return ({"image": jnp.asarray(images), "label": jnp.asarray(ds.labels[:n])},
              ds.provenance.describe(ds.name))
    except Exception as e:  # pylint: disable=broad-except
      logging.info("MNIST not loaded from %s: %s", d, e)
  rng = np.random.default_rng(0)
  return ({"image": jnp.asarray(rng.normal(size=(n, 28, 28, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, n))}, "synthetic Gaussian images (stand-in)")


def _timed(fn, *args):
  jax.block_until_ready(fn(*args))  # compile
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t


def benchmark(output: str, resolution: int, num_samples: int, top_k: int, tol: float,
              data_dir: str | None) -> dict:
  batch, data_desc = load_batch(num_samples, data_dir)
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  loss_fn = functional.make_loss_fn(g)
  out = {"data": data_desc, "backend": jax.default_backend(), "devices": jax.device_count(),
         "num_samples": num_samples}

  # 1. Landscape.
  dirs = landscape.random_directions(jax.random.key(0), p, 2)
  axis = landscape.paper_axis(resolution, 0.01)
  land = {"grid": f"{resolution}x{resolution}"}
  t = time.perf_counter()
  seq = landscape.sequential_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  land["sequential_s"] = time.perf_counter() - t
  for mode in ("vmap", "map"):
    t = time.perf_counter()
    res = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], vectorize=mode)
    land[f"{mode}_s"] = time.perf_counter() - t
    land[f"{mode}_chunk"] = res.plan.chunk_size
    land[f"{mode}_max_abs_diff"] = float(np.nanmax(np.abs(res.losses - seq)))
    land[f"{mode}_speedup"] = land["sequential_s"] / land[f"{mode}_s"]
  out["landscape"] = land

  # 2. Eigenvalues.
  eig = {"k": top_k, "tol": tol}
  op = hessian.HessianOperator(loss_fn, p, s, batch)
  op.matvec(jnp.zeros(op.dim))  # compile outside the timings
  lz = hessian.lanczos_top_k(op, top_k, tol=tol, max_steps=max(8 * top_k + 40, 200))
  pw = hessian.power_iteration_top_k(op, top_k, tol=tol, max_iters=100)
  eig.update(lanczos_hvps=lz.hvp_count, lanczos_s=lz.seconds, lanczos_converged=lz.converged,
             power_hvps=pw.hvp_count, power_s=pw.seconds, power_converged=pw.converged,
             hvp_ratio=pw.hvp_count / lz.hvp_count,
             max_rel_diff_top5=float(np.max(np.abs(lz.eigenvalues[:5] - pw.eigenvalues[:5])
                                            / np.abs(lz.eigenvalues[:5]))),
             lanczos_top5=lz.eigenvalues[:5].tolist(), power_top5=pw.eigenvalues[:5].tolist())
  out["eigenvalues"] = eig

  # 3. HVP over gradient.
  sub = subset.partition(p)
  f = subset.restricted_loss(loss_fn, p, s, batch)
  grad = jax.jit(jax.grad(f))
  hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])
  tg = min(_timed(grad, sub) for _ in range(3))
  th = min(_timed(hvp, sub, sub) for _ in range(3))
  out["hvp_vs_grad"] = {"grad_s": tg, "hvp_s": th, "ratio": th / tg}

  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as fh:
    json.dump(out, fh, indent=2)
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  o = benchmark(_FLAGS["output"].value, _FLAGS["resolution"].value, _FLAGS["num_samples"].value,
                _FLAGS["top_k"].value, _FLAGS["tol"].value, _FLAGS["data_dir"].value)
  l, e, h = o["landscape"], o["eigenvalues"], o["hvp_vs_grad"]
  print(f"data: {o['data']}; backend {o['backend']} x{o['devices']}; {o['num_samples']} samples")
  print(f"{'comparison':44s} {'result':>34s}  goal")
  print(f"{'landscape ' + l['grid'] + ': sequential':44s} {l['sequential_s']:33.1f}s")
  for m in ("vmap", "map"):
    print(f"{'  chunked ' + m + ' (chunk ' + str(l[m + '_chunk']) + ')':44s} "
          f"{l[m + '_s']:10.1f}s = {l[m + '_speedup']:5.2f}x faster"
          f"{'':10s}  >= 3x")
  print(f"{'top-' + str(e['k']) + ' eigenvalues tol ' + str(e['tol']) + ': Lanczos':44s} "
        f"{e['lanczos_hvps']:6d} HVPs {e['lanczos_s']:8.1f}s")
  print(f"{'  power iteration with deflation':44s} {e['power_hvps']:6d} HVPs {e['power_s']:8.1f}s"
        f"  ({e['hvp_ratio']:.1f}x more HVPs; goal >= 5x)")
  print(f"{'one HVP / one gradient':44s} {h['ratio']:33.2f}  <= 3")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
