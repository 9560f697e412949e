"""Fig 3 + Fig 10: the minima reached from pretrained weights are flatter.

The shared fine-tuning pair (gradient_variation.pair_runs: fine-tuned from the source vs
trained from scratch on the same target) is loaded at convergence; on a fixed sample set
(the paper: 256) we compute the top-k Hessian eigenvalues (Lanczos; the paper: top 20) and
2-D filter-normalised loss landscapes centred at the minimum, drawn with the same colour
scale and 0.05 contour spacing (Appendix A).

Computed claims: the pretrained minimum has a smaller top-1 and mean top-k eigenvalue; its
landscape is flatter (smaller mean loss increase over the grid).
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from transjax import plotting, weights
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import hessian, landscape
from transjax.paper import common, pairs

FIGURES = ("hessian_eigenvalues.png", "landscape_minima.png")
ELEMENTS = ("Fig 3", "Fig 10")


# --------------------------------------------------------------------------- experiment


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  dirs = pairs.pair_runs(config)
  eig, land, finals = {}, {}, {}
  for init, d in dirs.items():
    r = runs_lib.load_run(d, "final")
    batch = r.batch("train", config.num_samples, seed=0)
    op = hessian.HessianOperator(r.loss_fn, r.params, r.state, batch)
    logging.info("%s: top-%d Hessian eigenvalues of %d parameters by Lanczos", init,
                 config.top_k, op.dim)
    top = hessian.lanczos_top_k(op, k=config.top_k, tol=1e-4, seed=0,
                                max_steps=config.get("lanczos_max_steps", 0) or None,
                                log_every=10, memory_fix=_LANCZOS_FIX)
    eig[init] = [float(x) for x in top.eigenvalues]
    res = landscape.landscape_2d(r.loss_fn, r.params, r.state, batch, key=config.seed,
                                 resolution=config.resolution, eta=config.eta,
                                 resume_path=common.partial_path(workdir, f"landscape_{init}.npz"))
    land[init] = {"axes": [a.tolist() for a in res.axes], "losses": res.losses.tolist(),
                  "stats": landscape.grid_stats(res.losses, res.center_loss),
                  "seconds": res.seconds, "lanczos_converged": bool(top.converged)}
    finals[init] = results_lib.read_json(os.path.join(d, "results.json"))["final"]
  plotting.eigenvalue_bars(os.path.join(workdir, FIGURES[0]), eig,
                           title=f"Top-{config.top_k} Hessian eigenvalues at convergence")
  spacing = plotting.contour_grid(os.path.join(workdir, FIGURES[1]),
                                  [(f"{k} (minimum)", v) for k, v in land.items()],
                                  "Landscapes centred at the minima",
                                  cap=config.get("colour_cap", None))
  rows = ["| init | top-1 eigenvalue | mean top-k | mean loss increase over grid | "
          "max increase | test error |", "|---|---|---|---|---|---|"]
  for init in eig:
    s = land[init]["stats"]
    rows.append(f"| {init} | {eig[init][0]:.4g} | {np.mean(eig[init]):.4g} | "
                f"{s['mean_increase']:.4g} | {s['max_increase']:.4g} | "
                f"{100 * finals[init]['test_error']:.2f}% |")
  rows.append("")
  rows.append(f"top-{config.top_k} eigenvalues (Lanczos) on {config.num_samples} samples; "
              f"{config.resolution}x{config.resolution} grid, eta {config.eta}, contours every "
              f"{spacing:g}.")
  results = {"elements": list(ELEMENTS), "data": pairs.data_notes(dirs), "summary": "\n".join(rows),
             "figures": list(FIGURES), "preset": config.preset, "model": pairs.model_of(config),
             "eigenvalues": eig,
             "landscape": {k: {"stats": v["stats"], "seconds": v["seconds"]}
                           for k, v in land.items()},
             "final": finals, "run_dirs": dirs}
  results_lib.write_json(os.path.join(workdir, "landscapes.json"), land)
  return common.write_results(workdir, results, claims(results))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 3 / Fig 10 from one pretrained and one random run (single runs: values decide)."""
  e, s = results["eigenvalues"], results["landscape"]
  p, r = np.asarray(e["pretrained"], np.float64), np.asarray(e["random"], np.float64)
  why = "; ".join(x for x in (common.stand_in_note(results.get("data", [])),
                              common.scale_note(results, "{model} on a small target instead of "
                                                "ResNet-50 on Stanford Cars")) if x)
  ps, rs = s["pretrained"]["stats"], s["random"]["stats"]
  k = min(len(p), len(r))
  smaller = int(np.sum(p[:k] < r[:k]))
  return [
      common.Claim(
          element="Fig 3",
          statement="Pretrained networks reach minima with smaller top Hessian eigenvalues.",
          paper="top-20 eigenvalues of the pretrained ResNet-50 are all smaller than random init's",
          ours=(f"top-1 {p[0]:.4g} vs {r[0]:.4g}; mean top-{len(p)} {p.mean():.4g} vs "
                f"{r.mean():.4g} (pretrained vs random)"),
          checks=[
              common.less("largest Hessian eigenvalue smaller when pretrained", p[:1], r[:1],
                          digits=4, what="top-1 eigenvalue pretrained vs random"),
              common.Check(f"each of the top-{k} eigenvalues smaller when pretrained",
                           k > 0 and smaller == k,
                           f"the i-th pretrained eigenvalue is below the i-th random one for "
                           f"{smaller} of {k} (mean {p.mean():.4g} vs {r.mean():.4g}; "
                           f"{common.SINGLE_RUN})")],
          why=why),
      common.Claim(
          element="Fig 10",
          statement="Landscapes centred at the pretrained minimum are flatter.",
          paper="random init ends in sharper minima; pretrained stays in flat regions",
          ours=(f"mean loss increase over the grid {ps['mean_increase']:.4g} vs "
                f"{rs['mean_increase']:.4g}; max {ps['max_increase']:.4g} vs "
                f"{rs['max_increase']:.4g} (pretrained vs random)"),
          checks=[
              common.less("mean loss increase over the grid smaller when pretrained",
                          ps["mean_increase"], rs["mean_increase"], digits=4,
                          what="pretrained vs random"),
              common.less("largest loss increase over the grid smaller when pretrained",
                          ps["max_increase"], rs["max_increase"], digits=4,
                          what="pretrained vs random")],
          why=why),
  ]


_LANCZOS_FIX = ("Set --config.lanczos_max_steps (at least top_k) or a smaller "
                "--config.top_k, or run on a device with more memory.")


def validate(config: ml_collections.ConfigDict) -> None:
  """The config's values, and that the Lanczos basis fits in memory, before any training.

  The basis check counts the network's parameters from shapes with a one-class head (the
  target's class count is known only once its data is read), so it errs on the side of
  running; `hessian.lanczos_top_k` checks the exact size again before its first HVP.
  """
  pairs.validate(config)
  if config.top_k < 1 or config.resolution < 3 or not config.eta > 0 or config.num_samples < 1:
    raise ValueError("paper_minima: top_k >= 1, resolution >= 3, eta > 0, num_samples >= 1.")
  dim = weights.param_count(pairs.pair_training_configs(config)[0], num_classes=1)
  steps = hessian.lanczos_steps(config.top_k, dim, config.get("lanczos_max_steps", 0) or None)
  hessian.check_basis_fits(steps, dim, np.float32, what=f"paper_minima top-{config.top_k}",
                           fix=_LANCZOS_FIX)
