"""Fig 5 + Appendix B.4: landscapes at initialisation per layer, and faster convergence.

For each weight layer, a 2-D filter-normalised landscape restricted to that layer (the
others fixed) is centred at the *initial* weights of the shared pair's two runs: the
pretrained source (with its new head) and the random initialisation. All panels share one
colour scale with 0.05 contour spacing. The convergence curves are the runs' train-loss
records (metrics.jsonl).

Computed claims: at the lower layers the pretrained landscapes are smoother (smaller loss
range and roughness over the grid); fine-tuning reaches a train-loss threshold in fewer
steps than training from scratch.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from transjax import convergence
from transjax import params as params_lib
from transjax import plotting
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import batchnorm, landscape
from transjax.paper import bn_modes, common, pairs

FIGURES = ("landscapes_at_init.png", "convergence.png")
ELEMENTS = ("Fig 5", "Fig 12-13 (App. B.4)")


def steps_to_threshold(curve: list[tuple[int, float]], threshold: float) -> int | None:
  for step, loss in curve:
    if loss <= threshold:
      return int(step)
  return None


STATS = ("range", "roughness", "curvature", "bumpiness", "mean_increase", "max_increase")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  seeds = pairs.seeds_of(config)
  by_seed: dict[str, dict[str, dict[str, list]]] = {}   # mode -> layer -> init -> [stats]
  panels: dict[str, list] = {}
  curves: dict[str, list] = {}
  run_dirs: dict[str, list[str]] = {}
  layers: list[str] = []
  modes: list[str] = []
  for seed in seeds:
    for init, d in pairs.pair_runs(config, seed=seed).items():
      r = runs_lib.load_run(d, "init")
      batch = r.batch("train", config.num_samples, seed=0)
      layers = list(config.layers) or params_lib.weight_layer_names(r.params)
      modes = bn_modes.modes(config, r.state)
      for mode in modes:
        for layer in layers:
          res = landscape.landscape_2d(
              r.loss_fn, r.params, r.state, batch, key=config.seed,
              mask=landscape.layer_mask(r.params, layer), resolution=config.resolution,
              eta=config.eta, bn_mode=mode,
              resume_path=common.partial_path(
                  workdir, f"landscape_{init}_s{seed}_{mode}_{layer}.npz"))
          by_seed.setdefault(mode, {}).setdefault(layer, {}).setdefault(init, []).append(
              landscape.grid_stats(res.losses, res.center_loss))
          if seed == seeds[0]:
            panels.setdefault(mode, []).append(
                (f"{layer} ({init})", {"axes": res.axes, "losses": res.losses}))
      curves.setdefault(init, []).append(convergence.train_curve(d))
      run_dirs.setdefault(init, []).append(d)
  primary = modes[0]
  # Order the panels layer by layer: random | pretrained side by side.
  shown = sorted(panels[primary], key=lambda p: (layers.index(p[0].split(" (")[0]),
                                                 p[0].endswith("(pretrained)")))
  spacing = plotting.contour_grid(
      os.path.join(workdir, FIGURES[0]), shown,
      f"Per-layer landscapes centred at initialisation (BatchNorm: {primary}, seed {seeds[0]})",
      cap=config.get("colour_cap", None))
  threshold = float(config.loss_threshold)
  if threshold <= 0:
    threshold = 1.1 * max(c[-1][1] for per in curves.values() for c in per)
  plotting.step_curves(os.path.join(workdir, FIGURES[1]),
                       {init: tuple(zip(*per[0])) for init, per in curves.items()},
                       ylabel="training loss", xlabel="step", threshold=threshold, marker=None,
                       title=f"Convergence: fine-tuning vs from scratch (seed {seeds[0]})")
  # Runs trained to convergence stop at different steps: the mean loss is taken over the
  # steps every run has (a run that stopped early would otherwise be averaged over its
  # high-loss start only).
  horizon = min(c[-1][0] for per in curves.values() for c in per)
  conv = {init: {"steps_to_threshold": [steps_to_threshold(c, threshold) for c in per],
                 "mean_train_loss": [float(np.mean([v for s, v in c if s <= horizon]))
                                     for c in per],
                 "final_train_loss": [float(c[-1][1]) for c in per]}
          for init, per in curves.items()}
  convergence_summary = {
      init: {"steps_to_threshold": c["steps_to_threshold"][0],
             "steps_to_threshold_by_seed": c["steps_to_threshold"],
             "mean_train_loss": float(np.mean(c["mean_train_loss"])),
             "mean_train_loss_by_seed": c["mean_train_loss"],
             "final_train_loss": float(np.mean(c["final_train_loss"])),
             "mean_over_steps": int(horizon)}
      for init, c in conv.items()}
  by_mode = {mode: {"per_layer": {layer: {init: {k: float(np.mean([x[k] for x in xs]))
                                                 for k in STATS}
                                          for init, xs in per_init.items()}
                                  for layer, per_init in per_layer.items()},
                    "per_layer_by_seed": {layer: {init: {k: [x[k] for x in xs] for k in STATS}
                                                  for init, xs in per_init.items()}
                                          for layer, per_init in per_layer.items()}}
             for mode, per_layer in by_seed.items()}
  pm = common.fmt_seeds
  rows = ["| BatchNorm | layer | loss range (random) | loss range (pretrained) | bumpiness "
          "(random) | bumpiness (pretrained) | curvature (random) | curvature (pretrained) |",
          "|---|---|---|---|---|---|---|---|"]
  for mode in modes:
    b = by_mode[mode]["per_layer_by_seed"]
    for layer in layers:
      a, p = b[layer]["random"], b[layer]["pretrained"]
      rows.append(f"| {mode} | {layer} | {pm(a['range'])} | {pm(p['range'])} | "
                  f"{pm(a['bumpiness'])} | {pm(p['bumpiness'])} | {pm(a['curvature'])} | "
                  f"{pm(p['curvature'])} |")
  rows += ["", "| init | steps to train loss ≤ {:.3g} (per seed) | mean train loss (steps ≤ "
           "{}) |".format(threshold, horizon), "|---|---|---|"]
  for init, c in conv.items():
    rows.append(f"| {init} | {c['steps_to_threshold']} | {pm(c['mean_train_loss'])} |")
  rows.append("")
  rows.append(f"{config.resolution}x{config.resolution} grids, eta {config.eta}, "
              f"{config.num_samples} samples, contours every {spacing:g}; seeds {list(seeds)} "
              "(± over seeds). Bumpiness: RMS residual of a quadratic fit to the grid; "
              "curvature: the fit's u² + v² coefficients (loss per half grid width²). "
              + bn_modes.note(modes, batchnorm.has_statistics(r.state)))
  results = {"elements": list(ELEMENTS),
             "data": pairs.data_notes({i: ds[0] for i, ds in run_dirs.items()}),
             "summary": "\n".join(rows), "figures": list(FIGURES), "preset": config.preset,
             "model": pairs.model_of(config), "layers": layers,
             "lower_layers": layers[:config.lower_layers], "convergence": convergence_summary,
             "threshold": threshold, "curves": {i: per[0] for i, per in curves.items()},
             "seeds": list(seeds), "run_dirs": run_dirs}
  results = bn_modes.pack(results, by_mode, primary)
  return common.write_results(workdir, results, claims(results))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 5 and App. B.4, in each measured BatchNorm mode (`bn_modes.claims_in_modes`)."""
  return bn_modes.claims_in_modes(results, _claims)


def _claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 5 convergence and App. B.4 smoothness from the pair's runs: over seeds where
  there are several (Welch), the values alone for one."""
  lower = results["lower_layers"]
  pl = results["per_layer"]
  seeded = results.get("per_layer_by_seed") or {
      layer: {init: {k: [v] for k, v in st.items()} for init, st in per.items()}
      for layer, per in pl.items()}
  # "Smoother": bumps, not the bowl's curvature (the Laplacian roughness mixes the two);
  # results written before the quadratic fit use the roughness.
  smooth = "bumpiness" if all("bumpiness" in pl[l]["random"] for l in lower) else "roughness"
  checks, parts = [], []
  for layer in lower:
    p, r = pl[layer]["pretrained"], pl[layer]["random"]
    for stat in ("range", smooth):
      checks.append(common.less(f"{layer}: loss {stat} at initialisation smaller when pretrained",
                                seeded[layer]["pretrained"][stat], seeded[layer]["random"][stat],
                                digits=4, what="pretrained vs random"))
    parts.append(f"{layer}: range {p['range']:.3g} vs {r['range']:.3g}, {smooth} "
                 f"{p[smooth]:.3g} vs {r[smooth]:.3g}"
                 + (f", curvature {p['curvature']:.3g} vs {r['curvature']:.3g}"
                    if "curvature" in p else ""))
  # B.4: "the landscapes of randomly initialized networks worsen through the lower layers".
  # Compared as the lower layers against the others: `layers` need not be in network order.
  higher = [l for l in results.get("layers", []) if l in pl and l not in lower]
  if higher and lower:
    # Per seed: the mean over the layers of each group.
    rough = lambda ls: np.mean([seeded[l]["random"][smooth] for l in ls], axis=0)
    checks.append(common.greater(
        f"random-init landscape worsens towards the lower layers (mean {smooth} of "
        f"{', '.join(lower)} above {', '.join(higher)})", rough(lower), rough(higher),
        digits=4, what="lower vs higher layers, random init"))
  conv = results["convergence"]
  sp, sr = conv["pretrained"]["steps_to_threshold"], conv["random"]["steps_to_threshold"]
  sps = conv["pretrained"].get("steps_to_threshold_by_seed", [sp])
  srs = conv["random"].get("steps_to_threshold_by_seed", [sr])
  if len(sps) > 1 and all(x is not None for x in (*sps, *srs)):
    steps_check = common.less(f"fewer steps to reach train loss ≤ {results['threshold']:.3g}",
                              sps, srs, digits=0, what="steps pretrained vs random")
  else:   # a run that never reached the threshold: the order alone, in every seed
    faster = all(p is not None and (r is None or p < r) for p, r in zip(sps, srs))
    steps_check = common.Check(
        f"fewer steps to reach train loss ≤ {results['threshold']:.3g}", faster,
        f"{sps} (pretrained) vs {srs} (random) per seed; None: never reached; "
        + (common.SINGLE_RUN if len(sps) == 1 else "faster in every seed required"))
  why = "; ".join(x for x in (common.stand_in_note(results.get("data", [])),
                              common.scale_note(results, "{model} layers instead of ResNet-50's "
                                                "25th-48th layers")) if x)
  return [
      common.Claim(
          element="Fig 5",
          statement="Fine-tuning from pretrained weights converges faster than training "
                    "from scratch.",
          paper="convergence on Food-101 significantly faster with ImageNet pretraining",
          ours=(f"steps to train loss ≤ {results['threshold']:.3g}: {sps} (pretrained) vs "
                f"{srs} (random); mean train loss {conv['pretrained']['mean_train_loss']:.3g} vs "
                f"{conv['random']['mean_train_loss']:.3g}"),
          checks=[
              steps_check,
              common.less("lower mean train loss over training"
                          + (f" (steps ≤ {conv['pretrained']['mean_over_steps']}, which every "
                             "run has)" if "mean_over_steps" in conv["pretrained"] else ""),
                          conv["pretrained"].get("mean_train_loss_by_seed",
                                                 conv["pretrained"]["mean_train_loss"]),
                          conv["random"].get("mean_train_loss_by_seed",
                                             conv["random"]["mean_train_loss"]), digits=4,
                          what="pretrained vs random")],
          why=why),
      common.Claim(
          element="Fig 12-13 (App. B.4)",
          statement="At initialisation, pretrained landscapes of the lower layers are smoother "
                    "than randomly initialised ones (loss range and bumpiness smaller), and "
                    "random-init landscapes worsen towards the lower layers.",
          paper="random-init landscapes worsen through the lower layers; pretrained stay smooth",
          ours="; ".join(parts),
          checks=checks or [common.Check("lower layers to compare", False, "none")], why=why),
  ]


def validate(config: ml_collections.ConfigDict) -> None:
  pairs.validate(config)
  bn_modes.validate(config)
  if config.resolution < 3 or not config.eta > 0 or config.lower_layers < 1:
    raise ValueError("paper_init_landscapes: resolution >= 3, eta > 0, lower_layers >= 1.")
