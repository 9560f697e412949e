"""How well a score ranks candidate models: the field's rank correlations and regret.

Evaluation, not scoring: plain NumPy / SciPy on a handful of numbers per target.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.stats


def _pair(scores: Any, accuracies: Any) -> tuple[np.ndarray, np.ndarray]:
  s = np.asarray(scores, np.float64).reshape(-1)
  a = np.asarray(accuracies, np.float64).reshape(-1)
  if s.shape != a.shape or len(s) < 2:
    raise ValueError(f"need as many scores as accuracies, at least 2: {s.shape} vs {a.shape}.")
  if not (np.all(np.isfinite(s)) and np.all(np.isfinite(a))):
    raise ValueError("scores and accuracies must be finite.")
  return s, a


def weighted_kendall_tau(scores: Any, accuracies: Any) -> float:
  """scipy.stats.weightedtau(scores, accuracies): Kendall's tau with hyperbolic weights
  1 / (rank + 1), emphasising the top of the ranking (Vigna 2015), as LogME / SFDA report.

  Args:
    scores: (M,) a score of each of M candidates on one target.
    accuracies: (M,) their fine-tuned (or probe) accuracies on it.

  Returns:
    tau_w in [-1, 1]; 1 = the score orders the candidates as the accuracies do.
  """
  s, a = _pair(scores, accuracies)
  return float(scipy.stats.weightedtau(s, a).statistic)


def kendall_tau(scores: Any, accuracies: Any) -> float:
  """scipy.stats.kendalltau (tau-b, ties accounted) between scores and accuracies."""
  s, a = _pair(scores, accuracies)
  return float(scipy.stats.kendalltau(s, a).statistic)


def top1_regret(scores: Any, accuracies: Any) -> float:
  """max(accuracy) - accuracy of the candidate the score ranks first (0 = it picks the best).

  In the accuracies' units (divide by the best accuracy for the relative regret some papers
  report). A tie for the top score takes the worst of the tied candidates: a selector cannot
  count on the luckier one.
  """
  s, a = _pair(scores, accuracies)
  tied = s == np.max(s)
  return float(np.max(a) - np.min(a[tied]))


def rank(names: Sequence[str], scores: Any) -> list[tuple[str, float]]:
  """[(name, score)] best first (a stable sort: equal scores keep the given order)."""
  s = np.asarray(scores, np.float64).reshape(-1)
  if len(names) != len(s):
    raise ValueError(f"{len(names)} names for {len(s)} scores.")
  order = sorted(range(len(s)), key=lambda i: -s[i])
  return [(names[i], float(s[i])) for i in order]
