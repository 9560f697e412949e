"""Table 1, Fig 2 and Table 2: one pretrained network on targets of decreasing similarity.

Each target is trained in three modes, `num_seeds` times each:
  fixed     the pretrained backbone frozen, a new head trained (the paper's 512-unit
            BN + LeakyReLU MLP head by default, `fixed_head`);
  finetune  every layer trained from the pretrained weights, with a new head;
  scratch   every layer trained from a random initialisation (Table 2).
We report training and test error, the deviation ||W - W0||_F / sqrt(n) (the head's
when fixed, summed over layers otherwise) and its curve over training (Fig 2), and
Table 2's improvement (scratch error - fine-tuned error) / scratch error.

`targets` are listed from most to least similar to the source; the claims use that order.
With `order_by_similarity` the order is computed instead, before any training: the distance
between each target's BatchNorm statistics in the pretrained network and the source
statistics it stores (`transjax.analysis.similarity`), smallest first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from transjax import convergence, optim, plotting
from transjax import functional, weights
from transjax import data as data_lib
from transjax import results as results_lib
from transjax.analysis import similarity
from transjax.data import run_data
from transjax.paper import common, overrides
from transjax.paper import sources
from transjax.weights import named as imagenet

ELEMENTS = ("Table 1", "Fig 2", "Table 2")
FIGURES = ("fig2_deviation_curves.png", "table1_test_errors.png")
MODES = ("fixed", "finetune", "scratch")
TRAIN_ERROR_NEAR_ZERO = 0.05      # "training error converges to nearly zero"
TEST_ERROR_SPREAD = 0.05          # "generalisation error varies significantly" (5 points)
MONOTONE_FRACTION = 0.9           # share of consecutive deviation increases for Fig 2
CONVERGED_FRACTION = 0.05         # "eventually converges": the last recorded interval adds at
                                  # most 5% of the final deviation
RANK_THRESHOLD = 0.8 - 1e-9       # 4 targets: one swapped pair gives exactly 0.8
BOOTSTRAP_RESAMPLES = 1000


# ------------------------------------------------------------------------- configs


def run_config(config: ml_collections.ConfigDict, target: str, mode: str, seed: int,
               init_from: str) -> ml_collections.ConfigDict:
  """The training config of one (target, mode, seed) run."""
  c = ml_collections.ConfigDict(config.run.to_dict())
  t = config.targets[target]
  c.name = f"{target}_{mode}_seed{seed}"
  c.seed = seed
  c.mode = mode
  c.data.train = t.train.to_dict()
  c.data.test = t.test.to_dict()
  if config.data_dir:
    c.data.data_dir = config.data_dir
  c.init_from = "" if mode == "scratch" else init_from
  if mode == "fixed":
    c.model.head = config.fixed_head
    # Appendix A: the fixed-feature classifier trains with a constant learning rate.
    c.optim.schedule, c.optim.decay_at = "constant", ()
  return overrides.apply(c, config)


def training_configs(config: ml_collections.ConfigDict,
                     init_from: str) -> dict[tuple[str, str, int], ml_collections.ConfigDict]:
  return {(t, m, s): run_config(config, t, m, s, init_from)
          for t in config.target_names for m in config.modes for s in range(config.num_seeds)}


def with_folder_targets(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` with each image folder of `config.folder_targets` added as a target.

  `folder_targets` is "<path>" or "<name>=<path>", comma-separated (or a sequence of them).
  A target is named after its folder (`transjax.data.folder.target`: a split folder trains
  on train/ and tests on test/; a flat one holds out a fixed per-class 20%) and goes after
  the preset's targets (as the least similar, unless `target_names` places it or
  `order_by_similarity`), into Table 2 too when `table2_targets` lists targets.
  """
  entries = config.get("folder_targets") or ()
  if isinstance(entries, str):
    entries = [e for e in entries.split(",") if e.strip()]
  if not entries:
    return config
  c = config.copy_and_resolve_references()
  c.unlock()
  data_dir = data_lib.find_data_dir(config.data_dir or None)
  for entry in entries:
    t = data_lib.folder.target(str(entry).strip(), data_dir)
    if t.name in c.targets:
      raise ValueError(f"config.folder_targets: {t.path} would be named {t.name!r}, a target "
                       f"the preset already has; name it: '<name>={t.path}'.")
    c.targets[t.name] = {"train": t.train, "test": t.test, "note": t.note}
    if t.name not in c.target_names:
      c.target_names = tuple(c.target_names) + (t.name,)
    if c.table2_targets and t.name not in c.table2_targets:
      c.table2_targets = tuple(c.table2_targets) + (t.name,)
  return c


def _source(config: ml_collections.ConfigDict, shared_dir: str) -> tuple[str, str]:
  """(init_from, description) of the pretrained network."""
  if config.init_from:
    if not (os.path.exists(config.init_from) or imagenet.is_imagenet_name(config.init_from)):
      raise FileNotFoundError(f"config.init_from = {config.init_from!r} does not exist.")
    return config.init_from, f"weights {config.init_from}"
  if not config.source:
    raise ValueError("Set config.source (a shared source name) or config.init_from (a weights "
                     "file, e.g. torchvision ResNet-50 ImageNet weights for the full preset).")
  run_dir = sources.ensure_source(config.source, config.preset, shared_dir,
                                  data_dir=config.data_dir, experiment=config)
  return run_dir, f"shared source {config.source!r} ({config.preset}) at {run_dir}"


def _pretrained_on_targets(config: ml_collections.ConfigDict, init_from: str):
  """(target, the pretrained network with the target's new head, `similarity_samples` of
  its training images as a batch) for every target, before any training."""
  for target in config.target_names:
    c = run_config(config, target, "finetune", 0, init_from)
    data = run_data.load_data(c)
    graphdef, params, state, _ = weights.initial_weights(c, data.num_classes)
    batch = run_data.sample_batch(data.train, config.similarity_samples, mean=data.mean,
                                  std=data.std)
    yield target, functional.merge(graphdef, params, state), batch


def target_similarity(config: ml_collections.ConfigDict, init_from: str) -> dict[str, float]:
  """{target: BatchNorm-statistics distance to the source} of the pretrained network (its
  backbone; the new head is left out), on `similarity_samples` training images per target."""
  out = {}
  for target, model, batch in _pretrained_on_targets(config, init_from):
    try:
      d = similarity.batchnorm_distance(model, batch["image"], skip_prefix=optim.HEAD)
    except ValueError as e:  # a network without BatchNorm has no stored statistics
      raise ValueError(f"config.order_by_similarity: {e} Set it False to keep the order of "
                       "config.target_names.") from e
    out[target] = d["mean"]
  return out


def kernel_similarity(config: ml_collections.ConfigDict, init_from: str,
                      workdir: str) -> dict[str, float]:
  """{target: the theory's kernel complexity of its labels on the pretrained features}
  (`similarity.kernel_complexity`: smaller is more similar, labels included), on
  `similarity_samples` training images per target, before any training. Computed once into
  `<workdir>/kernel_similarity.json`."""
  def compute():
    return {target: similarity.kernel_complexity(
        similarity.head_features(model, batch["image"]), batch["label"])
            for target, model, batch in _pretrained_on_targets(config, init_from)}

  return _computed_once(os.path.join(workdir, "kernel_similarity.json"), "complexity",
                        {**_similarity_record(config, init_from),
                         "ridge": similarity.KERNEL_RIDGE}, compute)


def ordered_targets(config: ml_collections.ConfigDict, init_from: str,
                    workdir: str) -> tuple[list[str], dict[str, float] | None]:
  """(targets most similar first, their distances or None when the config's order is used).
  The distances are computed once into `<workdir>/similarity.json`."""
  if not config.order_by_similarity:
    return list(config.target_names), None
  distances = _computed_once(os.path.join(workdir, "similarity.json"), "distances",
                             _similarity_record(config, init_from),
                             lambda: target_similarity(config, init_from))
  return sorted(distances, key=distances.get), distances


def _similarity_record(config: ml_collections.ConfigDict, init_from: str) -> dict[str, Any]:
  return {"init_from": init_from, "targets": list(config.target_names),
          "samples": int(config.similarity_samples)}


def _computed_once(path: str, key: str, record: dict[str, Any], compute) -> dict[str, float]:
  """`compute()`, stored in `path` under `key` with `record`; read back while the record
  (what it was computed from) is the same."""
  if os.path.exists(path):
    stored = results_lib.read_json(path)
    if stored.get("record") == record:
      return stored[key]
  values = compute()
  results_lib.write_json(path, {"record": record, key: values})
  return values


# ----------------------------------------------------------------------------- run


def _curve(run_dir: str, key: str) -> tuple[list[int], list[float]]:
  records = results_lib.MetricsLog(os.path.join(run_dir, "metrics.jsonl")).read()
  pts = [(r["step"], r[key]) for r in records if key in r]
  return [p[0] for p in pts], [float(p[1]) for p in pts]


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains every (target, mode, seed) run (resuming), writes results.json and figures."""
  workdir = results_lib.ensure_workdir(workdir)
  config = with_folder_targets(config)
  common.use_compilation_cache(os.path.join(sources.shared_dir_of(config, workdir), "jax_cache"))
  init_from, source_note = _source(config, sources.shared_dir_of(config, workdir))
  targets, distances = ordered_targets(config, init_from, workdir)
  kernel = kernel_similarity(config, init_from, workdir)
  table: dict[str, dict[str, dict[str, list]]] = {}
  data: dict[str, str] = {}
  for (target, mode, seed), c in training_configs(config, init_from).items():
    run_dir = os.path.join(workdir, "runs", target, mode, f"seed{seed}")
    r = common.train_run(c, run_dir)
    key = "deviation_last" if mode == "fixed" else "deviation_sum"
    steps, dev = _curve(run_dir, key)
    entry = table.setdefault(target, {}).setdefault(mode, {
        "train_error": [], "test_error": [], "deviation": [], "curve_steps": steps,
        "curves": []})
    entry["train_error"].append(r["final"]["train_error"])
    entry["test_error"].append(r["final"]["test_error"])
    entry["deviation"].append(r["deviation"]["last_layer" if mode == "fixed" else "sum"])
    entry["curves"].append(dev)
    note = config.targets[target].get("note")
    data[target] = (f"{note}; " if note else "") + (
        f"train: {r['data']['train']}; test: {r['data']['test']}")
  t2_targets = [t for t in targets if t in (config.table2_targets or targets)]
  results = {
      "elements": list(ELEMENTS), "source": source_note, "targets": targets,
      "similarity": distances, "kernel_similarity": kernel,
      "model": common.model_description(config.run),
      "modes": list(config.modes), "num_seeds": int(config.num_seeds),
      "data": {"source": source_note, **data}, "table": table,
      "folder_targets": [config.targets[t].note for t in targets
                         if config.targets[t].get("note")],
      "table2_targets": t2_targets, "table2": table2(table, t2_targets),
  }
  results["summary"] = summary(results)
  results["figures"] = _figures(results, workdir)
  return common.write_results(workdir, results, claims(results))


def table2(table: dict, targets: Sequence[str]) -> dict[str, dict[str, float]]:
  """Per target: mean scratch / fine-tuned test error and the relative improvement."""
  out = {}
  for t in targets:
    modes = table.get(t, {})
    if "scratch" not in modes or "finetune" not in modes:
      continue
    s = float(np.mean(modes["scratch"]["test_error"]))
    f = float(np.mean(modes["finetune"]["test_error"]))
    out[t] = {"scratch_test_error": s, "finetune_test_error": f,
              "improvement": (s - f) / s if s > 0 else 0.0,
              "scratch_deviation": float(np.mean(modes["scratch"]["deviation"]))}
  return out


def summary(results: dict[str, Any]) -> str:
  lines = []
  if results.get("similarity"):
    lines += ["Targets ordered by their BatchNorm-statistics distance to the source (smaller is "
              "more similar; computed before training): "
              + ", ".join(f"{t} {results['similarity'][t]:.3f}" for t in results["targets"]), ""]
  if results.get("kernel_similarity"):
    lines += ["Kernel complexity of each target's labels on the pretrained features (the "
              "theory's similarity, Theorem 2; smaller is more similar; computed before "
              "training): " + ", ".join(f"{t} {results['kernel_similarity'][t]:.3f}"
                                         for t in results["targets"]), ""]
  lines += [f"Image-folder target {n}" for n in results.get("folder_targets") or ()]
  lines += ["| target | mode | train err % | test err % | deviation |", "|---|---|---|---|---|"]
  for t in results["targets"]:
    for m in results["modes"]:
      e = results["table"].get(t, {}).get(m)
      if e:
        lines.append(f"| {t} | {m} | {common.fmt_pm(e['train_error'], 100)} | "
                     f"{common.fmt_pm(e['test_error'], 100)} | "
                     f"{common.fmt_pm(e['deviation'], digits=3)} |")
  lines.append("")
  lines.append("| target | scratch err % | fine-tuned err % | improvement |")
  lines.append("|---|---|---|---|")
  for t, v in results["table2"].items():
    lines.append(f"| {t} | {100 * v['scratch_test_error']:.2f} | "
                 f"{100 * v['finetune_test_error']:.2f} | {100 * v['improvement']:.1f}% |")
  return "\n".join(lines)


# -------------------------------------------------------------------------- claims


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
  """Spearman rank correlation (average ranks for ties); nan for fewer than 2 points."""
  if len(x) < 2:
    return float("nan")

  def ranks(v):
    v = np.asarray(v, np.float64)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=np.float64)
    for val in np.unique(v):
      tie = v == val
      r[tie] = r[tie].mean()
    return r

  rx, ry = ranks(x), ranks(y)
  if rx.std() == 0 or ry.std() == 0:
    return float("nan")
  return float(np.corrcoef(rx, ry)[0, 1])


def increasing_fraction(curve: Sequence[float], rtol: float = 1e-3) -> float:
  """Share of consecutive points where the curve does not decrease (up to rtol of its max)."""
  c = np.asarray(curve, np.float64)
  if len(c) < 2:
    return float("nan")
  tol = rtol * max(float(np.abs(c).max()), 1e-12)
  return float(np.mean(np.diff(c) >= -tol))


def _mean(v) -> float:
  return float(np.mean(v)) if len(v) else float("nan")


def spearman_bootstrap_low(x_runs: Sequence[Sequence[float]], y_runs: Sequence[Sequence[float]],
                           resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> float | None:
  """Lower end of the one-sided 95% bootstrap interval of Spearman(mean x, mean y) across
  targets, resampling each target's runs (x and y of a run together) with replacement.

  None when every target has a single run (no noise estimate). A resample whose ranks are
  all tied (correlation undefined) counts as 0. Fixed seed: the same numbers give the same
  verdict.
  """
  xs = [np.asarray(v, np.float64) for v in x_runs]
  ys = [np.asarray(v, np.float64) for v in y_runs]
  if all(len(v) < 2 for v in xs):
    return None
  rng = np.random.default_rng(seed)
  rhos = []
  for _ in range(resamples):
    idx = [rng.integers(0, len(v), len(v)) for v in xs]
    rho = spearman([x[i].mean() for x, i in zip(xs, idx)], [y[i].mean() for y, i in zip(ys, idx)])
    rhos.append(rho if np.isfinite(rho) else 0.0)
  return float(np.percentile(rhos, 5))


def converged_fraction(curve: Sequence[float]) -> float:
  """Share of the final value added over the last recorded interval (nan if undefined)."""
  c = np.asarray(curve, np.float64)
  if len(c) < 2 or not np.isfinite(c[-1]) or c[-1] == 0:
    return float("nan")
  return float((c[-1] - c[-2]) / abs(c[-1]))


def _improvements(table: dict, target: str) -> list[float]:
  """Per fine-tuning seed: (mean scratch error - its error) / mean scratch error (Table 2)."""
  s = _mean(table[target]["scratch"]["test_error"])
  return [(s - f) / s if s > 0 else 0.0 for f in table[target]["finetune"]["test_error"]]


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Table 1, Fig 2 and Table 2 verdicts computed from `results["table"]` (per-seed lists)."""
  table, targets = results["table"], [t for t in results["targets"] if t in results["table"]]
  why = common.qualifiers(list(results.get("data", {}).values()),
                         "ImageNet-pretrained ResNet-50 on Office/Cars/Caltech/CUB",
                         results.get("model") or "LeNet")
  out = []
  tm = [m for m in ("fixed", "finetune") if any(m in table[t] for t in targets)]
  words = {"fixed": "fixed", "finetune": "fine-tuned"}

  # (1) "for both settings and for all target datasets, the training error converges to
  # nearly zero while the generalization error varies significantly".
  checks1 = []
  test_errs = {m: {t: _mean(table[t][m]["test_error"]) for t in targets if m in table[t]}
               for m in tm}
  for m in tm:
    for t in targets:
      if m in table[t]:
        checks1.append(common.at_most(
            f"train error nearly zero ({words[m]}, {t})", table[t][m]["train_error"],
            TRAIN_ERROR_NEAR_ZERO, scale=100, digits=2, unit="%", what="train error"))
  for m in tm:
    errs = test_errs[m]
    if len(errs) < 2:
      checks1.append(common.Check(f"test error varies across targets ({words[m]})", False,
                                  "fewer than 2 targets"))
      continue
    hi, lo = max(errs, key=errs.get), min(errs, key=errs.get)
    checks1.append(common.greater(
        f"test error varies across targets ({words[m]}): {hi} above {lo} by more than "
        f"{100 * TEST_ERROR_SPREAD:g} points",
        table[hi][m]["test_error"], table[lo][m]["test_error"], margin=TEST_ERROR_SPREAD,
        scale=100, digits=2, unit="%", what=f"test error {hi} vs {lo}"))
  worst_train = max((_mean(table[t][m]["train_error"]) for t in targets for m in tm
                     if m in table[t]), default=float("nan"))
  spread = max((max(v.values()) - min(v.values()) for v in test_errs.values() if v),
               default=0.0)
  out.append(common.Claim(
      "Table 1",
      "For both settings (fixed, fine-tuned) and every target, the training error converges "
      "to nearly zero while the test error varies significantly across targets.",
      "train error 0.00-0.15%; test error 0.45% (Webcam) to 35.1% (CUB-200, fixed)",
      f"max train error {100 * worst_train:.2f}%; test error spread across targets "
      f"{100 * spread:.1f} points ("
      + ", ".join(f"{m}: " + "/".join(f"{100 * e:.1f}" for e in v.values())
                  for m, v in test_errs.items()) + ")",
      checks1, why))

  # (2) "Datasets with larger visual similarity to ImageNet have smaller deviations ...
  # approximately proportional to the generalization error".
  rhos, checks2 = {}, []
  for m in tm:
    ts = [t for t in targets if m in table[t]]
    devs = [table[t][m]["deviation"] for t in ts]
    errs = [table[t][m]["test_error"] for t in ts]
    rhos[m] = spearman([_mean(d) for d in devs], [_mean(e) for e in errs])
    low = spearman_bootstrap_low(devs, errs)
    name = f"deviation ordered like the test error across targets ({words[m]})"
    numbers = f"Spearman rank correlation of the means over {len(ts)} targets {rhos[m]:.2f}"
    if low is None:
      checks2.append(common.Check(name, bool(np.isfinite(rhos[m]) and rhos[m] >= RANK_THRESHOLD),
                                  f"{numbers} (≥ 0.8; {common.SINGLE_RUN})"))
    else:
      checks2.append(common.Check(
          name, bool(np.isfinite(rhos[m]) and rhos[m] >= RANK_THRESHOLD and low > 0),
          f"{numbers} (≥ 0.8), bootstrap 5th percentile over seeds {low:.2f} (> 0)"))
  # The similarity half, with a similarity that sees labels and features: the theory's
  # kernel complexity of each target on the pretrained features (smaller: more similar).
  kernel = results.get("kernel_similarity") or {}
  krhos = {}
  for m in tm:
    ts = [t for t in targets if m in table[t] and t in kernel]
    if len(ts) < 2:
      continue
    devs = [table[t][m]["deviation"] for t in ts]
    krhos[m] = spearman([kernel[t] for t in ts], [_mean(d) for d in devs])
    low = spearman_bootstrap_low(devs, [[kernel[t]] * len(d) for t, d in zip(ts, devs)])
    name = (f"more similar targets (smaller kernel complexity) deviate less ({words[m]})")
    numbers = f"Spearman(kernel complexity, deviation) over {len(ts)} targets {krhos[m]:.2f}"
    ok = bool(np.isfinite(krhos[m]) and krhos[m] >= RANK_THRESHOLD)
    if low is None:
      checks2.append(common.Check(name, ok, f"{numbers} (≥ 0.8; {common.SINGLE_RUN})"))
    else:
      checks2.append(common.Check(name, ok and low > 0, f"{numbers} (≥ 0.8), bootstrap 5th "
                                                       f"percentile over seeds {low:.2f} (> 0)"))
  out.append(common.Claim(
      "Table 1 / Fig 2",
      "Targets more similar to the source keep the weights closer to the pretrained ones: "
      "the deviation is ordered like (roughly proportional to) the test error.",
      "fixed: deviation 0.015 (Synthetic) .. 0.262 (CUB-200) tracks test error 0.81 .. 35.1%",
      "Spearman(deviation, test error) across targets: "
      + ", ".join(f"{m} {r:.2f}" for m, r in rhos.items())
      + ("; Spearman(kernel complexity, deviation): "
         + ", ".join(f"{m} {r:.2f}" for m, r in krhos.items()) if krhos else ""),
      checks2 or [common.Check("deviation ordered like the test error", False, "no runs")],
      why))

  # (3) Table 2 / B.3: "ImageNet pretraining improves the generalization performance of
  # general coarse-grained classification tasks significantly, yet the performance boost is
  # smaller for fine-grained tasks which are dissimilar".
  t2 = results.get("table2") or table2(table, targets)
  order = [t for t in targets if t in t2]
  left_out = [t for t in targets if t not in t2]
  if order:
    imps = [t2[t]["improvement"] for t in order]
    checks3 = [common.less(f"fine-tuning beats scratch on {t}",
                           table[t]["finetune"]["test_error"], table[t]["scratch"]["test_error"],
                           scale=100, digits=2, unit="%", what="test error fine-tuned vs scratch")
               for t in order]
    half = max(1, len(order) // 2)
    sim_t, dis_t = order[:half], order[-half:]
    if len(order) > 1:
      checks3.append(common.greater(
          f"improvement larger on the similar half ({', '.join(sim_t)}) than on the dissimilar "
          f"half ({', '.join(dis_t)})",
          [i for t in sim_t for i in _improvements(table, t)],
          [i for t in dis_t for i in _improvements(table, t)],
          scale=100, digits=1, unit="%", what="per-seed improvement"))
    similar, dissimilar = (_mean([t2[t]["improvement"] for t in ts]) for ts in (sim_t, dis_t))
    ours = (", ".join(f"{t} {100 * i:.1f}%" for t, i in zip(order, imps))
            + f"; similar half {100 * similar:.1f}% vs dissimilar half {100 * dissimilar:.1f}%"
            + (f" (not in Table 2, as the paper's Table 2 leaves out Synthetic: "
               f"{', '.join(left_out)})" if left_out else ""))
  else:
    ours = "no scratch/fine-tune pair was run"
    checks3 = [common.Check("fine-tuning beats scratch", False, ours)]
  # Test errors of networks that have not fit their training data compare training
  # lengths, not minima: inconclusive (the paper trains both to convergence).
  unfit = [f"{t} {m}: training error {100 * _mean(table[t][m]['train_error']):.1f}% > "
           f"{100 * convergence.MAX_TRAIN_ERROR:g}%"
           for t in order for m in ("scratch", "finetune")
           if m in table[t] and not _mean(table[t][m]["train_error"]) <= convergence.MAX_TRAIN_ERROR]
  out.append(common.Claim(
      "Table 2",
      "Fine-tuning from the pretrained network improves on training from scratch on every "
      "target, much more for targets similar to the source than for dissimilar ones.",
      "improvement 98.3% Webcam, 79.4% Caltech-101 vs 48.8% Stanford Cars, 60.2% CUB-200",
      ours, checks3, why,
      inconclusive=f"not at a minimum ({'; '.join(unfit)})" if unfit else ""))

  # (4) Fig 2: "increases monotonously throughout the training process and eventually
  # converges".
  checks4, fracs = [], {}
  for m in tm:
    per_target = {t: _mean([increasing_fraction(c) for c in table[t][m]["curves"]])
                  for t in targets if m in table[t]}
    fracs[m] = _mean(list(per_target.values()))
    worst = min(per_target, key=lambda t: per_target[t] if np.isfinite(per_target[t]) else -1)
    checks4.append(common.at_least(
        f"deviation increases monotonically on every target ({words[m]})", per_target[worst],
        MONOTONE_FRACTION, digits=2,
        what=f"least monotone target {worst}: fraction of non-decreasing steps"))
    last = {t: _mean([converged_fraction(c) for c in table[t][m]["curves"]])
            for t in targets if m in table[t]}
    slowest = max(last, key=lambda t: last[t] if np.isfinite(last[t]) else np.inf)
    checks4.append(common.Check(
        f"deviation eventually converges on every target ({words[m]})",
        bool(np.isfinite(last[slowest]) and last[slowest] <= CONVERGED_FRACTION),
        f"least converged target {slowest}: the last recorded interval adds "
        f"{100 * last[slowest]:.1f}% of the final deviation (≤ {100 * CONVERGED_FRACTION:g}%; "
        f"mean over seeds)"))
  out.append(common.Claim(
      "Fig 2",
      "The deviation from the pretrained weights increases monotonically throughout training "
      "and eventually converges (last layer when fixed, all layers when fine-tuned).",
      "monotone increasing curves that level off, for every target",
      "fraction of consecutive non-decreasing steps: "
      + ", ".join(f"{m} {f:.2f}" for m, f in fracs.items()),
      checks4 or [common.Check("deviation increases monotonically", False, "no runs")], why))
  return out


# -------------------------------------------------------------------------- figures


def _figures(results: dict[str, Any], workdir: str) -> list[str]:
  table, targets = results["table"], results["targets"]
  fig, axes = plotting.subplots(1, 2, figsize=(10, 4))
  for ax, mode, label in ((axes[0], "fixed", "last layer (fixed)"),
                          (axes[1], "finetune", "all layers (fine-tuned)")):
    for t in targets:
      e = table.get(t, {}).get(mode)
      if not e:
        continue
      # Runs trained to convergence stop at different steps: their curves share the
      # evaluation schedule, so mean and spread are drawn over the shortest one.
      n = min(len(c) for c in e["curves"])
      curves = np.asarray([c[:n] for c in e["curves"]], np.float64)
      steps = e["curve_steps"][:n]
      m, s = curves.mean(0), curves.std(0)
      ax.plot(steps, m, marker="o", ms=3, label=t)
      ax.fill_between(steps, m - s, m + s, alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\|W - W_0\|_F / \sqrt{n}$")
    ax.set_title(label)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  fig.suptitle("Fig 2: deviation from the starting weights during transfer")
  plotting.save_figure(fig, os.path.join(workdir, FIGURES[0]))

  errors = {m: [table.get(t, {}).get(m, {}).get("test_error", []) for t in targets]
            for m in results["modes"]}
  plotting.grouped_bars(
      os.path.join(workdir, FIGURES[1]),
      {m: [100 * _mean(e) for e in errs] for m, errs in errors.items()}, targets,
      errors={m: [100 * float(np.std(e or [0.0])) for e in errs] for m, errs in errors.items()},
      ylabel="test error (%)",
      title="Table 1 / Table 2: test error per target (most similar first)")
  return list(FIGURES)
