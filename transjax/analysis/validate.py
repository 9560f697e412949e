"""The instrument binaries' arguments, checked before any run is loaded or point computed.

    validate.landscape(config)                  # experiments/landscape.py
    validate.hessian(config, layers)            # experiments/hessian.py, per run folder too
    validate.gradient_stats(config)
    validate.gradient_variation(config)

Each raises one `ConfigError` naming the field, its value and what is allowed, so a bad
grid size or step length ends in one line at once instead of a traceback after minutes of
work (a landscape of resolution 1 failed in matplotlib after computing its grid; eta = 0
returned a constant grid). `selected_parameters` counts what an analysis would see from
the run folder's config and shapes alone, so top-k and Krylov sizes are checked against it
before the data is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import logging

from transjax import config as config_lib
from transjax import params as params_lib
from transjax import results as results_lib

SPLITS = ("train", "test")
VECTORIZE = ("vmap", "map")
HESSIAN_METHODS = ("lanczos", "power")
VARIATION_PROTOCOLS = ("gradient", "fixed")


def _fail(key: str, value: Any, allowed: str) -> None:
  raise config_lib.ConfigError(f"config.{key} = {value!r} is not allowed; expected {allowed}.")


def _positive_number(config: ml_collections.ConfigDict, key: str) -> None:
  value = config[key]
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      math.isfinite(value) and value > 0):
    _fail(key, value, "a finite number above 0")


def _integer_at_least(config: ml_collections.ConfigDict, key: str, low: int,
                      why: str = "") -> None:
  value = config[key]
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    _fail(key, value, f"an integer of at least {low}{' (' + why + ')' if why else ''}")


def _one_of(config: ml_collections.ConfigDict, key: str, allowed: Sequence[str]) -> None:
  if config[key] not in allowed:
    _fail(key, config[key], f"one of {tuple(allowed)}")


def _common(config: ml_collections.ConfigDict) -> None:
  """What every instrument reads: run folders, samples, split, seed."""
  from transjax import cli  # pylint: disable=import-outside-toplevel
  if not cli.split_csv(str(config.checkpoints)):
    _fail("checkpoints", config.checkpoints, "one or more run folders, comma-separated")
  _integer_at_least(config, "num_samples", 1)
  _one_of(config, "split", SPLITS)
  if "which" in config:
    which = str(config.which)
    if which not in ("final", "init") and not which.isdigit():
      _fail("which", config.which, "'final', 'init' or a checkpoint step")


def landscape(config: ml_collections.ConfigDict) -> None:
  """Grid size, step length, dimensions and evaluation settings of a landscape."""
  _common(config)
  if config.dims not in (1, 2):
    _fail("dims", config.dims, "1 or 2")
  _integer_at_least(config, "resolution", 2, "two points per axis: the grid's spacing and "
                    "its figure need them")
  _positive_number(config, "eta")
  _integer_at_least(config, "chunk_size", 0, "0: from the memory budget")
  if not (isinstance(config.memory_budget_mb, (int, float)) and config.memory_budget_mb >= 0):
    _fail("memory_budget_mb", config.memory_budget_mb, "0 (automatic) or a positive size")
  _one_of(config, "vectorize", VECTORIZE)


def hessian(config: ml_collections.ConfigDict) -> None:
  """Eigenvalue count, method, tolerance, Krylov size and trace probes."""
  _common(config)
  _integer_at_least(config, "top_k", 1)
  _one_of(config, "method", HESSIAN_METHODS)
  _positive_number(config, "tol")
  _integer_at_least(config, "max_steps", 0, "0: the solver's default")
  if config.method == "lanczos" and 0 < config.max_steps < config.top_k:
    _fail("max_steps", config.max_steps,
          f"0 (the default) or at least config.top_k = {config.top_k}: the Krylov space "
          "holds at most max_steps eigenvalues")
  if config.trace_probes == 1 or not isinstance(config.trace_probes, int) or \
      config.trace_probes < 0:
    _fail("trace_probes", config.trace_probes,
          "0 (no trace) or at least 2 (the trace's spread needs two probes)")


def hessian_for_run(config: ml_collections.ConfigDict, run_dir: str,
                    layers: Sequence[str] | None) -> int:
  """Checks top-k and the Krylov size against the parameters the Hessian of `run_dir`
  would act on (`layers`: None for all); returns their number."""
  dim = selected_parameters(run_dir, layers)
  what = f"the {'selected layers' if layers else 'network'} of {run_dir}"
  if config.top_k > dim:
    _fail("top_k", config.top_k, f"at most {dim}: {what} has {dim} parameters")
  if config.method == "lanczos" and config.max_steps > dim:
    _fail("max_steps", config.max_steps,
          f"at most {dim} ({what} has {dim} parameters, the largest Krylov space), or 0")
  return dim


def gradient_stats(config: ml_collections.ConfigDict) -> None:
  _common(config)
  _integer_at_least(config, "bins", 1)


def gradient_variation(config: ml_collections.ConfigDict) -> None:
  """Protocols, step sizes, number of steps and the checkpoint steps to measure."""
  from transjax import cli  # pylint: disable=import-outside-toplevel
  _common(config)
  protocols = cli.split_csv(str(config.protocols))
  if not protocols or any(p not in VARIATION_PROTOCOLS for p in protocols):
    _fail("protocols", config.protocols,
          f"a comma-separated selection of {VARIATION_PROTOCOLS}")
  _positive_number(config, "lr")
  _positive_number(config, "step_length")
  _integer_at_least(config, "num_steps", 1)
  steps = str(config.steps)
  if steps != "all" and (not cli.split_csv(steps)
                         or not all(s.isdigit() for s in cli.split_csv(steps))):
    _fail("steps", config.steps, "'all' or comma-separated checkpoint steps (e.g. 0,100,200)")


def notice_fewer_samples(batch: Any, config: ml_collections.ConfigDict) -> None:
  """Says so when the sample set is smaller than config.num_samples asked (the split holds
  fewer examples): the instrument then measures fewer than requested."""
  got = len(batch["label"])
  if got < config.num_samples:
    logging.warning("notice: config.num_samples = %d but the %s split has %d examples; "
                    "measured on %d.", config.num_samples, config.split, got, got)


def selected_parameters(run_dir: str, layers: Sequence[str] | None) -> int:
  """The number of parameters of a run folder's network under `layers` (None: all), from
  its config.json and run.json and the model's shapes (nothing is initialised or read)."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from transjax import functional, weights  # pylint: disable=import-outside-toplevel
  config_path, run_json = (os.path.join(run_dir, name) for name in ("config.json", "run.json"))
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{run_dir} is not a transjax run folder (no config.json).")
  if not os.path.exists(run_json):
    raise FileNotFoundError(
        f"{run_dir} has config.json but no run.json: that run stopped (or is still) before "
        "its data and model were set up. Run the training into it again, or point at a "
        "finished run folder.")
  config = ml_collections.ConfigDict(results_lib.read_json(config_path))
  num_classes = int(results_lib.read_json(run_json)["num_classes"])
  model = nnx.eval_shape(lambda: weights.build_from_config(config, num_classes))
  _, params, _ = functional.split(model)
  return params_lib.count(params, params_lib.mask_for(params, layers) if layers else None)
