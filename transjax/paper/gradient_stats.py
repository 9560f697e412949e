"""Fig 7: pretrained weights stabilise the gradient.

At the start of fine-tuning (the shared pair's initial weights: pretrained source + new
head vs random initialisation), on a fixed sample set:
  (a, b) the distribution of the gradient entries of one layer;
  (c) |u_i^T W v_i| for the singular directions (u_i, v_i) of that layer's gradient,
      divided by ||W||_F so that weight scale does not decide the comparison;
  (d) ||dL/dx_l|| for the input x_l of every tapped layer (activation taps), output first.
The analysis functions are transjax.analysis.gradients'.

Computed claims: pretrained gradient entries are smaller; the pretrained weight projects
less on the top gradient directions; the gradient scale of the pretrained network varies
less across layers (max/min over layers).
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from transjax import params as params_lib
from transjax import plotting
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import gradients
from transjax.paper import common, pairs

FIGURES = ("gradient_histogram.png", "gradient_projection.png", "gradient_scale.png")
ELEMENTS = ("Fig 7",)


def _plots(stats: dict[str, dict[str, Any]], layer: str, workdir: str) -> None:
  plotting.gradient_histogram(
      os.path.join(workdir, FIGURES[0]),
      {init: s["histogram"] for init, s in stats.items()}, title=f"Gradient of {layer}")
  plotting.singular_projection(
      os.path.join(workdir, FIGURES[1]),
      {init: s["projection_normalised"] for init, s in stats.items()},
      title=f"Projection of weight on gradient directions ({layer})",
      ylabel="|u_i' W v_i| / ||W||_F")
  plotting.layer_gradient_scale(
      os.path.join(workdir, FIGURES[2]), {init: s["scale"] for init, s in stats.items()},
      title="Gradient scale through back-propagation (output -> input)")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  dirs = pairs.pair_runs(config)
  stats = {}
  for init, d in dirs.items():
    r = runs_lib.load_run(d, "init")
    batch = r.batch("train", config.num_samples, seed=0)
    s = gradients.gradient_stats(r.loss_fn, r.params, r.state, batch, config.layer,
                                 bins=config.bins)
    path = gradients.kernel_path(r.params, config.layer)
    w_norm = float(np.linalg.norm(np.asarray(dict(params_lib.named_leaves(r.params))[path])))
    proj = np.asarray(s["svd"]["projection"]) / max(w_norm, 1e-12)
    norms = np.asarray(s["scale"]["norms"], np.float64)
    stats[init] = {
        "loss": s["loss"], "histogram": s["histogram"],
        "mean_abs_grad": s["histogram"]["mean_abs"], "grad_std": s["histogram"]["std"],
        "singular_values": s["svd"]["singular_values"],
        "projection_normalised": proj.tolist(),
        "top_projection": float(np.mean(proj[:config.top_directions])),
        "scale": s["scale"],
        "scale_spread": float(norms.max() / max(norms.min(), 1e-30)),
        "scale_mean": float(norms.mean())}
  _plots(stats, config.layer, workdir)
  rows = ["| init | mean abs grad | top-{} projection / ‖W‖ | grad scale max/min over layers "
          "| per-layer ‖dL/dx‖ (output→input) |".format(config.top_directions),
          "|---|---|---|---|---|"]
  for init, s in stats.items():
    rows.append(f"| {init} | {s['mean_abs_grad']:.4g} | {s['top_projection']:.4g} | "
                f"{s['scale_spread']:.3g} | "
                + ", ".join(f"{n:.3g}" for n in s["scale"]["norms"]) + " |")
  rows += ["", f"layer {config.layer}; {config.num_samples} samples; at initialisation."]
  results = {"elements": list(ELEMENTS), "data": pairs.data_notes(dirs),
             "summary": "\n".join(rows), "figures": list(FIGURES), "preset": config.preset, "model": pairs.model_of(config),
             "layer": config.layer, "stats": stats, "run_dirs": dirs}
  return common.write_results(workdir, results, claims(results))


def _growth_check(stats: dict[str, Any]) -> common.Check:
  """Random init's ||dL/dx|| grows as it is back-propagated (norms are listed output first)."""
  norms = np.asarray((stats.get("scale") or {}).get("norms") or [], np.float64)
  name = "random-init gradient grows through back-propagation (input end above output end)"
  if len(norms) < 2 or not np.all(np.isfinite(norms)):
    return common.Check(name, False, "fewer than 2 finite per-layer gradient norms stored")
  return common.Check(name, norms[-1] > norms[0],
                      f"||dL/dx|| {norms[0]:.4g} at the output end, {norms[-1]:.4g} at the "
                      f"input end ({common.SINGLE_RUN})")


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 7 from one batch at the pair's initial weights (one measurement each: values decide)."""
  p, r = results["stats"]["pretrained"], results["stats"]["random"]
  why = "; ".join(x for x in (common.stand_in_note(results.get("data", [])),
                              common.scale_note(results, "{model} instead of ResNet-50 on "
                                                "CUB-200")) if x)
  layer = results["layer"]
  return [
      common.Claim(
          element="Fig 7",
          statement=f"Pretrained weights give smaller gradients ({layer}, Fig 7a-b) and "
                    "project less on the gradient's top singular directions (Fig 7c).",
          paper="gradient magnitudes of the pretrained network are smaller; large singular "
                "directions of the gradient are shrunk in pretrained weights",
          ours=(f"mean |grad| {p['mean_abs_grad']:.3g} vs {r['mean_abs_grad']:.3g}; top "
                f"projection / ||W|| {p['top_projection']:.3g} vs {r['top_projection']:.3g} "
                "(pretrained vs random)"),
          checks=[
              common.less(f"gradient entries of {layer} smaller when pretrained",
                          p["mean_abs_grad"], r["mean_abs_grad"], digits=4,
                          what="mean |grad| pretrained vs random"),
              common.less("weight projects less on the gradient's top singular directions",
                          p["top_projection"], r["top_projection"], digits=4,
                          what="top projection / ||W|| pretrained vs random")],
          why=why),
      common.Claim(
          element="Fig 7",
          statement="The gradient scale of pretrained networks stays stable across layers in "
                    "back-propagation, while random init's grows (Fig 7d).",
          paper="random-init gradient grows fast with layer number; pretrained remains stable",
          ours=(f"max/min of ||dL/dx|| over layers {p['scale_spread']:.3g} vs "
                f"{r['scale_spread']:.3g}; mean {p['scale_mean']:.3g} vs {r['scale_mean']:.3g} "
                "(pretrained vs random)"),
          checks=[
              common.less("pretrained gradient scale varies less across layers",
                          p["scale_spread"], r["scale_spread"], digits=3,
                          what="max/min of ||dL/dx|| over layers pretrained vs random"),
              _growth_check(r)],
          why=why),
  ]


def validate(config: ml_collections.ConfigDict) -> None:
  pairs.validate(config)
  if config.num_samples < 1 or config.top_directions < 1:
    raise ValueError("paper_gradient_stats: num_samples >= 1, top_directions >= 1.")
