"""Measured vs predicted quantities of Theorems 1-3 and Lemmas 1, 3, 4 (Section 6, App. C).

`measure` runs pretraining, fine-tuning and from-scratch training at one width and seed and
returns one record per check; `summarize` turns records over widths and seeds into
means, spreads, log-log slopes and verdicts computed from the numbers.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import scipy.stats

from theory import gram, twolayer
from theory.tasks import TaskPair, check_inputs

# Checks whose prediction is an (asymptotic) equality: judged by relative error.
EQUALITY_CHECKS = ("theorem1", "theorem1_linearized", "theorem1_vector", "theorem2", "theorem2_scratch", "lemma3")
# Checks whose prediction is an upper bound: judged by measured <= predicted.
BOUND_CHECKS = ("lemma1", "lemma4", "theorem3")
CLAIMS = {
    "theorem1": "||dL(W(P))/dX1||^2 = ||dL(W(0))/dX1||^2 - y_Q'y_Q + ||y_Q - y_P->Q||^2",
    "theorem1_linearized": ("||u_Q(P) - y_Q||^2 = ||u_Q(0) + H_PQ' H_P^-1 (y_P - u_P(0)) - y_Q||^2"
                            " (Theorem 1 keeping the O(kappa) terms of u(0) it drops)"),
    "theorem1_vector": "u_Q(P) -> y_P->Q (relative error ||u_Q(P) - y_P->Q|| / ||y_P->Q||)",
    "theorem2": "||W(Q) - W(P)||_F -> sqrt((y_Q - y_P->Q)' H_Q^-1 (y_Q - y_P->Q))",
    "theorem2_scratch": "||W_scratch(Q) - W(0)||_F -> sqrt(y_Q' H_Q^-1 y_Q)",
    "lemma3": "||Z_P(0)' Z_Q(P) - H_PQ||_F -> 0 (relative to ||H_PQ||_F)",
    "lemma1": "max_r ||w_r(P) - w_r(0)|| <= 4 sqrt(n_P) ||y_P - u_P(0)|| / (sqrt(m) lambda_P)",
    "lemma4": "max_r,k ||w_Q,r(k) - w_r(0)|| <= eq. 33 bound",
    "theorem3": "||u_Q(k) - y_Q||^2 <= (1 - eta lambda_Q / 2)^k ||u_Q(P) - y_Q||^2",
}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """How to train. eta <= 0 means 1 / lambda_max(H_inf) of the set trained on."""

  kappa: float = 0.02
  eta: float = 0.0
  tol: float = 1e-3
  max_steps: int = 20000
  strict_inputs: bool = False
  memory_limit_bytes: float = 8 * 2**30


@dataclasses.dataclass(frozen=True)
class Kernels:
  """Infinite-width quantities of a task pair (width independent)."""

  x_source: np.ndarray
  x_target: np.ndarray
  gram_source: np.ndarray
  gram_target: np.ndarray
  gram_cross: np.ndarray
  spectrum_source: gram.Spectrum
  spectrum_target: gram.Spectrum
  transformed_labels: np.ndarray  # y_{P->Q}
  finetune_norm: float  # sqrt((y_Q - y_P->Q)' H_Q^-1 (y_Q - y_P->Q))
  scratch_norm: float  # sqrt(y_Q' H_Q^-1 y_Q)


def kernels(task: TaskPair, strict: bool = False) -> Kernels:
  """Validates the task and computes its closed-form Gram matrices and predictions."""
  x_source = check_inputs(task.x_source, task.y_source, f"{task.name} source", strict)
  x_target = check_inputs(task.x_target, task.y_target, f"{task.name} target", strict)
  gram_source = gram.gram_inf_sym(x_source)
  gram_target = gram.gram_inf_sym(x_target)
  spectrum_source = gram.check_invertible(gram_source, f"H_inf_P of {task.name}")
  spectrum_target = gram.check_invertible(gram_target, f"H_inf_Q of {task.name}")
  gram_cross = gram.gram_inf(x_source, x_target)
  transformed = gram.transformed_labels(gram_source, gram_cross, task.y_source)
  return Kernels(x_source, x_target, gram_source, gram_target, gram_cross, spectrum_source,
                 spectrum_target, transformed,
                 gram.kernel_norm(gram_target, task.y_target - transformed),
                 gram.kernel_norm(gram_target, task.y_target))


def _record(measured: float, predicted: float, **extra: Any) -> dict[str, Any]:
  relative = abs(measured - predicted) / abs(predicted) if predicted else float("inf")
  return {"measured": float(measured), "predicted": float(predicted),
          "relative_error": float(relative), **extra}


def _rate_check(trajectory: twolayer.Trajectory, eta: float, lambda_min: float) -> dict[str, Any]:
  """Worst ratio of ||u(k) - y||^2 to the Theorem 3 envelope along the recorded steps."""
  contraction = 1.0 - eta * lambda_min / 2.0
  envelope = trajectory.residual_sq[0] * contraction ** trajectory.steps.astype(np.float64)
  ratios = trajectory.residual_sq / np.maximum(envelope, 1e-300)
  # Step 0 is the envelope's anchor (ratio 1 by definition); judge the steps after it.
  worst = float(np.max(ratios[1:])) if len(ratios) > 1 else 1.0
  predicted_steps = math.ceil(math.log(max(trajectory.residual_sq[-1], 1e-300)
                                       / trajectory.residual_sq[0]) / math.log(contraction))
  return {"measured": worst, "predicted": 1.0, "relative_error": max(worst - 1.0, 0.0),
          "holds": worst <= 1.0 + 1e-9, "steps_taken": trajectory.num_steps,
          "steps_allowed_by_rate": max(predicted_steps, 0)}


def _eta(settings: TrainSettings, spectrum: gram.Spectrum) -> float:
  return settings.eta if settings.eta > 0 else 1.0 / spectrum.lambda_max


def measure(task: TaskPair, kern: Kernels, width: int, seed: int,
            settings: TrainSettings) -> dict[str, Any]:
  """Trains at one width and seed and measures every check.

  Args:
    task: the pair (labels are read from it; inputs from `kern`, already validated).
    kern: its closed forms.
    width: m.
    seed: seed of W(0) and a.
    settings: training settings.

  Returns:
    {check name: record} plus "training" (steps, convergence) for this (m, seed).
  """
  n_max = max(kern.x_source.shape[0], kern.x_target.shape[0])
  twolayer.check_memory(width, kern.x_source.shape[1], n_max, settings.memory_limit_bytes)
  network = twolayer.init_network(seed, width, kern.x_source.shape[1], settings.kappa)
  y_source, y_target = task.y_source, task.y_target
  eta_source, eta_target = _eta(settings, kern.spectrum_source), _eta(settings, kern.spectrum_target)

  pretrain = twolayer.train(network, network.w_init, kern.x_source, y_source, eta_source,
                            settings.tol, settings.max_steps)
  finetune = twolayer.train(network, pretrain.w_final, kern.x_target, y_target, eta_target,
                            settings.tol, settings.max_steps)
  scratch = twolayer.train(network, network.w_init, kern.x_target, y_target, eta_target,
                           settings.tol, settings.max_steps)

  u_source_init = twolayer.outputs_at(network, network.w_init, kern.x_source)
  u_target_init = twolayer.outputs_at(network, network.w_init, kern.x_target)
  u_target_pretrained = twolayer.outputs_at(network, pretrain.w_final, kern.x_target)
  transformed = kern.transformed_labels
  lambda_p, lambda_q = kern.spectrum_source.lambda_min, kern.spectrum_target.lambda_min
  n_p, n_q = len(y_source), len(y_target)

  # Theorem 1 (eq. 14): ||dL/dX1||^2 = (1/m) a'a ||u_Q - y_Q||^2 = ||u_Q - y_Q||^2.
  gradient_sq_pretrained = float(np.sum((u_target_pretrained - y_target) ** 2))
  gradient_sq_init = float(np.sum((u_target_init - y_target) ** 2))
  theorem1_predicted = (gradient_sq_init - float(y_target @ y_target)
                        + float(np.sum((y_target - transformed) ** 2)))
  # The infinite-width linearisation keeps u(0) = O(kappa), which Theorem 1 drops; its
  # error isolates the finite-width part from the kappa bias.
  linearized = u_target_init + kern.gram_cross.T @ gram.solve_pos(kern.gram_source,
                                                                   y_source - u_source_init)
  cross_at_p = twolayer.activation_gram(network.w_init, kern.x_source, pretrain.w_final,
                                        kern.x_target)
  lemma3_error = float(np.linalg.norm(cross_at_p - kern.gram_cross))
  lemma1_bound = (4 * math.sqrt(n_p) * float(np.linalg.norm(y_source - u_source_init))
                  / (math.sqrt(width) * lambda_p))
  lemma4_bound = lemma1_bound + (4 * math.sqrt(n_q)
                                 * float(np.linalg.norm(y_target - u_target_pretrained))
                                 / (math.sqrt(width) * lambda_q))
  lemma1_measured = float(np.max(pretrain.max_neuron_distance))
  lemma4_measured = float(np.max(finetune.max_neuron_distance))
  return {
      "theorem1": _record(gradient_sq_pretrained, theorem1_predicted),
      "theorem1_linearized": _record(gradient_sq_pretrained,
                                     float(np.sum((linearized - y_target) ** 2))),
      "theorem1_vector": {
          "measured": float(np.linalg.norm(u_target_pretrained)),
          "predicted": float(np.linalg.norm(transformed)),
          "relative_error": float(np.linalg.norm(u_target_pretrained - transformed)
                                  / np.linalg.norm(transformed))},
      "theorem2": _record(float(np.linalg.norm(finetune.w_final - pretrain.w_final)),
                          kern.finetune_norm, converged=finetune.converged),
      "theorem2_scratch": _record(float(np.linalg.norm(scratch.w_final - network.w_init)),
                                  kern.scratch_norm, converged=scratch.converged),
      "lemma3": {"measured": lemma3_error, "predicted": 0.0,
                 "relative_error": lemma3_error / float(np.linalg.norm(kern.gram_cross))},
      "lemma1": {"measured": lemma1_measured, "predicted": lemma1_bound,
                 "relative_error": lemma1_measured / lemma1_bound,
                 "holds": lemma1_measured <= lemma1_bound},
      "lemma4": {"measured": lemma4_measured, "predicted": lemma4_bound,
                 "relative_error": lemma4_measured / lemma4_bound,
                 "holds": lemma4_measured <= lemma4_bound},
      "theorem3": _rate_check(finetune, eta_target, lambda_q),
      "training": {
          "eta_source": eta_source, "eta_target": eta_target,
          "pretrain_steps": pretrain.num_steps, "pretrain_converged": pretrain.converged,
          "finetune_steps": finetune.num_steps, "finetune_converged": finetune.converged,
          "scratch_steps": scratch.num_steps, "scratch_converged": scratch.converged,
          "finetune_trajectory": {"steps": finetune.steps.tolist(),
                                  "residual_sq": finetune.residual_sq.tolist()},
      },
  }


def loglog_slope(widths: Sequence[float], values: Sequence[float]) -> float:
  """Least-squares slope of log(value) against log(width); nan if under two usable points."""
  widths = np.asarray(widths, dtype=np.float64)
  values = np.asarray(values, dtype=np.float64)
  usable = (values > 0) & np.isfinite(values)
  if len(np.unique(widths[usable])) < 2:
    return float("nan")
  return float(np.polyfit(np.log(widths[usable]), np.log(values[usable]), 1)[0])


def per_width(rows: Sequence[dict[str, Any]], key: str = "relative_error") -> list[dict[str, Any]]:
  """Mean, std, min, max of `key` over seeds at each width, sorted by m."""
  widths = sorted({row["m"] for row in rows})
  table = []
  for width in widths:
    values = np.array([row[key] for row in rows if row["m"] == width], dtype=np.float64)
    table.append({"m": width, "mean": float(values.mean()), "std": float(values.std()),
                  "min": float(values.min()), "max": float(values.max()), "seeds": len(values)})
  return table


def equality_verdict(rows: Sequence[dict[str, Any]], tolerance: float) -> dict[str, Any]:
  """Verdict of an asymptotic-equality check from its rows (relative errors)."""
  table = per_width(rows)
  slope = loglog_slope([t["m"] for t in table], [t["mean"] for t in table])
  last = table[-1]
  decreasing = math.isfinite(slope) and slope < -0.05
  if last["mean"] <= tolerance and (decreasing or len(table) == 1):
    status = "holds"
    text = (f"holds at these widths: mean relative error {last['mean']:.3g} <= {tolerance:g} at "
            f"m={last['m']}, falling with log-log slope {slope:.2f}")
  elif decreasing:
    status = "approaching"
    text = (f"approaching but not yet within tolerance: relative error falls with slope "
            f"{slope:.2f} and is {last['mean']:.3g} (> {tolerance:g}) at m={last['m']}")
  elif last["mean"] <= tolerance:
    status = "holds"
    text = (f"holds at these widths (relative error {last['mean']:.3g} <= {tolerance:g} at "
            f"m={last['m']}) but does not fall further (slope {slope:.2f})")
  else:
    status = "does not hold"
    text = (f"does not hold at these widths: relative error {last['mean']:.3g} at m={last['m']} "
            f"and not falling (slope {slope:.2f})")
  return {"status": status, "slope": slope, "text": text}


def bound_verdict(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """Verdict of an upper-bound check: how many (m, seed) satisfy it, from which m on."""
  violations = [row for row in rows if not row["holds"]]
  widths = sorted({row["m"] for row in rows})
  failing_widths = sorted({row["m"] for row in violations})
  worst = max(row["measured"] / row["predicted"] for row in rows)
  table = per_width(rows, "measured")
  slope = loglog_slope([t["m"] for t in table], [t["mean"] for t in table])
  if not violations:
    status, text = "holds", f"holds at all {len(rows)} (m, seed) points"
  elif failing_widths[-1] < widths[-1]:
    from_width = min(w for w in widths if w > failing_widths[-1])
    status = "holds for large m"
    text = (f"violated at {len(violations)}/{len(rows)} points (m <= {failing_widths[-1]}), "
            f"holds for m >= {from_width}")
  else:
    status = "does not hold"
    text = f"violated at {len(violations)}/{len(rows)} points including the largest m"
  return {"status": status, "slope": slope, "text": text, "worst_ratio": float(worst)}


def similarity_verdict(measured: Sequence[float], predicted: Sequence[float],
                       threshold: float) -> dict[str, Any]:
  """Spearman rank correlation of measured against predicted deviations across tasks."""
  if len(measured) < 3:
    return {"status": "not tested", "spearman": float("nan"), "p_value": float("nan"),
            "text": "fewer than 3 tasks: rank correlation not computed"}
  result = scipy.stats.spearmanr(measured, predicted)
  rho, p_value = float(result.statistic), float(result.pvalue)
  status = "holds" if rho >= threshold else "does not hold"
  text = (f"{status}: Spearman rho = {rho:.3f} (p = {p_value:.2g}, {len(measured)} tasks; "
          f"threshold {threshold:g})")
  return {"status": status, "spearman": rho, "p_value": p_value, "text": text}
