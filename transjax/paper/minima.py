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

from transjax import convergence, plotting, weights
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import batchnorm, hessian, landscape
from transjax.paper import bn_modes, common, pairs

FIGURES = ("hessian_eigenvalues.png", "landscape_minima.png")
ELEMENTS = ("Fig 3", "Fig 10")


# --------------------------------------------------------------------------- experiment


def _measure(config, r, batch, init: str, seed: int, mode: str, workdir: str) -> dict[str, Any]:
  """Top-k eigenvalues, the landscape and the loss / error on the analysed samples of one
  network in one BatchNorm mode (prepared once: the instruments then take it as given)."""
  loss_fn, state = batchnorm.prepare(r.loss_fn, r.params, r.state, batch, mode)
  op = hessian.HessianOperator(loss_fn, r.params, state, batch)
  logging.info("%s seed %d (%s): top-%d Hessian eigenvalues of %d parameters by Lanczos",
               init, seed, mode, config.top_k, op.dim)
  top = hessian.lanczos_top_k(op, k=config.top_k, tol=1e-4, seed=0,
                              max_steps=config.get("lanczos_max_steps", 0) or None,
                              log_every=10, memory_fix=_LANCZOS_FIX)
  res = landscape.landscape_2d(
      loss_fn, r.params, state, batch, key=config.seed, resolution=config.resolution,
      eta=config.eta,
      resume_path=common.partial_path(workdir, f"landscape_{init}_s{seed}_{mode}.npz"))
  loss, aux = loss_fn(r.params, state, batch, False)
  return {"eigenvalues": [float(x) for x in top.eigenvalues],
          "lanczos_converged": bool(top.converged),
          "landscape": {"axes": [a.tolist() for a in res.axes], "losses": res.losses.tolist(),
                        "stats": landscape.grid_stats(res.losses, res.center_loss),
                        "seconds": res.seconds},
          "at_point": {"loss": float(loss), "error": 1.0 - float(aux["accuracy"])}}


def _mean_rows(values: list[list[float]]) -> list[float]:
  k = min(len(v) for v in values)
  return np.mean([v[:k] for v in values], axis=0).tolist()


def _mode_results(measured: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
  """One mode's numbers ({init: [per seed]}) in the keys `claims` reads."""
  return {
      "eigenvalues": {i: _mean_rows([m["eigenvalues"] for m in ms]) for i, ms in measured.items()},
      "eigenvalues_by_seed": {i: [m["eigenvalues"] for m in ms] for i, ms in measured.items()},
      "landscape": {i: {"stats": {k: float(np.mean([m["landscape"]["stats"][k] for m in ms]))
                                  for k in ms[0]["landscape"]["stats"]},
                        "stats_by_seed": [m["landscape"]["stats"] for m in ms],
                        "seconds": float(sum(m["landscape"]["seconds"] for m in ms))}
                    for i, ms in measured.items()},
      "at_point": {i: [m["at_point"] for m in ms] for i, ms in measured.items()},
      "lanczos_converged": {i: [m["lanczos_converged"] for m in ms] for i, ms in measured.items()}}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  seeds = pairs.seeds_of(config)
  measured: dict[str, dict[str, list]] = {}     # mode -> init -> [per seed]
  curves, finals, run_dirs = {}, {}, {}
  modes: list[str] = []
  for seed in seeds:
    dirs = pairs.pair_runs(config, seed=seed)
    for init, d in dirs.items():
      r = runs_lib.load_run(d, "final")
      batch = r.batch("train", config.num_samples, seed=0)
      modes = bn_modes.modes(config, r.state)
      for mode in modes:
        measured.setdefault(mode, {}).setdefault(init, []).append(
            _measure(config, r, batch, init, seed, mode, workdir))
      curves.setdefault(init, []).append(convergence.train_curve(d))
      finals.setdefault(init, []).append(
          results_lib.read_json(os.path.join(d, "results.json"))["final"])
      run_dirs.setdefault(init, []).append(d)
  primary = modes[0]
  by_mode = {mode: _mode_results(measured[mode]) for mode in modes}
  land = {mode: {init: [m["landscape"] for m in ms] for init, ms in per_init.items()}
          for mode, per_init in measured.items()}
  for mode, res in by_mode.items():
    res["convergence"] = {
        init: [convergence.assess(a["error"], a["loss"], c)
               for a, c in zip(res["at_point"][init], curves[init])]
        for init in res["at_point"]}
  eig = by_mode[primary]["eigenvalues"]
  plotting.eigenvalue_bars(os.path.join(workdir, FIGURES[0]), eig,
                           title=f"Top-{config.top_k} Hessian eigenvalues at convergence\n"
                                 f"(BatchNorm: {primary}; mean over {len(seeds)} seed(s))")
  spacing = plotting.contour_grid(
      os.path.join(workdir, FIGURES[1]),
      [(f"{init} (minimum, seed {seeds[0]})", v[0]) for init, v in land[primary].items()],
      f"Landscapes centred at the minima (BatchNorm: {primary})",
      cap=config.get("colour_cap", None))
  rows = ["| BatchNorm | init | top-1 eigenvalue | mean top-k | mean loss increase over grid | "
          "max increase | train loss / error at the point (analysed samples) | at a minimum "
          "| test error |", "|---|---|---|---|---|---|---|---|---|"]
  pm = common.fmt_seeds
  for mode in modes:
    res = by_mode[mode]
    for init, per_seed in res["eigenvalues_by_seed"].items():
      st = res["landscape"][init]["stats_by_seed"]
      at = res["at_point"][init]
      conv = res["convergence"][init]
      rows.append(
          f"| {mode} | {init} | {pm([e[0] for e in per_seed])} | "
          f"{pm([np.mean(e) for e in per_seed])} | {pm([x['mean_increase'] for x in st])} | "
          f"{pm([x['max_increase'] for x in st])} | "
          f"{pm([a['loss'] for a in at], 3)} / {pm([100 * a['error'] for a in at], 3)}% | "
          f"{sum(c['converged'] for c in conv)}/{len(conv)} | "
          f"{pm([100 * f['test_error'] for f in finals[init]], 3)}% |")
  rows.append("")
  rows.append(f"top-{config.top_k} eigenvalues (Lanczos) on {config.num_samples} samples; "
              f"{config.resolution}x{config.resolution} grid, eta {config.eta}, contours every "
              f"{spacing:g}; seeds {list(seeds)} (± over seeds). "
              + bn_modes.note(modes, batchnorm.has_statistics(r.state))
              + f" At a minimum: {convergence.CRITERION}.")
  results = {"elements": list(ELEMENTS),
             "data": pairs.data_notes({i: ds[0] for i, ds in run_dirs.items()}),
             "summary": "\n".join(rows), "figures": list(FIGURES), "preset": config.preset,
             "model": pairs.model_of(config), "seeds": list(seeds), "final": finals,
             "run_dirs": run_dirs}
  results = bn_modes.pack(results, by_mode, primary)
  results_lib.write_json(os.path.join(workdir, "landscapes.json"), land)
  return common.write_results(workdir, results, claims(results))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 3 / Fig 10, in each measured BatchNorm mode (`bn_modes.claims_in_modes`)."""
  return bn_modes.claims_in_modes(results, _claims)


def _claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 3 / Fig 10 from the pair's runs: over seeds where there are several (Welch), the
  values alone for one; inconclusive where a network is not at a minimum."""
  e, s = results["eigenvalues"], results["landscape"]
  by_seed = results.get("eigenvalues_by_seed") or {i: [e[i]] for i in e}
  top1 = {i: [v[0] if len(v) else np.nan for v in by_seed[i]] for i in by_seed}
  mean_k = {i: [float(np.mean(v)) if len(v) else np.nan for v in by_seed[i]] for i in by_seed}
  stats = {i: s[i].get("stats_by_seed") or [s[i]["stats"]] for i in s}
  inc = {i: [x["mean_increase"] for x in stats[i]] for i in stats}
  peak = {i: [x["max_increase"] for x in stats[i]] for i in stats}
  p, r = np.asarray(e["pretrained"], np.float64), np.asarray(e["random"], np.float64)
  why = "; ".join(x for x in (common.stand_in_note(results.get("data", [])),
                              common.scale_note(results, "{model} on a small target instead of "
                                                "ResNet-50 on Stanford Cars")) if x)
  ps, rs = s["pretrained"]["stats"], s["random"]["stats"]
  k = min(len(p), len(r))
  smaller = int(np.sum(p[:k] < r[:k]))
  conv = results.get("convergence")
  inconclusive = convergence.not_at_minimum(
      {f"{init} seed {j}": a for init, per in (conv or {}).items() for j, a in enumerate(per)})
  n = len(top1["pretrained"])
  seeds_note = common.SINGLE_RUN if n == 1 else f"means over {n} seeds"
  return [
      common.Claim(
          element="Fig 3",
          statement="Pretrained networks reach minima with smaller top Hessian eigenvalues.",
          paper="top-20 eigenvalues of the pretrained ResNet-50 are all smaller than random init's",
          ours=(f"top-1 {p[0]:.4g} vs {r[0]:.4g}; mean top-{len(p)} {p.mean():.4g} vs "
                f"{r.mean():.4g} (pretrained vs random)"),
          checks=[
              common.less("largest Hessian eigenvalue smaller when pretrained",
                          top1["pretrained"], top1["random"], digits=4,
                          what="top-1 eigenvalue pretrained vs random"),
              common.Check(f"each of the top-{k} eigenvalues smaller when pretrained",
                           k > 0 and smaller == k,
                           f"the i-th pretrained eigenvalue is below the i-th random one for "
                           f"{smaller} of {k} (mean {p.mean():.4g} vs {r.mean():.4g}; "
                           f"{seeds_note})")]
          + ([common.less(f"mean of the top-{k} eigenvalues smaller when pretrained",
                          mean_k["pretrained"], mean_k["random"], digits=4,
                          what="mean top-k pretrained vs random")] if n > 1 else []),
          why=why, inconclusive=inconclusive),
      common.Claim(
          element="Fig 10",
          statement="Landscapes centred at the pretrained minimum are flatter.",
          paper="random init ends in sharper minima; pretrained stays in flat regions",
          ours=(f"mean loss increase over the grid {ps['mean_increase']:.4g} vs "
                f"{rs['mean_increase']:.4g}; max {ps['max_increase']:.4g} vs "
                f"{rs['max_increase']:.4g} (pretrained vs random)"),
          checks=[
              common.less("mean loss increase over the grid smaller when pretrained",
                          inc["pretrained"], inc["random"], digits=4,
                          what="pretrained vs random"),
              common.less("largest loss increase over the grid smaller when pretrained",
                          peak["pretrained"], peak["random"], digits=4,
                          what="pretrained vs random")],
          why=why, inconclusive=inconclusive),
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
  bn_modes.validate(config)
  if config.top_k < 1 or config.resolution < 3 or not config.eta > 0 or config.num_samples < 1:
    raise ValueError("paper_minima: top_k >= 1, resolution >= 3, eta > 0, num_samples >= 1.")
  dim = weights.param_count(pairs.pair_training_configs(config)[0], num_classes=1)
  steps = hessian.lanczos_steps(config.top_k, dim, config.get("lanczos_max_steps", 0) or None)
  hessian.check_basis_fits(steps, dim, np.float32, what=f"paper_minima top-{config.top_k}",
                           fix=_LANCZOS_FIX)
