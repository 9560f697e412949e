"""The callbacks of a standard training run: the deviation of the weights, the curves.

`transjax.train` logs losses and errors only; a standard run (the training binaries, the
paper experiments' runs) registers `standard()`:

    train.train(config, workdir, train_callbacks.standard())

which adds, as every run folder had them before the trainer took callbacks:

* `Deviation`: ||W - W0||_F / sqrt(n) (`transjax.analysis.deviation`, n the number of
  training examples, W0 the run's starting weights) in every evaluation record of
  metrics.jsonl ("deviation_last", "deviation_sum", "deviation": per layer) and in
  results.json ("deviation": {"last_layer", "sum", "per_layer"} at the last evaluation);
* `TrainingCurves`: training_curves.png in the run folder (loss, error and deviation
  against step, from metrics.jsonl; the deviation panel is drawn where `Deviation` ran).

This module sits above the trainer and the analysis package; the trainer imports neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from transjax import plotting
from transjax import train
from transjax.analysis import deviation as deviation_lib

TRAINING_CURVES = "training_curves.png"


class Deviation(train.RunCallback):
  """||W - W0||_F / sqrt(n) at each evaluation, and at the last in results.json."""

  def __init__(self):
    self._fn: Callable[[Any], dict[str, Any]] | None = None

  def begin(self, run: train.Run) -> None:
    n_train, params0 = len(run.data.train), run.params0
    jitted = jax.jit(lambda p, p0: deviation_lib.deviation(p, p0, n_train))
    self._fn = lambda params: deviation_lib.to_floats(jitted(params, params0))

  def evaluate(self, step: int, params: Any, state: Any) -> Mapping[str, Any]:
    del step, state
    if self._fn is None:
      raise RuntimeError("Deviation.evaluate before begin: the trainer calls begin first.")
    d = self._fn(params)
    return {"deviation_last": d["last_layer"], "deviation_sum": d["sum"],
            "deviation": d["per_layer"]}

  def results(self, final: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"deviation": {"last_layer": final["deviation_last"], "sum": final["deviation_sum"],
                          "per_layer": final["deviation"]}}


class TrainingCurves(train.RunCallback):
  """training_curves.png in the run folder: loss, error and deviation against step."""

  def write(self, run: train.Run, records: Sequence[Mapping[str, Any]],
            results: Mapping[str, Any]) -> None:
    del results
    plotting.training_curves(records, os.path.join(run.workdir, TRAINING_CURVES),
                             title=run.config.name)


def standard() -> list[train.RunCallback]:
  """Fresh callbacks of a standard run: `Deviation`, then `TrainingCurves`."""
  return [Deviation(), TrainingCurves()]
