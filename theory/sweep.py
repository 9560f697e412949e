"""The width / seed / similarity sweep behind experiments/verify_theory.py.

`run(config, workdir)` validates the config, estimates memory, measures every check on
the main synthetic task, the real tasks and a grid of synthetic tasks of varying
similarity, caches each (task, m, seed) measurement in workdir/cache so a killed run
resumes, and writes workdir/results.json and workdir/report.md (+ figures).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import time
from typing import Any, Callable

from absl import logging
import numpy as np

from theory import report, tasks, theorems, twolayer
from theory.errors import ConfigError

_CHECKS = theorems.EQUALITY_CHECKS + theorems.BOUND_CHECKS


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_tuple(low: int, high: int) -> Callable[[Any], bool]:
  return lambda v: (isinstance(v, (tuple, list)) and len(v) > 0
                    and all(_is_int(x) and low <= x <= high for x in v))


def _number_tuple(low: float, high: float) -> Callable[[Any], bool]:
  return lambda v: (isinstance(v, (tuple, list)) and len(v) > 0
                    and all(_is_number(x) and low <= x <= high for x in v))


def _positive(v: Any) -> bool:
  return _is_number(v) and v > 0


def _positive_int(v: Any) -> bool:
  return _is_int(v) and v > 0


# key -> (validator, what a good value is). Nested dicts are sub-configs.
_SCHEMA: dict[str, Any] = {
    "preset": (lambda v: isinstance(v, str), "a string"),
    "log2_widths": (_int_tuple(1, 30), "a non-empty tuple of ints in [1, 30]"),
    "seeds": (_int_tuple(0, 2**31 - 1), "a non-empty tuple of non-negative ints"),
    "kappa": (_positive, "a positive number"),
    "eta": (_is_number, "a number (<= 0 for 1/lambda_max)"),
    "tol": (_positive, "a positive number"),
    "max_steps": (_positive_int, "a positive int"),
    "strict_inputs": (lambda v: isinstance(v, bool), "a bool"),
    "memory_limit_gib": (_positive, "a positive number"),
    "relative_tolerance": (_positive, "a positive number"),
    "rank_threshold": (lambda v: _is_number(v) and -1 <= v <= 1, "a number in [-1, 1]"),
    "synthetic": {
        "seed": (lambda v: _is_int(v) and v >= 0, "a non-negative int"),
        "dim": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
        "n_source": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
        "n_target": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
        "spread": (_positive, "a positive number"),
        "sharpness": (_positive, "a positive number"),
        "angle_deg": (_is_number, "a number (degrees)"),
        "label_mix": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    },
    "similarity": {
        "angles_deg": (_number_tuple(-360, 360), "a non-empty tuple of angles in degrees"),
        "label_mixes": (_number_tuple(0, 1), "a non-empty tuple of numbers in [0, 1]"),
        "log2_width": (lambda v: _is_int(v) and 1 <= v <= 30, "an int in [1, 30]"),
        "seeds": (_int_tuple(0, 2**31 - 1), "a non-empty tuple of non-negative ints"),
    },
    "real": {
        "kinds": (lambda v: isinstance(v, (tuple, list))
                  and all(k in tasks.REAL_KINDS for k in v),
                  f"a tuple of kinds from {sorted(tasks.REAL_KINDS)} (may be empty)"),
        "seed": (lambda v: _is_int(v) and v >= 0, "a non-negative int"),
        "dim": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
        "n_source": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
        "n_target": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
        "log2_widths": (_int_tuple(1, 30), "a non-empty tuple of ints in [1, 30]"),
        "seeds": (_int_tuple(0, 2**31 - 1), "a non-empty tuple of non-negative ints"),
        "data_dir": (lambda v: isinstance(v, str), "a path string ('' for the env var)"),
    },
}


def _as_dict(config: Any) -> dict[str, Any]:
  return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def validate_config(config: Any) -> dict[str, Any]:
  """Checks keys and values against the schema before any heavy work.

  Args:
    config: ml_collections.ConfigDict or dict.

  Returns:
    The config as a plain dict.

  Raises:
    ConfigError: naming every unknown or missing key and every bad value.
  """
  values = _as_dict(config)
  problems: list[str] = []

  def visit(schema: dict[str, Any], node: Any, prefix: str) -> None:
    if not isinstance(node, dict):
      problems.append(f"{prefix.rstrip('.')} must be a sub-config")
      return
    for key in sorted(set(node) - set(schema)):
      problems.append(f"unknown key {prefix}{key}")
    for key in sorted(set(schema) - set(node)):
      problems.append(f"missing key {prefix}{key}")
    for key, rule in schema.items():
      if key not in node:
        continue
      if isinstance(rule, dict):
        visit(rule, node[key], f"{prefix}{key}.")
      elif not rule[0](node[key]):
        problems.append(f"{prefix}{key} = {node[key]!r} should be {rule[1]}")

  visit(_SCHEMA, values, "")
  if problems:
    raise ConfigError("bad theory config: " + "; ".join(problems) + ".")
  return values


def settings_from(config: dict[str, Any]) -> theorems.TrainSettings:
  """Training settings of a validated config."""
  return theorems.TrainSettings(kappa=float(config["kappa"]), eta=float(config["eta"]),
                                tol=float(config["tol"]), max_steps=int(config["max_steps"]),
                                strict_inputs=bool(config["strict_inputs"]),
                                memory_limit_bytes=float(config["memory_limit_gib"]) * 2**30)


def _check_memory_up_front(config: dict[str, Any]) -> None:
  """Refuses, before any training, a sweep whose largest width will not fit."""
  limit = float(config["memory_limit_gib"]) * 2**30
  syn, real, sim = config["synthetic"], config["real"], config["similarity"]
  n_syn = max(syn["n_source"], syn["n_target"])
  twolayer.check_memory(2 ** max(config["log2_widths"]), syn["dim"], n_syn, limit)
  twolayer.check_memory(2 ** sim["log2_width"], syn["dim"], n_syn, limit)
  if real["kinds"]:
    twolayer.check_memory(2 ** max(real["log2_widths"]), real["dim"],
                          max(real["n_source"], real["n_target"]), limit)


def build_tasks(config: dict[str, Any]) -> tuple[tasks.TaskPair, list[tasks.TaskPair],
                                                 list[tasks.TaskPair]]:
  """Returns (main synthetic task, real tasks, similarity-grid tasks)."""
  syn = config["synthetic"]

  def synthetic(angle_deg: float, mix: float) -> tasks.TaskPair:
    return tasks.synthetic_task(syn["seed"], syn["dim"], syn["n_source"], syn["n_target"],
                                math.radians(angle_deg), mix, syn["spread"], syn["sharpness"])

  main = synthetic(syn["angle_deg"], syn["label_mix"])
  real_cfg = config["real"]
  real = [tasks.real_task(kind, real_cfg["seed"], real_cfg["dim"], real_cfg["n_source"],
                          real_cfg["n_target"], real_cfg["data_dir"] or None)
          for kind in real_cfg["kinds"]]
  grid = [synthetic(angle, mix) for angle in config["similarity"]["angles_deg"]
          for mix in config["similarity"]["label_mixes"]]
  return main, real, grid


def _config_hash(config: dict[str, Any]) -> str:
  # Only what changes the numbers: not the verdict thresholds or the preset name.
  relevant = {k: v for k, v in config.items()
              if k not in ("preset", "relative_tolerance", "rank_threshold", "memory_limit_gib")}
  return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=list).encode()).hexdigest()[:12]


def _finite_or_none(data: Any) -> Any:
  """Replaces NaN/inf (e.g. the slope of a single width) by None so the JSON is strict."""
  if isinstance(data, dict):
    return {key: _finite_or_none(value) for key, value in data.items()}
  if isinstance(data, (list, tuple)):
    return [_finite_or_none(value) for value in data]
  if isinstance(data, (float, np.floating)):
    return float(data) if math.isfinite(data) else None
  if isinstance(data, np.integer):
    return int(data)
  if isinstance(data, np.bool_):
    return bool(data)
  return data


def _write_json(path: pathlib.Path, data: Any) -> None:
  temporary = path.with_suffix(path.suffix + ".tmp")
  temporary.write_text(json.dumps(_finite_or_none(data), indent=1, allow_nan=False))
  os.replace(temporary, path)  # Atomic: a killed run never leaves half a file.


class _Measurer:
  """Measures (task, m, seed) once, caching each result in workdir/cache."""

  def __init__(self, workdir: pathlib.Path, config: dict[str, Any], total: int):
    self.cache = workdir / "cache"  # created at the first result, so a failed start leaves none
    self.key = _config_hash(config)
    self.settings = settings_from(config)
    self.total, self.done, self.start = total, 0, time.time()
    self.measured, self.measured_s = 0, 0.0
    self._kernels: dict[str, theorems.Kernels] = {}

  def kernels(self, task: tasks.TaskPair) -> theorems.Kernels:
    if task.name not in self._kernels:
      self._kernels[task.name] = theorems.kernels(task, self.settings.strict_inputs)
    return self._kernels[task.name]

  def __call__(self, task: tasks.TaskPair, width: int, seed: int) -> dict[str, Any]:
    path = self.cache / f"{task.name}_m{width}_s{seed}_{self.key}.json"
    self.done += 1
    if path.exists():
      return json.loads(path.read_text())
    began = time.time()
    result = theorems.measure(task, self.kernels(task), width, seed, self.settings)
    self.cache.mkdir(parents=True, exist_ok=True)
    _write_json(path, result)
    self.measured_s += time.time() - began
    self.measured += 1
    # Widths differ in cost, so this is the average so far; cached points cost nothing.
    left = (self.total - self.done) * self.measured_s / self.measured
    logging.info("[%d/%d] %s m=%d seed=%d: thm1 rel.err %.3g, thm2 rel.err %.3g (%.1fs elapsed, "
                 "about %.0fs left)", self.done, self.total, task.name, width, seed,
                 result["theorem1"]["relative_error"], result["theorem2"]["relative_error"],
                 time.time() - self.start, left)
    return result


def _sweep_task(measurer: _Measurer, task: tasks.TaskPair, log2_widths, seeds,
                tolerance: float) -> dict[str, Any]:
  kern = measurer.kernels(task)
  rows_by_check: dict[str, list[dict[str, Any]]] = {check: [] for check in _CHECKS}
  training = []
  for log2_width in log2_widths:
    for seed in seeds:
      result = measurer(task, 2**log2_width, seed)
      for check in _CHECKS:
        rows_by_check[check].append({"m": 2**log2_width, "seed": seed, **result[check]})
      training.append({"m": 2**log2_width, "seed": seed, **result["training"]})
  checks = {}
  for check, rows in rows_by_check.items():
    verdict = (theorems.equality_verdict(rows, tolerance) if check in theorems.EQUALITY_CHECKS
               else theorems.bound_verdict(rows))
    checks[check] = {"claim": theorems.CLAIMS[check], "rows": rows,
                     "per_width": theorems.per_width(rows), "slope": verdict["slope"],
                     "verdict": verdict}
  return {"task": task.summary(),
          "spectrum": {"lambda_P": kern.spectrum_source.lambda_min,
                       "lambda_max_P": kern.spectrum_source.lambda_max,
                       "lambda_Q": kern.spectrum_target.lambda_min,
                       "lambda_max_Q": kern.spectrum_target.lambda_max},
          "checks": checks, "training": training}


def _similarity(measurer: _Measurer, grid: list[tasks.TaskPair], config: dict[str, Any]):
  sim = config["similarity"]
  width = 2 ** sim["log2_width"]
  rows = []
  for task in grid:
    results = [measurer(task, width, seed) for seed in sim["seeds"]]

    def mean(check: str, key: str) -> float:
      return float(np.mean([r[check][key] for r in results]))

    rows.append({"task": task.name, **task.similarity, "m": width,
                 "finetune_measured": mean("theorem2", "measured"),
                 "finetune_predicted": mean("theorem2", "predicted"),
                 "scratch_measured": mean("theorem2_scratch", "measured"),
                 "scratch_predicted": mean("theorem2_scratch", "predicted"),
                 "gradient_measured": mean("theorem1", "measured"),
                 "gradient_predicted": mean("theorem1", "predicted")})
  threshold = config["rank_threshold"]
  finetune = theorems.similarity_verdict([r["finetune_measured"] for r in rows],
                                         [r["finetune_predicted"] for r in rows], threshold)
  gradient = theorems.similarity_verdict([r["gradient_measured"] for r in rows],
                                         [r["gradient_predicted"] for r in rows], threshold)
  predicted_gain = [r["finetune_predicted"] < r["scratch_predicted"] for r in rows]
  measured_gain = [r["finetune_measured"] < r["scratch_measured"] for r in rows]
  agree = sum(p == q for p, q in zip(predicted_gain, measured_gain))
  return {"m": width, "seeds": list(sim["seeds"]), "rows": rows,
          "theorem2_rank": finetune, "theorem1_rank": gradient,
          "finetune_vs_scratch": {
              "agree": agree, "total": len(rows),
              "text": (f"fine-tuning moves less than training from scratch in "
                       f"{sum(measured_gain)}/{len(rows)} tasks (predicted: "
                       f"{sum(predicted_gain)}/{len(rows)}); the prediction matches in "
                       f"{agree}/{len(rows)}")}}


def run(config: Any, workdir: str | os.PathLike[str]) -> dict[str, Any]:
  """Runs (or resumes) the whole verification and writes results.json and report.md.

  Args:
    config: the theory config (see configs/theory.py).
    workdir: output folder (created).

  Returns:
    The results dict that was written to workdir/results.json.

  Raises:
    ConfigError, MemoryBudgetError, MissingDataError, SingularGramError, DivergenceError,
    OffSphereError, LabelRangeError: bad input, each with one message.
  """
  values = validate_config(config)
  _check_memory_up_front(values)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  results_path = workdir / "results.json"
  if results_path.exists():
    previous = json.loads(results_path.read_text())
    if previous.get("config") == json.loads(json.dumps(values, default=list)):
      logging.info("Reusing %s (same config); rewriting the report.", results_path)
      report.write_report(previous, workdir)
      return previous

  main, real, grid = build_tasks(values)
  total = (len(values["log2_widths"]) * len(values["seeds"])
           + len(real) * len(values["real"]["log2_widths"]) * len(values["real"]["seeds"])
           + len(grid) * len(values["similarity"]["seeds"]))
  measurer = _Measurer(workdir, values, total)
  start = time.time()
  tolerance = values["relative_tolerance"]
  main_sweep = _sweep_task(measurer, main, values["log2_widths"], values["seeds"], tolerance)
  real_sweeps = [_sweep_task(measurer, task, values["real"]["log2_widths"],
                             values["real"]["seeds"], tolerance) for task in real]
  similarity = _similarity(measurer, grid, values)

  results: dict[str, Any] = {
      "config": json.loads(json.dumps(values, default=list)),
      "task": main.summary(),
      "slopes": {check: main_sweep["checks"][check]["slope"] for check in _CHECKS},
      "verdicts": {check: main_sweep["checks"][check]["verdict"] for check in _CHECKS},
      "main": main_sweep,
      "real": real_sweeps,
      "similarity": similarity,
      "wall_time_s": time.time() - start,
  }
  for check in _CHECKS:  # Top-level lists of {"m", "seed", "measured", ...} per check.
    results[check] = main_sweep["checks"][check]["rows"]
  results = _finite_or_none(results)
  report.write_report(results, workdir)
  _write_json(results_path, results)
  logging.info("Wrote %s and %s in %.1fs.", results_path, workdir / "report.md",
               time.time() - start)
  return results
