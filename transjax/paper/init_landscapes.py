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

from transjax import params as params_lib
from transjax import plotting
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import landscape
from transjax.paper import common, pairs

FIGURES = ("landscapes_at_init.png", "convergence.png")
ELEMENTS = ("Fig 5", "Fig 12-13 (App. B.4)")


def train_curve(run_dir: str) -> list[tuple[int, float]]:
  log = results_lib.MetricsLog(os.path.join(run_dir, "metrics.jsonl"))
  return [(r["step"], r["train_loss"]) for r in log.read() if "train_loss" in r]


def steps_to_threshold(curve: list[tuple[int, float]], threshold: float) -> int | None:
  for step, loss in curve:
    if loss <= threshold:
      return int(step)
  return None


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  dirs = pairs.pair_runs(config)
  per_layer: dict[str, dict[str, Any]] = {}
  panels = []
  layers: list[str] = []
  for init, d in dirs.items():
    r = runs_lib.load_run(d, "init")
    batch = r.batch("train", config.num_samples, seed=0)
    layers = list(config.layers) or params_lib.weight_layer_names(r.params)
    for layer in layers:
      res = landscape.landscape_2d(
          r.loss_fn, r.params, r.state, batch, key=config.seed,
          mask=landscape.layer_mask(r.params, layer), resolution=config.resolution,
          eta=config.eta,
          resume_path=common.partial_path(workdir, f"landscape_{init}_{layer}.npz"))
      stats = landscape.grid_stats(res.losses, res.center_loss)
      per_layer.setdefault(layer, {})[init] = stats
      panels.append((f"{layer} ({init})", {"axes": res.axes, "losses": res.losses}))
  # Order the panels layer by layer: random | pretrained side by side.
  panels.sort(key=lambda p: (layers.index(p[0].split(" (")[0]), p[0].endswith("(pretrained)")))
  spacing = plotting.contour_grid(os.path.join(workdir, FIGURES[0]), panels,
                                  "Per-layer landscapes centred at initialisation",
                                  cap=config.get("colour_cap", None))
  curves = {init: train_curve(d) for init, d in dirs.items()}
  threshold = float(config.loss_threshold)
  if threshold <= 0:
    threshold = 1.1 * max(c[-1][1] for c in curves.values())
  plotting.step_curves(os.path.join(workdir, FIGURES[1]),
                       {init: tuple(zip(*c)) for init, c in curves.items()},
                       ylabel="training loss", xlabel="step", threshold=threshold, marker=None,
                       title="Convergence: fine-tuning vs from scratch")
  convergence = {init: {"steps_to_threshold": steps_to_threshold(c, threshold),
                        "mean_train_loss": float(np.mean([v for _, v in c])),
                        "final_train_loss": float(c[-1][1])} for init, c in curves.items()}
  rows = ["| layer | loss range (random) | loss range (pretrained) | roughness (random) | "
          "roughness (pretrained) |", "|---|---|---|---|---|"]
  for layer in layers:
    a, b = per_layer[layer]["random"], per_layer[layer]["pretrained"]
    rows.append(f"| {layer} | {a['range']:.4g} | {b['range']:.4g} | {a['roughness']:.4g} | "
                f"{b['roughness']:.4g} |")
  rows += ["", "| init | steps to train loss ≤ {:.3g} | mean train loss |".format(threshold),
           "|---|---|---|"]
  for init, c in convergence.items():
    rows.append(f"| {init} | {c['steps_to_threshold']} | {c['mean_train_loss']:.4g} |")
  rows.append("")
  rows.append(f"{config.resolution}x{config.resolution} grids, eta {config.eta}, "
              f"{config.num_samples} samples, contours every {spacing:g}.")
  results = {"elements": list(ELEMENTS), "data": pairs.data_notes(dirs),
             "summary": "\n".join(rows), "figures": list(FIGURES), "preset": config.preset, "model": pairs.model_of(config),
             "layers": layers, "lower_layers": layers[:config.lower_layers],
             "per_layer": per_layer, "convergence": convergence, "threshold": threshold,
             "curves": curves, "run_dirs": dirs}
  return common.write_results(workdir, results, claims(results))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 5 convergence and App. B.4 smoothness from the pair's two runs (single runs)."""
  lower = results["lower_layers"]
  pl = results["per_layer"]
  checks, parts = [], []
  for layer in lower:
    p, r = pl[layer]["pretrained"], pl[layer]["random"]
    for stat in ("range", "roughness"):
      checks.append(common.less(f"{layer}: loss {stat} at initialisation smaller when pretrained",
                                p[stat], r[stat], digits=4, what="pretrained vs random"))
    parts.append(f"{layer}: range {p['range']:.3g} vs {r['range']:.3g}, roughness "
                 f"{p['roughness']:.3g} vs {r['roughness']:.3g}")
  # B.4: "the landscapes of randomly initialized networks worsen through the lower layers".
  # Compared as the lower layers against the others: `layers` need not be in network order.
  higher = [l for l in results.get("layers", []) if l in pl and l not in lower]
  if higher and lower:
    rough = lambda ls: [pl[l]["random"]["roughness"] for l in ls]
    checks.append(common.greater(
        f"random-init landscape worsens towards the lower layers (mean roughness of "
        f"{', '.join(lower)} above {', '.join(higher)})", float(np.mean(rough(lower))),
        float(np.mean(rough(higher))), digits=4, what="lower vs higher layers, random init"))
  conv = results["convergence"]
  sp, sr = conv["pretrained"]["steps_to_threshold"], conv["random"]["steps_to_threshold"]
  faster = sp is not None and (sr is None or sp < sr)
  why = "; ".join(x for x in (common.stand_in_note(results.get("data", [])),
                              common.scale_note(results, "{model} layers instead of ResNet-50's "
                                                "25th-48th layers")) if x)
  return [
      common.Claim(
          element="Fig 5",
          statement="Fine-tuning from pretrained weights converges faster than training "
                    "from scratch.",
          paper="convergence on Food-101 significantly faster with ImageNet pretraining",
          ours=(f"steps to train loss ≤ {results['threshold']:.3g}: {sp} (pretrained) vs {sr} "
                f"(random); mean train loss {conv['pretrained']['mean_train_loss']:.3g} vs "
                f"{conv['random']['mean_train_loss']:.3g}"),
          checks=[
              common.Check(f"fewer steps to reach train loss ≤ {results['threshold']:.3g}",
                           faster, f"{sp} (pretrained) vs {sr} (random; None: never reached; "
                                   f"{common.SINGLE_RUN})"),
              common.less("lower mean train loss over training", 
                          conv["pretrained"]["mean_train_loss"],
                          conv["random"]["mean_train_loss"], digits=4,
                          what="pretrained vs random")],
          why=why),
      common.Claim(
          element="Fig 12-13 (App. B.4)",
          statement="At initialisation, pretrained landscapes of the lower layers are smoother "
                    "than randomly initialised ones (loss range and roughness smaller), and "
                    "random-init landscapes worsen towards the lower layers.",
          paper="random-init landscapes worsen through the lower layers; pretrained stay smooth",
          ours="; ".join(parts),
          checks=checks or [common.Check("lower layers to compare", False, "none")], why=why),
  ]


def validate(config: ml_collections.ConfigDict) -> None:
  pairs.validate(config)
  if config.resolution < 3 or not config.eta > 0 or config.lower_layers < 1:
    raise ValueError("paper_init_landscapes: resolution >= 3, eta > 0, lower_layers >= 1.")
