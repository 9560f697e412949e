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
from transjax.paper import bn_modes, common, pairs

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


def _measure(r, batch, config, mode: str) -> dict[str, Any]:
  s = gradients.gradient_stats(r.loss_fn, r.params, r.state, batch, config.layer,
                               bins=config.bins, bn_mode=mode)
  path = gradients.kernel_path(r.params, config.layer)
  w_norm = float(np.linalg.norm(np.asarray(dict(params_lib.named_leaves(r.params))[path])))
  proj = np.asarray(s["svd"]["projection"]) / max(w_norm, 1e-12)
  norms = np.asarray(s["scale"]["norms"], np.float64)
  return {
      "loss": s["loss"], "histogram": s["histogram"],
      "mean_abs_grad": s["histogram"]["mean_abs"], "grad_std": s["histogram"]["std"],
      "singular_values": s["svd"]["singular_values"],
      "projection_normalised": proj.tolist(),
      "top_projection": float(np.mean(proj[:config.top_directions])),
      "scale": s["scale"],
      "scale_spread": float(norms.max() / max(norms.min(), 1e-30)),
      "scale_mean": float(norms.mean())}


SCALARS = ("loss", "mean_abs_grad", "grad_std", "top_projection", "scale_spread", "scale_mean")


def _mode_results(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
  """One mode's numbers: the first seed's full statistics (figures) with each scalar the
  mean over seeds, and the per-seed scalars for the claims."""
  stats = {init: {**ms[0], **{k: float(np.mean([m[k] for m in ms])) for k in SCALARS}}
           for init, ms in per_seed.items()}
  by_seed = {init: {k: [m[k] for m in ms] for k in SCALARS} for init, ms in per_seed.items()}
  return {"stats": stats, "stats_by_seed": by_seed}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  seeds = pairs.seeds_of(config)
  measured: dict[str, dict[str, list]] = {}
  run_dirs: dict[str, list[str]] = {}
  modes: list[str] = []
  for seed in seeds:
    for init, d in pairs.pair_runs(config, seed=seed).items():
      r = runs_lib.load_run(d, "init")
      batch = r.batch("train", config.num_samples, seed=0)
      modes = bn_modes.modes(config, r.state)
      for mode in modes:
        measured.setdefault(mode, {}).setdefault(init, []).append(
            _measure(r, batch, config, mode))
      run_dirs.setdefault(init, []).append(d)
  primary = modes[0]
  by_mode = {mode: _mode_results(measured[mode]) for mode in modes}
  stats = by_mode[primary]["stats"]
  _plots(stats, config.layer, workdir)
  rows = ["| BatchNorm | init | mean abs grad | top-{} projection / ‖W‖ | grad scale max/min "
          "over layers | per-layer ‖dL/dx‖ (output→input, seed {}) |".format(
              config.top_directions, seeds[0]),
          "|---|---|---|---|---|---|"]
  for mode in modes:
    for init, s in by_mode[mode]["stats"].items():
      b = by_mode[mode]["stats_by_seed"][init]
      pm = lambda k: (f"{np.mean(b[k]):.4g}" if len(b[k]) == 1
                      else f"{np.mean(b[k]):.4g}±{np.std(b[k]):.2g}")
      rows.append(f"| {mode} | {init} | {pm('mean_abs_grad')} | {pm('top_projection')} | "
                  f"{pm('scale_spread')} | "
                  + ", ".join(f"{n:.3g}" for n in s["scale"]["norms"]) + " |")
  rows += ["", f"layer {config.layer}; {config.num_samples} samples; at initialisation; seeds "
           f"{list(seeds)} (± over seeds). BatchNorm modes: "
           + "; ".join(f"{m}: {bn_modes.describe(m)}" for m in modes) + "."]
  results = {"elements": list(ELEMENTS),
             "data": pairs.data_notes({i: ds[0] for i, ds in run_dirs.items()}),
             "summary": "\n".join(rows), "figures": list(FIGURES), "preset": config.preset,
             "model": pairs.model_of(config), "layer": config.layer, "seeds": list(seeds),
             "run_dirs": run_dirs}
  results = bn_modes.pack(results, by_mode, primary)
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
  """Fig 7, in each measured BatchNorm mode (`bn_modes.claims_in_modes`)."""
  return bn_modes.claims_in_modes(results, _claims)


def _claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 7 at the pair's initial weights: over seeds where there are several (Welch), the
  values alone for one."""
  p, r = results["stats"]["pretrained"], results["stats"]["random"]
  by_seed = results.get("stats_by_seed") or {
      i: {k: [v] for k, v in results["stats"][i].items() if k in SCALARS} for i in results["stats"]}
  ps, rs = by_seed["pretrained"], by_seed["random"]
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
                          ps["mean_abs_grad"], rs["mean_abs_grad"], digits=4,
                          what="mean |grad| pretrained vs random"),
              common.less("weight projects less on the gradient's top singular directions",
                          ps["top_projection"], rs["top_projection"], digits=4,
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
                          ps["scale_spread"], rs["scale_spread"], digits=3,
                          what="max/min of ||dL/dx|| over layers pretrained vs random"),
              _growth_check(r)],
          why=why),
  ]


def validate(config: ml_collections.ConfigDict) -> None:
  pairs.validate(config)
  bn_modes.validate(config)
  if config.num_samples < 1 or config.top_directions < 1:
    raise ValueError("paper_gradient_stats: num_samples >= 1, top_directions >= 1.")
