"""Fig 7: pretrained weights stabilise the gradient.

At the start of fine-tuning (the shared pair's initial weights: pretrained source + new
head vs random initialisation), on a fixed sample set:
  (a, b) the distribution of the gradient entries of one layer;
  (c) |u_i^T W v_i| for the singular directions (u_i, v_i) of that layer's gradient,
      divided by ||W||_F so that weight scale does not decide the comparison;
  (d) ||dL/dx_l|| for the input x_l of every tapped layer (activation taps), output first.
The analysis functions are transjax.analysis.gradients'.

Computed claims, over the pair's seeds, each number the mean over `num_batches` sample
batches and (a-c) over `layers` (imagenet: every projection conv): pretrained gradient
entries are smaller relative to the weights (mean |grad| / mean |W|); the pretrained weight
projects less on the top gradient directions; the gradient scale of the pretrained network
changes less from block to block (mean |log10| of the per-block growth of ||dL/dx||, the
input pixels' tap left out: its gradient is set by the first conv's fan-in).
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
from transjax.analysis import batchnorm, gradients
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


def _input_free(norms: np.ndarray) -> np.ndarray:
  """Per-layer ||dL/dx|| (output first) without the last entry, the network's input
  pixels: their gradient is set by the first conv's fan-in, not by back-propagation."""
  return norms[:-1] if len(norms) > 2 else norms


def _one_batch(r, batch, config, layers: list[str], mode: str) -> dict[str, Any]:
  loss_fn, state = batchnorm.prepare(r.loss_fn, r.params, r.state, batch, mode)
  loss, grads = gradients.loss_gradient(loss_fn, r.params, state, batch)
  scale = gradients.layer_gradient_scale(loss_fn, r.params, state, batch)
  weights = dict(params_lib.named_leaves(r.params))
  per_layer = {}
  for layer in layers:
    path = gradients.kernel_path(r.params, layer)
    g, w = np.asarray(grads[path], np.float64), np.asarray(weights[path], np.float64)
    svd = gradients.gradient_svd_projection(g, w)
    proj = np.asarray(svd["projection"]) / max(float(np.linalg.norm(w)), 1e-12)
    per_layer[layer] = {"mean_abs_grad": float(np.mean(np.abs(g))),
                        "relative_grad": float(np.mean(np.abs(g)) / max(np.mean(np.abs(w)), 1e-30)),
                        "top_projection": float(np.mean(proj[:config.top_directions])),
                        "projection_normalised": proj.tolist(),
                        "singular_values": svd["singular_values"]}
  norms = np.asarray(scale["norms"], np.float64)
  inner = _input_free(norms)
  growth = np.log10(inner[1:] / np.maximum(inner[:-1], 1e-30)) if len(inner) > 1 else np.zeros(1)
  return {"loss": float(loss), "per_layer": per_layer, "scale": scale,
          "histogram": gradients.gradient_histogram(grads, gradients.kernel_path(
              r.params, config.layer), config.bins),
          "scale_spread": float(norms.max() / max(norms.min(), 1e-30)),
          "scale_growth": float(np.mean(np.abs(growth))),
          "scale_mean": float(norms.mean())}


def _measure(r, batches, config, mode: str) -> dict[str, Any]:
  """Fig 7's numbers of one network in one BatchNorm mode: each scalar the mean over the
  batches (and, for the per-layer ones, over `config.layers`); the figures' histogram,
  projection and per-layer scale from the first batch and `config.layer`."""
  layers = list(config.get("layers") or ()) or [config.layer]
  measured = layers + [config.layer] * (config.layer not in layers)   # the figure's too
  per_batch = [_one_batch(r, b, config, measured, mode) for b in batches]
  first = per_batch[0]
  mean = lambda key: float(np.mean([m[key] for m in per_batch]))
  over_layers = lambda key: float(np.mean([m["per_layer"][l][key] for m in per_batch
                                           for l in layers]))
  figure_layer = first["per_layer"][config.layer]
  return {
      "loss": mean("loss"), "histogram": first["histogram"],
      "mean_abs_grad": over_layers("mean_abs_grad"), "grad_std": first["histogram"]["std"],
      "relative_grad": over_layers("relative_grad"),
      "singular_values": figure_layer["singular_values"],
      "projection_normalised": figure_layer["projection_normalised"],
      "top_projection": over_layers("top_projection"),
      "per_layer": {l: {k: float(np.mean([m["per_layer"][l][k] for m in per_batch]))
                        for k in ("mean_abs_grad", "relative_grad", "top_projection")}
                    for l in layers},
      "scale": first["scale"], "scale_spread": mean("scale_spread"),
      "scale_growth": mean("scale_growth"), "scale_mean": mean("scale_mean")}


SCALARS = ("loss", "mean_abs_grad", "relative_grad", "grad_std", "top_projection",
           "scale_spread", "scale_growth", "scale_mean")


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
      batches = [r.batch("train", config.num_samples, seed=b)
                 for b in range(int(config.get("num_batches", 1)))]
      modes = bn_modes.modes(config, r.state)
      for mode in modes:
        measured.setdefault(mode, {}).setdefault(init, []).append(
            _measure(r, batches, config, mode))
      run_dirs.setdefault(init, []).append(d)
  primary = modes[0]
  by_mode = {mode: _mode_results(measured[mode]) for mode in modes}
  stats = by_mode[primary]["stats"]
  _plots(stats, config.layer, workdir)
  rows = ["| BatchNorm | init | mean abs grad | mean abs grad / mean abs weight | top-{} "
          "projection / ‖W‖ | per-block growth of ‖dL/dx‖ (mean abs log10) | grad scale "
          "max/min over layers | per-layer ‖dL/dx‖ (output→input, seed {}) |".format(
              config.top_directions, seeds[0]),
          "|---|---|---|---|---|---|---|---|"]
  for mode in modes:
    for init, s in by_mode[mode]["stats"].items():
      b = by_mode[mode]["stats_by_seed"][init]
      pm = lambda k: common.fmt_seeds(b[k])
      rows.append(f"| {mode} | {init} | {pm('mean_abs_grad')} | {pm('relative_grad')} | "
                  f"{pm('top_projection')} | {pm('scale_growth')} | {pm('scale_spread')} | "
                  + ", ".join(f"{n:.3g}" for n in s["scale"]["norms"]) + " |")
  layers = list(config.get("layers") or ()) or [config.layer]
  rows += ["", f"gradient and projection: mean over {len(layers)} layer(s) ({', '.join(layers)}) "
           f"and {int(config.get('num_batches', 1))} batch(es) of {config.num_samples} samples; "
           f"histogram and projection figure: {config.layer}; per-block growth leaves out the "
           f"input pixels' tap; at initialisation; seeds {list(seeds)} (± over seeds). "
           + bn_modes.note(modes, batchnorm.has_statistics(r.state))]
  results = {"elements": list(ELEMENTS),
             "data": pairs.data_notes({i: ds[0] for i, ds in run_dirs.items()}),
             "summary": "\n".join(rows), "figures": list(FIGURES), "preset": config.preset,
             "model": pairs.model_of(config), "layer": config.layer, "seeds": list(seeds),
             "run_dirs": run_dirs}
  results = bn_modes.pack(results, by_mode, primary)
  return common.write_results(workdir, results, claims(results))


def _growth_check(stats: dict[str, Any]) -> common.Check:
  """Random init's ||dL/dx|| grows as it is back-propagated (norms are listed output first;
  results with the per-block growth leave out the input pixels' tap)."""
  norms = np.asarray((stats.get("scale") or {}).get("norms") or [], np.float64)
  name = "random-init gradient grows through back-propagation (input end above output end)"
  if len(norms) < 2 or not np.all(np.isfinite(norms)):
    return common.Check(name, False, "fewer than 2 finite per-layer gradient norms stored")
  where = "input end"
  if "scale_growth" in stats:
    norms, where = _input_free(norms), "last layer before the input"
  return common.Check(name, norms[-1] > norms[0],
                      f"||dL/dx|| {norms[0]:.4g} at the output end, {norms[-1]:.4g} at the "
                      f"{where} (seed 0)")


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
  # Gradients relative to the weights' scale, and the per-block growth of ||dL/dx||;
  # results written before them: the raw |grad| and max/min over every tap.
  grad_key = "relative_grad" if "relative_grad" in p else "mean_abs_grad"
  grad_words = ("mean |grad| / mean |W|" if grad_key == "relative_grad" else "mean |grad|")
  scale_key = "scale_growth" if "scale_growth" in p else "scale_spread"
  scale_words = ("per-block growth of ||dL/dx|| (mean |log10|)" if scale_key == "scale_growth"
                 else "max/min of ||dL/dx|| over layers")
  return [
      common.Claim(
          element="Fig 7",
          statement=f"Pretrained weights give smaller gradients ({layer}, Fig 7a-b) and "
                    "project less on the gradient's top singular directions (Fig 7c).",
          paper="gradient magnitudes of the pretrained network are smaller; large singular "
                "directions of the gradient are shrunk in pretrained weights",
          ours=(f"{grad_words} {p[grad_key]:.3g} vs {r[grad_key]:.3g}; mean |grad| "
                f"{p['mean_abs_grad']:.3g} vs {r['mean_abs_grad']:.3g}; top projection / "
                f"||W|| {p['top_projection']:.3g} vs {r['top_projection']:.3g} "
                "(pretrained vs random)"),
          checks=[
              common.less(f"gradient entries ({grad_words}) smaller when pretrained",
                          ps[grad_key], rs[grad_key], digits=4,
                          what=f"{grad_words} pretrained vs random"),
              common.less("weight projects less on the gradient's top singular directions",
                          ps["top_projection"], rs["top_projection"], digits=4,
                          what="top projection / ||W|| pretrained vs random")],
          why=why),
      common.Claim(
          element="Fig 7",
          statement="The gradient scale of pretrained networks stays stable across layers in "
                    "back-propagation, while random init's grows (Fig 7d).",
          paper="random-init gradient grows fast with layer number; pretrained remains stable",
          ours=(f"{scale_words} {p[scale_key]:.3g} vs {r[scale_key]:.3g}; max/min over "
                f"layers {p['scale_spread']:.3g} vs {r['scale_spread']:.3g}; mean "
                f"{p['scale_mean']:.3g} vs {r['scale_mean']:.3g} (pretrained vs random)"),
          checks=[
              common.less("pretrained gradient scale varies less across layers",
                          ps[scale_key], rs[scale_key], digits=3,
                          what=f"{scale_words} pretrained vs random"),
              _growth_check(r)],
          why=why),
  ]


def validate(config: ml_collections.ConfigDict) -> None:
  pairs.validate(config)
  bn_modes.validate(config)
  if config.num_samples < 1 or config.top_directions < 1:
    raise ValueError("paper_gradient_stats: num_samples >= 1, top_directions >= 1.")
