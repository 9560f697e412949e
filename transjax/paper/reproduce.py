"""The reproduce job: every paper experiment of a preset in order, then REPORT.md.

    run(get_config("smoke"), "runs/smoke")

Each experiment runs into `<workdir>/<name>/` with its own presets
(transjax/paper/presets/<name>.py, or theory/presets.py for the theory section; the
configs/ files of the binaries re-export them) at the preset named in `config.presets`;
the shared sources and fine-tuning pairs live in `<workdir>/sources/`. An experiment that
finished writes `done.json` (wall time, config) and is skipped by later calls with the same
config; an interrupted one resumes because its training runs resume. A failing experiment
is recorded (`failed.json`, and in the report) and the others still run.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
import traceback
from types import ModuleType
from typing import Any

import jax
import ml_collections
from absl import logging

from theory import presets as theory_presets
from transjax import cli
from transjax import results as results_lib
from transjax import workdir_lock
from transjax.paper import (common, gradient_stats, gradient_variation, init_landscapes,
                            inputs_labels, minima, presets, pretrain_epochs, report, sources,
                            theory_section, transfer_targets, tsne_weights)
from transjax.paper import overrides

# name -> (experiment module, its presets: a module with get_config(preset))
EXPERIMENTS: dict[str, tuple[ModuleType, ModuleType]] = {
    "transfer_targets": (transfer_targets, presets.transfer_targets),
    "inputs_labels": (inputs_labels, presets.inputs_labels),
    "pretrain_epochs": (pretrain_epochs, presets.pretrain_epochs),
    "minima": (minima, presets.minima),
    "tsne_weights": (tsne_weights, presets.tsne_weights),
    "init_landscapes": (init_landscapes, presets.init_landscapes),
    "gradient_variation": (gradient_variation, presets.gradient_variation),
    "gradient_stats": (gradient_stats, presets.gradient_stats),
    "theory": (theory_section, theory_presets),
}


@dataclasses.dataclass
class Status:
  name: str
  module: str
  status: str = "pending"     # done | skipped | failed
  wall_time_s: float | None = None
  error: str = ""
  commit: str | None = None   # the commit the experiment ran at


def experiment_config(name: str, preset: str, shared_dir: str,
                      data_dir: str) -> tuple[ModuleType, ml_collections.ConfigDict]:
  """(module, config) of experiment `name` at `preset`, pointed at the shared dirs."""
  if name not in EXPERIMENTS:
    raise ValueError(f"Unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}.")
  module, preset_module = EXPERIMENTS[name]
  config = preset_module.get_config(preset)
  if "shared_dir" in config:
    config.shared_dir = shared_dir
  if data_dir:
    if "data_dir" in config:
      config.data_dir = data_dir
    elif "real" in config and "data_dir" in config.real:
      config.real.data_dir = data_dir
  return module, config


def check_configs(config: ml_collections.ConfigDict,
                  shared_dir: str) -> dict[str, tuple[ModuleType, ml_collections.ConfigDict]]:
  """Every experiment's config at its preset, with the job's overrides, validated by the
  experiment's `validate` (where it has one) before anything is trained.

  Raises:
    ValueError: one message naming every refused experiment and why.
  """
  built, problems = {}, []
  fields = overrides.experiment_overrides(config)
  stray = sorted(set(fields) - set(config.experiments))
  if stray:
    problems.append(f"config.experiment_overrides names {stray}, which are not in "
                    f"config.experiments {list(config.experiments)}")
  for name in config.experiments:
    preset = config.presets.get(name, config.preset)
    try:
      module, cfg = experiment_config(name, preset, shared_dir, config.data_dir)
      overrides.copy_fields(config, cfg)   # the job's train_overrides / data_stand_ins
      overrides.set_fields(cfg, name, fields.get(name, {}))
      if hasattr(module, "validate"):
        module.validate(cfg)
    except cli.USER_ERRORS as e:
      problems.append(f"{name} ({preset} preset): {e}")
      continue
    built[name] = (module, cfg)
  if problems:
    raise ValueError(
        f"reproduce: {len(problems)} experiment config(s) refused before any work: "
        + " | ".join(problems) + " | In this job an experiment's field is set with "
        "--config.experiment_overrides=<experiment>.<field>=<value>; an experiment is left "
        "out with --config.experiments=<names>.")
  return built


def _run_one(name: str, module: ModuleType, cfg: ml_collections.ConfigDict,
             workdir: str) -> Status:
  st = Status(name, module.__name__)
  exp_dir = os.path.join(workdir, name)
  done_path = os.path.join(exp_dir, "done.json")
  if results_lib.finished_with(exp_dir, cfg, record="done.json", key="config"):
    done = results_lib.read_json(done_path)
    st.status, st.wall_time_s, st.commit = "skipped", done.get("wall_time_s"), done.get("commit")
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
      "wall_time_s": st.wall_time_s, "commit": st.commit, "preset": cfg.get("preset", ""),
      "config": results_lib.to_jsonable(cfg),
      "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
  if os.path.exists(os.path.join(exp_dir, "failed.json")):
    os.remove(os.path.join(exp_dir, "failed.json"))
  return st


def _run_one_locked(name: str, module: ModuleType, cfg: ml_collections.ConfigDict,
                    workdir: str) -> Status:
  """`_run_one` holding `<workdir>/<name>`; a folder another process holds is a failure."""
  try:
    with workdir_lock.hold(os.path.join(workdir, name)):
      return _run_one(name, module, cfg, workdir)
  except workdir_lock.WorkdirLockedError as e:
    logging.error("%s: %s", name, e)
    return Status(name, module.__name__, status="failed", error=str(e))


@workdir_lock.locked()
def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs the preset's experiments into `workdir` and writes REPORT.md.

  Holds the lock of `workdir` (and of each `<workdir>/<name>` while it runs).

  Returns {"statuses": [...], "report": path, "failed": [names of failed experiments]}.
  """
  t0 = time.time()
  unknown = [n for n in config.experiments if n not in EXPERIMENTS]
  if unknown:
    raise ValueError(f"Unknown experiments {unknown}; choose from {list(EXPERIMENTS)}.")
  scales = tuple(config.get("scales") or ())
  if scales:
    return _run_scales(config, scales, workdir, t0)
  built = check_configs(config, os.path.join(workdir, "sources"))
  workdir = results_lib.ensure_workdir(workdir)
  previous_fast_compile = jax.config.read("jax_disable_most_optimizations")
  if config.get("fast_compile", False):
    jax.config.update("jax_disable_most_optimizations", True)
  try:
    return _run_all(config, built, workdir, t0)
  finally:  # a library call leaves the process's JAX settings as it found them
    jax.config.update("jax_disable_most_optimizations", previous_fast_compile)


def at_scale(config: ml_collections.ConfigDict, size: int) -> ml_collections.ConfigDict:
  """The job's config at one input size: no `scales`, model.input_size=size added to its
  train_overrides (so it reaches every training config of every experiment)."""
  sub = ml_collections.ConfigDict(config.to_dict())
  sub.scales = ()
  sub.train_overrides = ",".join(x for x in (config.get("train_overrides", ""),
                                             f"model.input_size={int(size)}") if x)
  return sub


def _run_scales(config: ml_collections.ConfigDict, scales: tuple[int, ...], workdir: str,
                t0: float) -> dict[str, Any]:
  """The job at each input size into `<workdir>/<size>px/`, then the side-by-side report.
  Every size's configs are checked before anything runs."""
  bad = [s for s in scales if not (isinstance(s, int) and s >= 8)]
  if bad or len(set(scales)) != len(scales):
    raise ValueError(f"config.scales = {scales}: distinct input sizes of at least 8 px, "
                     "e.g. (64, 96); () runs the presets' own size.")
  workdir = results_lib.ensure_workdir(workdir)
  subs = {s: (at_scale(config, s), os.path.join(workdir, f"{s}px")) for s in scales}
  for sub, sub_dir in subs.values():
    check_configs(sub, os.path.join(sub_dir, "sources"))
  outs = {s: run(sub, sub_dir) for s, (sub, sub_dir) in subs.items()}
  runs = {f"{s} px": (subs[s][1], outs[s]["statuses"]) for s in scales}
  path = report.write_scales_report(
      workdir, runs, config.preset, total_wall_s=time.time() - t0,
      data_dir=config.data_dir or os.environ.get("TRANSJAX_DATA_DIR", ""))
  failed = [f"{s}px/{name}" for s in scales for name in outs[s]["failed"]]
  logging.info("Wrote %s (%.0f s).", path, time.time() - t0)
  return {"statuses": [st for s in scales for st in outs[s]["statuses"]], "report": path,
          "failed": failed}


def _run_all(config: ml_collections.ConfigDict,
             built: dict[str, tuple[ModuleType, ml_collections.ConfigDict]], workdir: str,
             t0: float) -> dict[str, Any]:
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
        sources.ensure_source(name, config.preset, shared_dir, data_dir=config.data_dir,
                              experiment=config)
      st.status, st.commit = "done", results_lib.git_commit()
    except Exception as e:  # pylint: disable=broad-except
      st.status, st.error = "failed", f"{type(e).__name__}: {e}"
      logging.error("sources failed: %s", st.error)
    st.wall_time_s = time.time() - start
    statuses.append(st)
  n = len(config.experiments)
  for i, name in enumerate(config.experiments, 1):
    logging.info("[%d/%d] %s: starting (%.0f s elapsed)", i, n, name, time.time() - t0)
    st = _run_one_locked(name, *built[name], workdir)
    statuses.append(st)
    logging.info("[%d/%d] %s: %s%s%s", i, n, name, st.status,
                 f" in {st.wall_time_s:.1f} s" if st.wall_time_s is not None else "",
                 f" ({st.error})" if st.error else "")
  dicts = [dataclasses.asdict(s) for s in statuses]
  path = report.write_report(workdir, dicts, config.preset, total_wall_s=time.time() - t0,
                             data_dir=config.data_dir or os.environ.get("TRANSJAX_DATA_DIR", ""))
  results_lib.write_json(os.path.join(workdir, "reproduce.json"), {
      "preset": config.preset, "statuses": dicts, "wall_time_s": time.time() - t0,
      **results_lib.run_metadata()})
  failed = [s.name for s in statuses if s.status == "failed"]
  logging.info("Wrote %s (%.0f s). %s", path, time.time() - t0,
               f"Failed: {failed}" if failed else "All experiments finished.")
  return {"statuses": dicts, "report": path, "failed": failed}
