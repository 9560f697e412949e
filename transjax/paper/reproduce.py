"""The reproduce job: every paper experiment of a preset in order, then REPORT.md.

    run(get_config("smoke"), "runs/smoke")

Each experiment runs into `<workdir>/<name>/` with its own config (configs/paper_<name>.py,
or configs/theory.py for the theory section) at the preset named in `config.presets`;
the shared sources and fine-tuning pairs live in `<workdir>/sources/`. An experiment that
finished writes `done.json` (wall time, config) and is skipped by later calls with the same
config; an interrupted one resumes because its training runs resume. A failing experiment
is recorded (`failed.json`, and in the report) and the others still run.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import os
import time
import traceback
from typing import Any

import jax
import ml_collections
from absl import logging

from transjax import results as results_lib
from transjax import workdir_lock
from transjax.paper import common, report, sources

# name -> (experiment module, config module)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "transfer_targets": ("transjax.paper.transfer_targets", "configs.paper_transfer_targets"),
    "inputs_labels": ("transjax.paper.inputs_labels", "configs.paper_inputs_labels"),
    "pretrain_epochs": ("transjax.paper.pretrain_epochs", "configs.paper_pretrain_epochs"),
    "minima": ("transjax.paper.minima", "configs.paper_minima"),
    "tsne_weights": ("transjax.paper.tsne_weights", "configs.paper_tsne_weights"),
    "init_landscapes": ("transjax.paper.init_landscapes", "configs.paper_init_landscapes"),
    "gradient_variation": ("transjax.paper.gradient_variation",
                           "configs.paper_gradient_variation"),
    "gradient_stats": ("transjax.paper.gradient_stats", "configs.paper_gradient_stats"),
    "theory": ("transjax.paper.theory_section", "configs.theory"),
}


class MissingExperimentError(ImportError):
  """An experiment's module or config file is not in this checkout."""


@dataclasses.dataclass
class Status:
  name: str
  module: str
  status: str = "pending"     # done | skipped | failed | missing
  wall_time_s: float | None = None
  error: str = ""
  commit: str | None = None   # the commit the experiment ran at


def _import(name: str) -> Any:
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError as e:
    if e.name and (name == e.name or name.startswith(e.name + ".")):
      raise MissingExperimentError(f"{name} is not in this checkout") from e
    raise


def experiment_config(name: str, preset: str, shared_dir: str,
                      data_dir: str) -> tuple[Any, ml_collections.ConfigDict]:
  """(module, config) of experiment `name` at `preset`, pointed at the shared dirs."""
  if name not in EXPERIMENTS:
    raise ValueError(f"Unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}.")
  module_name, config_name = EXPERIMENTS[name]
  module = _import(module_name)
  config = _import(config_name).get_config(preset)
  if "shared_dir" in config:
    config.shared_dir = shared_dir
  if data_dir:
    if "data_dir" in config:
      config.data_dir = data_dir
    elif "real" in config and "data_dir" in config.real:
      config.real.data_dir = data_dir
  return module, config


def _run_one(name: str, config: ml_collections.ConfigDict, shared_dir: str,
             workdir: str) -> Status:
  preset = config.presets.get(name, config.preset)
  st = Status(name, EXPERIMENTS.get(name, ("?", "?"))[0])
  exp_dir = os.path.join(workdir, name)
  try:
    module, cfg = experiment_config(name, preset, shared_dir, config.data_dir)
  except MissingExperimentError as e:
    st.status, st.error = "missing", str(e)
    return st
  except Exception as e:  # pylint: disable=broad-except
    st.status, st.error = "failed", f"config: {type(e).__name__}: {e}"
    return st
  done_path = os.path.join(exp_dir, "done.json")
  cfg_json = results_lib.to_jsonable(cfg)
  if os.path.exists(done_path):
    done = results_lib.read_json(done_path)
    if done.get("config") == cfg_json and os.path.exists(os.path.join(exp_dir, "results.json")):
      st.status, st.wall_time_s = "skipped", done.get("wall_time_s")
      st.commit = done.get("commit")
      return st
  os.makedirs(exp_dir, exist_ok=True)
  start = time.time()
  try:
    module.run(cfg, exp_dir)
  except Exception as e:  # pylint: disable=broad-except
    st.status, st.wall_time_s = "failed", time.time() - start
    st.error = f"{type(e).__name__}: {e}"
    results_lib.write_json(os.path.join(exp_dir, "failed.json"), {
        "error": st.error, "traceback": traceback.format_exc(), "wall_time_s": st.wall_time_s})
    logging.error("%s failed: %s", name, st.error)
    return st
  st.status, st.wall_time_s = "done", time.time() - start
  st.commit = results_lib.git_commit()
  results_lib.write_json(done_path, {
      "wall_time_s": st.wall_time_s, "commit": st.commit, "preset": preset, "config": cfg_json,
      "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
  if os.path.exists(os.path.join(exp_dir, "failed.json")):
    os.remove(os.path.join(exp_dir, "failed.json"))
  return st


def _run_one_locked(name: str, config: ml_collections.ConfigDict, shared_dir: str,
                    workdir: str) -> Status:
  """`_run_one` holding `<workdir>/<name>`; a folder another process holds is a failure."""
  try:
    with workdir_lock.hold(os.path.join(workdir, name)):
      return _run_one(name, config, shared_dir, workdir)
  except workdir_lock.WorkdirLockedError as e:
    logging.error("%s: %s", name, e)
    return Status(name, EXPERIMENTS.get(name, ("?", "?"))[0], status="failed", error=str(e))


@workdir_lock.locked()
def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the preset's experiments into `workdir` and writes REPORT.md.

  Holds the lock of `workdir` (and of each `<workdir>/<name>` while it runs).

  Returns {"statuses": [...], "report": path, "failed": [names failed or missing]}.
  """
  t0 = time.time()
  unknown = [n for n in config.experiments if n not in EXPERIMENTS]
  if unknown:
    raise ValueError(f"Unknown experiments {unknown}; choose from {list(EXPERIMENTS)}.")
  workdir = results_lib.ensure_workdir(workdir)
  previous_fast_compile = jax.config.read("jax_disable_most_optimizations")
  if config.get("fast_compile", False):
    jax.config.update("jax_disable_most_optimizations", True)
  try:
    return _run_all(config, workdir, t0)
  finally:  # a library call leaves the process's JAX settings as it found them
    jax.config.update("jax_disable_most_optimizations", previous_fast_compile)


def _run_all(config: ml_collections.ConfigDict, workdir: str, t0: float) -> dict[str, Any]:
  if config.compilation_cache:
    # Many short runs compile the same LeNet steps; the persistent cache shares them.
    common.use_compilation_cache(os.path.join(workdir, ".jax_cache"))
  shared_dir = os.path.join(workdir, "sources")
  statuses: list[Status] = []
  if config.sources:
    st = Status("sources", "transjax.paper.sources")
    start = time.time()
    logging.info("[0/%d] sources: %s", len(config.experiments), ", ".join(config.sources))
    try:
      for name in config.sources:
        sources.ensure_source(name, config.preset, shared_dir, data_dir=config.data_dir)
      st.status, st.commit = "done", results_lib.git_commit()
    except Exception as e:  # pylint: disable=broad-except
      st.status, st.error = "failed", f"{type(e).__name__}: {e}"
      logging.error("sources failed: %s", st.error)
    st.wall_time_s = time.time() - start
    statuses.append(st)
  n = len(config.experiments)
  for i, name in enumerate(config.experiments, 1):
    logging.info("[%d/%d] %s: starting (%.0f s elapsed)", i, n, name, time.time() - t0)
    st = _run_one_locked(name, config, shared_dir, workdir)
    statuses.append(st)
    logging.info("[%d/%d] %s: %s%s%s", i, n, name, st.status,
                 f" in {st.wall_time_s:.1f} s" if st.wall_time_s is not None else "",
                 f" ({st.error})" if st.error else "")
  dicts = [dataclasses.asdict(s) for s in statuses]
  path = report.write_report(workdir, dicts, config.preset, total_wall_s=time.time() - t0)
  results_lib.write_json(os.path.join(workdir, "reproduce.json"), {
      "preset": config.preset, "statuses": dicts, "wall_time_s": time.time() - t0,
      **results_lib.run_metadata()})
  failed = [s.name for s in statuses if s.status in ("failed", "missing")]
  logging.info("Wrote %s (%.0f s). %s", path, time.time() - t0,
               f"Failed or missing: {failed}" if failed else "All experiments finished.")
  return {"statuses": dicts, "report": path, "failed": failed}
