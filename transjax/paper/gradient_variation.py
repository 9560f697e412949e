"""Fig 6 + Fig 11: loss variation along the gradient during training, pretrained vs random.

At every `every`-th training step a callback takes the gradient g of the loss on a fixed
sample set and evaluates the loss along it, L(theta - c_k g) for k = 0..K:
  * "gradient" protocol (Fig 6, Santurkar et al. 2018): c_k = k * lr, so the step length
    is proportional to the size of the gradient;
  * "fixed" protocol (Fig 11): c_k = k * delta / ||g||, a fixed step length delta.
The paper (after Santurkar et al.'s max_k L - min_k L): the pretrained network's variation
is substantially smaller than the randomly initialised one's. Max-minus-min counts a
monotone descent along the gradient as variation, so the claims test the *rise*, the
largest climb of the loss after its lowest point so far along the path
(`gradients.max_rise`: 0 for a descent), and report the max-variation beside it. The
callback measures in batch statistics (the training loss) and in the stored running
statistics (`pairs.VARIATION_BN_MODES`); `bn_mode` picks the claims' mode.

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
from transjax.paper import bn_modes, common, overrides, pairs

FIGURES = ("gradient_variation.png", "gradient_variation_fixed.png")
ELEMENTS = ("Fig 6", "Fig 11")
# --------------------------------------------------------------------------- experiment


METRICS = ("gradient", "fixed", "gradient_rise", "fixed_rise")


def _numbers(recs: list[dict[str, Any]]) -> dict[str, float]:
  """One run's summary: mean and peak of each metric over the recorded steps."""
  out = {}
  for m in METRICS:
    values = [r[m] for r in recs]
    finite = np.isfinite(values)
    out[f"mean_{m}"] = float(np.nanmean(values)) if finite.any() else float("nan")
    out[f"max_{m}"] = float(np.nanmax(values)) if finite.any() else float("nan")
  out["mean_grad_norm"] = float(np.mean([r["grad_norm"] for r in recs]))
  out["num_records"] = len(recs)
  return out


def _records(d: str, mode: str, settings) -> list[dict[str, Any]]:
  prefix = pairs.variation_prefix(mode, settings)
  recs = pairs.variation_records(d, prefix)
  if not recs:
    raise RuntimeError(f"{d} has no gradient-variation records in BatchNorm mode {mode!r} "
                       f"(metrics '{prefix}gradient/max_change'); a run trained by an older "
                       "transjax, or with other variation settings, wrote other keys: delete "
                       "the folder to retrain it.")
  return recs


def _mode_results(per_seed: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
  """One mode's numbers from {init: [records of each seed]}: means over seeds at the
  usual keys, per-seed lists under "variation_by_seed", seed 0's curves."""
  numbers = {init: [_numbers(recs) for recs in seeds] for init, seeds in per_seed.items()}
  keys = [k for k in numbers["pretrained"][0] if k != "num_records"]
  return {
      "variation": {init: {**{k: float(np.mean([n[k] for n in ns])) for k in keys},
                           "num_records": ns[0]["num_records"]}
                    for init, ns in numbers.items()},
      "variation_by_seed": {init: {k: [n[k] for n in ns] for k in keys}
                            for init, ns in numbers.items()},
      "curves": {m: {init: [(r["step"], r[m]) for r in seeds[0]]
                     for init, seeds in per_seed.items()} for m in METRICS}}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  settings = overrides.variation(pairs.variation_settings(config.preset), config)
  seeds = pairs.seeds_of(config)
  recorded: dict[str, dict[str, list]] = {}    # mode -> init -> [records per seed]
  data, run_dirs = [], {}
  modes = [config.bn_mode] + ([config.bn_compare] if config.bn_compare
                              and config.bn_compare != config.bn_mode else [])
  for seed in seeds:
    for init, d in pairs.pair_runs(config, seed=seed).items():
      for mode in modes:
        if mode not in settings.bn_modes:
          raise ValueError(f"config.bn_mode/bn_compare {mode!r}: the pair's callback records "
                           f"the modes {settings.bn_modes} (pairs.VARIATION_BN_MODES).")
        if mode != modes[0] and not any(k.startswith(pairs.variation_prefix(mode, settings))
                                        for k in _first_record_keys(d)):
          continue   # a model without BatchNorm records its first mode only
        recorded.setdefault(mode, {}).setdefault(init, []).append(_records(d, mode, settings))
      run_dirs.setdefault(init, []).append(d)
      if seed == seeds[0]:
        run_json = results_lib.read_json(os.path.join(d, "run.json"))
        data.append(f"{init}: {run_json['data']['train']} (init {run_json['init']})")
  modes = [m for m in modes if m in recorded]
  primary = modes[0]
  by_mode = {mode: _mode_results(recorded[mode]) for mode in modes}
  curves = by_mode[primary]["curves"]
  for proto, path, title in (
      ("gradient_rise", FIGURES[0], "Largest rise of the loss along the gradient (step ∝ |g|)"),
      ("fixed_rise", FIGURES[1],
       f"Largest rise of the loss along the gradient (fixed step {settings.fixed_step})")):
    plotting.step_curves(os.path.join(workdir, path),
                         {i: tuple(zip(*pts)) if pts else ((), ()) for i, pts in curves[proto].items()},
                         ylabel="largest rise of the loss", xlabel="step",
                         title=f"{title}\n(BatchNorm: {primary}, seed {seeds[0]})",
                         yscale="symlog", marker=".")
  pm = common.fmt_seeds
  rows = ["| BatchNorm | init | mean rise (step ∝ grad) | mean rise (fixed step) | mean "
          "max-variation (step ∝ grad) | mean max-variation (fixed step) | mean ‖g‖ |",
          "|---|---|---|---|---|---|---|"]
  for mode in modes:
    for init, v in by_mode[mode]["variation_by_seed"].items():
      rows.append(f"| {mode} | {init} | {pm(v['mean_gradient_rise'])} | "
                  f"{pm(v['mean_fixed_rise'])} | {pm(v['mean_gradient'])} | "
                  f"{pm(v['mean_fixed'])} | {pm(v['mean_grad_norm'])} |")
  rows += ["", f"{settings.num_points} points along the gradient every {settings.every} steps "
           f"on {settings.num_samples} samples; seeds {list(seeds)} (± over seeds). Rise: the "
           "largest climb of the loss after its lowest point so far along the path (a monotone "
           "descent has none); max-variation: max minus min (counts the descent too). "
           + bn_modes.note(modes)]
  results = {"elements": list(ELEMENTS), "data": data, "summary": "\n".join(rows),
             "figures": list(FIGURES), "settings": dataclasses.asdict(settings),
             "preset": config.preset, "model": pairs.model_of(config), "seeds": list(seeds),
             "run_dirs": run_dirs}
  results = bn_modes.pack(results, by_mode, primary)
  return common.write_results(workdir, results, claims(results))


def _first_record_keys(run_dir: str) -> set[str]:
  for r in results_lib.MetricsLog(os.path.join(run_dir, "metrics.jsonl")).read():
    if f"{pairs.PREFIX}loss" in r:
      return set(r)
  return set()


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
  """Fig 6 / Fig 11, in each measured BatchNorm mode (`bn_modes.claims_in_modes`)."""
  return bn_modes.claims_in_modes(results, _claims)


def _claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 6 / Fig 11 from the pair's training runs: the rise along the gradient (results
  written before it: the max-variation), over seeds where there are several."""
  v = results["variation"]
  p, r = v["pretrained"], v["random"]
  rise = "mean_gradient_rise" in p
  by_seed = results.get("variation_by_seed") or {i: {k: [x] for k, x in v[i].items()} for i in v}
  why = common.stand_in_note(results.get("data", []))
  scale = common.scale_note(results, "{model} on small targets instead of ResNet-50 on "
                            "CUB-200/Stanford Cars")
  n = len(by_seed["pretrained"].get("mean_gradient", [0]))
  out = []
  for element, proto, words in (("Fig 6", "gradient", "step proportional to the gradient"),
                                ("Fig 11", "fixed", "fixed step length")):
    metric = f"{proto}_rise" if rise else proto
    what = "rise" if rise else "max-variation (counts the descent)"
    checks = [
        common.less(f"mean {what} over training smaller when pretrained",
                    by_seed["pretrained"][f"mean_{metric}"], by_seed["random"][f"mean_{metric}"],
                    digits=4, what="pretrained vs random"),
        common.less(f"peak {what} smaller when pretrained", by_seed["pretrained"][f"max_{metric}"],
                    by_seed["random"][f"max_{metric}"], digits=4, what="pretrained vs random")]
    curves = results.get("curves") or {}
    below = _below_at_shared_steps(curves, metric if metric in curves else proto)
    if below is not None:
      n_below, shared = below
      checks.append(common.Check(
          "smaller throughout training (at recorded steps)",
          shared > 0 and n_below >= THROUGHOUT_FRACTION * shared,
          f"pretrained below random at {n_below} of {shared} recorded steps (≥ "
          f"{100 * THROUGHOUT_FRACTION:g}%; seed 0"
          + (f" of {n}" if n > 1 else f"; {common.SINGLE_RUN}") + ")"))
    ours = (f"mean {what} {p[f'mean_{metric}']:.4g} (pretrained) vs {r[f'mean_{metric}']:.4g} "
            f"(random); peak {p[f'max_{metric}']:.4g} vs {r[f'max_{metric}']:.4g}")
    if rise:
      ours += (f"; max-variation {p[f'mean_{proto}']:.4g} vs {r[f'mean_{proto}']:.4g}")
    out.append(common.Claim(
        element=element,
        statement=f"The loss varies less along the gradient ({words}) with pretrained weights "
                  "than with random initialisation, throughout training.",
        paper="pretrained variation substantially smaller than random throughout training",
        ours=ours, checks=checks, why="; ".join(x for x in (why, scale) if x)))
  return out


def validate(config: ml_collections.ConfigDict) -> None:
  pairs.validate(config)
  bn_modes.validate(config)
