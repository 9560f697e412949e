"""Fig 6 + Fig 11: loss variation along the gradient during training, pretrained vs random.

At every `every`-th training step a callback takes the gradient g of the loss on a fixed
sample set and evaluates the loss along it, L(theta - c_k g) for k = 0..K:
  * "gradient" protocol (Fig 6, Santurkar et al. 2018): c_k = k * lr, so the step length
    is proportional to the size of the gradient;
  * "fixed" protocol (Fig 11): c_k = k * delta / ||g||, a fixed step length delta.
The variation is max_k L - min_k L. The paper: the pretrained network's variation is
substantially smaller than the randomly initialised one's.

The callback is attached to the shared fine-tuning pair (transjax.paper.pairs) when it
trains; this experiment reads its records back.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
import numpy as np

from transjax import plotting
from transjax import results as results_lib
from transjax.paper import common, overrides, pairs

FIGURES = ("gradient_variation.png", "gradient_variation_fixed.png")
ELEMENTS = ("Fig 6", "Fig 11")
# --------------------------------------------------------------------------- experiment


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  dirs = pairs.pair_runs(config)
  settings = overrides.variation(pairs.variation_settings(config.preset), config)
  numbers, curves = {}, {"gradient": {}, "fixed": {}}
  data = []
  for init, d in dirs.items():
    recs = pairs.variation_records(d)
    if not recs:
      raise RuntimeError(f"{d} has no gradient-variation records (metrics "
                         f"'{pairs.PREFIX}gradient/max_change'); a run trained by an older transjax "
                         "wrote other keys: delete the folder to retrain it.")
    numbers[init] = {
        "mean_gradient": float(np.nanmean([r["gradient"] for r in recs])),
        "mean_fixed": float(np.nanmean([r["fixed"] for r in recs])),
        "max_gradient": float(np.nanmax([r["gradient"] for r in recs])),
        "max_fixed": float(np.nanmax([r["fixed"] for r in recs])),
        "mean_grad_norm": float(np.mean([r["grad_norm"] for r in recs])),
        "num_records": len(recs), "run_dir": d}
    for proto in curves:
      curves[proto][init] = [(r["step"], r[proto]) for r in recs]
    run_json = results_lib.read_json(os.path.join(d, "run.json"))
    data.append(f"{init}: {run_json['data']['train']} (init {run_json['init']})")
  for proto, path, title in (
      ("gradient", FIGURES[0], "Loss variation along the gradient (step ∝ |g|)"),
      ("fixed", FIGURES[1], f"Loss variation along the gradient (fixed step {settings.fixed_step})")):
    plotting.step_curves(os.path.join(workdir, path),
                         {i: tuple(zip(*pts)) if pts else ((), ()) for i, pts in curves[proto].items()},
                         ylabel="max variation of the loss", xlabel="step", title=title,
                         yscale="symlog", marker=".")
  p, r = numbers["pretrained"], numbers["random"]
  summary = "\n".join([
      "| init | mean max-variation (step ∝ grad) | mean max-variation (fixed step) | mean ‖g‖ |",
      "|---|---|---|---|",
      *[f"| {k} | {v['mean_gradient']:.4g} | {v['mean_fixed']:.4g} | {v['mean_grad_norm']:.4g} |"
        for k, v in numbers.items()],
      "", f"ratio random / pretrained: {r['mean_gradient'] / max(p['mean_gradient'], 1e-12):.2f} "
      f"(step ∝ grad), {r['mean_fixed'] / max(p['mean_fixed'], 1e-12):.2f} (fixed step)"])
  results = {"elements": list(ELEMENTS), "data": data, "summary": summary,
             "figures": list(FIGURES), "variation": numbers,
             "settings": dataclasses.asdict(settings), "preset": config.preset, "model": pairs.model_of(config),
             "curves": {k: {i: v for i, v in c.items()} for k, c in curves.items()}}
  return common.write_results(workdir, results, claims(results))


THROUGHOUT_FRACTION = 0.9   # "throughout training": pretrained below random at 90% of steps


def _below_at_shared_steps(curves: dict[str, Any], proto: str) -> tuple[int, int] | None:
  """(steps where the pretrained variation is below the random one, steps recorded by both)."""
  c = (curves or {}).get(proto) or {}
  if "pretrained" not in c or "random" not in c:
    return None
  p = {int(s): v for s, v in c["pretrained"]}
  r = {int(s): v for s, v in c["random"]}
  shared = [s for s in sorted(p) if s in r and p[s] is not None and r[s] is not None
            and np.isfinite(p[s]) and np.isfinite(r[s])]
  return sum(p[s] < r[s] for s in shared), len(shared)


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 6 / Fig 11 from the pair's two training runs (one run each: values decide)."""
  v = results["variation"]
  p, r = v["pretrained"], v["random"]
  why = common.stand_in_note(results.get("data", []))
  scale = common.scale_note(results, "{model} on small targets instead of ResNet-50 on "
                            "CUB-200/Stanford Cars")
  out = []
  for element, proto, words in (("Fig 6", "gradient", "step proportional to the gradient"),
                                ("Fig 11", "fixed", "fixed step length")):
    checks = [
        common.less("mean variation over training smaller when pretrained",
                    p[f"mean_{proto}"], r[f"mean_{proto}"], digits=4,
                    what="pretrained vs random"),
        common.less("peak variation smaller when pretrained", p[f"max_{proto}"],
                    r[f"max_{proto}"], digits=4, what="pretrained vs random")]
    below = _below_at_shared_steps(results.get("curves"), proto)
    if below is not None:
      n_below, n = below
      checks.append(common.Check(
          "smaller throughout training (at recorded steps)",
          n > 0 and n_below >= THROUGHOUT_FRACTION * n,
          f"pretrained below random at {n_below} of {n} recorded steps (≥ "
          f"{100 * THROUGHOUT_FRACTION:g}%; {common.SINGLE_RUN})"))
    out.append(common.Claim(
        element=element,
        statement=f"The loss varies less along the gradient ({words}) with pretrained weights "
                  "than with random initialisation, throughout training.",
        paper="pretrained variation substantially smaller than random throughout training",
        ours=(f"mean max-variation {p[f'mean_{proto}']:.4g} (pretrained) vs "
              f"{r[f'mean_{proto}']:.4g} (random); peak {p[f'max_{proto}']:.4g} vs "
              f"{r[f'max_{proto}']:.4g}"),
        checks=checks,
        why="; ".join(x for x in (why, scale) if x)))
  return out


validate = pairs.validate
