"""Has a network reached a minimum? The criterion a comparison of minima needs.

The paper compares networks trained to convergence (Table 1: training error 0.00-0.15% on
every target). Comparing the curvature (Fig 3, 10) or the test error (Table 2) of a
converged network with one still descending says nothing about minima: the paper
experiments report such a comparison as *inconclusive: not at a minimum*
(`transjax.paper.common.Claim.inconclusive`), whatever its checks give, and show each
network's training loss and error at the point measured. The trainer can also train until
the criterion holds (`config.stop_at_train_error`, `should_stop`).

A network is at a minimum when both hold:
  * its training error at the point measured is at most MAX_TRAIN_ERROR (1%);
  * its training loss has plateaued: over the last PLATEAU_FRACTION of the logged
    training-loss records, the later half's mean is below the earlier half's by at most
    PLATEAU_DROP (25%) of it, or by at most PLATEAU_ABS (0.01) (a loss near zero moves by
    large fractions of itself). With fewer than MIN_RECORDS records it cannot be told.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from transjax import results as results_lib

MAX_TRAIN_ERROR = 0.01
PLATEAU_FRACTION = 0.2
PLATEAU_DROP = 0.25
PLATEAU_ABS = 0.01
MIN_RECORDS = 4


def criterion(max_train_error: float = MAX_TRAIN_ERROR) -> str:
  """The criterion in words, at a training-error bound."""
  return (f"training error ≤ {100 * max_train_error:g}% at the point measured and a "
          f"plateaued training loss (the last {100 * PLATEAU_FRACTION:g}% of the logged "
          f"records: the later half's mean at most {100 * PLATEAU_DROP:g}% or "
          f"{PLATEAU_ABS:g} below the earlier half's)")


CRITERION = criterion()


def train_curve(run_dir: str) -> list[tuple[int, float]]:
  """(step, logged training loss) of a run (metrics.jsonl)."""
  log = results_lib.MetricsLog(os.path.join(run_dir, "metrics.jsonl"))
  return [(r["step"], r["train_loss"]) for r in log.read() if "train_loss" in r]


def _plateau(curve: Sequence[tuple[int, float]]) -> tuple[float | None, float | None, bool]:
  """(drop, earlier, plateaued): over the curve's last PLATEAU_FRACTION of records (at
  least MIN_RECORDS), the earlier half's mean loss and how far the later half's mean is
  below it; (None, None, False) with fewer than MIN_RECORDS records."""
  losses = np.asarray([v for _, v in curve], np.float64)
  if len(losses) < MIN_RECORDS:
    return None, None, False
  tail = losses[-max(MIN_RECORDS, int(round(PLATEAU_FRACTION * len(losses)))):]
  half = len(tail) // 2
  earlier = float(tail[:half].mean())
  drop = earlier - float(tail[half:].mean())
  plateaued = bool(np.isfinite(drop) and (drop <= PLATEAU_ABS
                                          or drop <= PLATEAU_DROP * max(earlier, 0.0)))
  return drop, earlier, plateaued


def assess(train_error: float, train_loss: float, curve: Sequence[tuple[int, float]], *,
           max_train_error: float = MAX_TRAIN_ERROR) -> dict[str, Any]:
  """The criterion for one network: {"train_error", "train_loss", "plateau_drop",
  "converged", "detail"}."""
  drop, earlier, plateaued = _plateau(curve)
  low_error = bool(np.isfinite(train_error) and train_error <= max_train_error)
  reasons = []
  if not low_error:
    reasons.append(f"training error {100 * train_error:.2f}% > {100 * max_train_error:g}%")
  if drop is None:
    reasons.append(f"fewer than {MIN_RECORDS} logged losses to tell a plateau")
  elif not plateaued:
    reasons.append(f"training loss still falling ({earlier:.3g} -> {earlier - drop:.3g} "
                   "over the last logged records)")
  return {"train_error": float(train_error), "train_loss": float(train_loss),
          "plateau_drop": drop, "converged": bool(low_error and plateaued),
          "detail": "; ".join(reasons) or "converged"}


def should_stop(max_train_error: float, train_error: float,
                curve: Sequence[tuple[int, float]]) -> bool:
  """The trainer's stopping rule (`config.stop_at_train_error`): the criterion above with
  `max_train_error`, on an evaluation's training error and the training-loss curve so far;
  never with max_train_error <= 0 (off)."""
  if not max_train_error > 0:
    return False
  return assess(train_error, float("nan"), curve, max_train_error=max_train_error)["converged"]


def not_at_minimum(networks: Mapping[str, Mapping[str, Any]]) -> str:
  """"" when every network (name -> `assess` result) converged, else the reason a
  comparison of them is inconclusive, naming each network that did not."""
  bad = [f"{name}: {a['detail']}" for name, a in networks.items() if not a.get("converged")]
  return ("not at a minimum (" + "; ".join(bad) + ")") if bad else ""
