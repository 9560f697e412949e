"""A run folder's files: config.json, metrics.jsonl, results.json, run metadata."""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np


class UnwritableWorkdirError(PermissionError):
  """The workdir cannot be created or written."""


def ensure_workdir(workdir: str) -> str:
  """Creates `workdir` and checks that it is writable, before any heavy work."""
  if not workdir:
    raise UnwritableWorkdirError("--workdir is empty; give a folder for the run's outputs.")
  path = os.path.abspath(workdir)
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, ".write_test")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise UnwritableWorkdirError(f"Cannot write to workdir {path}: {e.strerror or e}") from e
  return path


def finished_with(folder: str, config: Any, *, record: str = "config.json",
                  key: str | None = None) -> bool:
  """True when `folder` has finished (results.json) with exactly `config`.

  The config it ran with is read from `record` in the folder (or that file's field `key`);
  a run, an experiment or a reproduce step is reused only then.
  """
  record_path = os.path.join(folder, record)
  if not (os.path.exists(os.path.join(folder, "results.json")) and os.path.exists(record_path)):
    return False
  recorded = read_json(record_path)
  if key is not None:
    recorded = recorded.get(key)
  return recorded == to_jsonable(config)


def to_jsonable(value: Any) -> Any:
  """numpy/jax scalars and arrays, tuples and ConfigDicts to plain JSON types.

  A non-finite float becomes null, as in every JSON file transjax and theory write.
  """
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if isinstance(value, (np.ndarray, jax.Array)):
    return to_jsonable(np.asarray(value).tolist())
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, float) and not np.isfinite(value):
    return None
  return value


def write_json(path: str, data: Any) -> None:
  """Writes JSON atomically (a killed run never leaves half a file)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(to_jsonable(data), f, indent=2, sort_keys=False)
    f.write("\n")
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


class MetricsLog:
  """Appends one JSON object per line to `metrics.jsonl`.

  On resume, `truncate_after(step)` drops records written after the restored checkpoint,
  so a resumed run's log equals an uninterrupted run's.
  """

  def __init__(self, path: str):
    self.path = path

  def append(self, record: Mapping[str, Any]) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(to_jsonable(record)) + "\n")

  def read(self) -> list[dict[str, Any]]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate_after(self, step: int) -> None:
    kept = [r for r in self.read() if r.get("step", 0) <= step]
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      for record in kept:
        f.write(json.dumps(record) + "\n")
    os.replace(tmp, self.path)


@functools.cache
def git_commit() -> str | None:
  """The short commit of the code, with "-dirty" when tracked files differ from it.

  Read once per process, at the first call (a run's start): the code a process runs is
  what it imported then, so a commit made while a long run is going does not relabel it.
  """
  here = os.path.dirname(__file__)
  try:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, timeout=5, cwd=here)
    commit = out.stdout.strip()
    if not commit:
      return None
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=here, timeout=5,
                           capture_output=True).returncode == 1
    return commit + ("-dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    return None


def run_metadata() -> dict[str, Any]:
  """Where and with what a result was produced."""
  return {
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "git_commit": git_commit(),
      "jax": jax.__version__,
      "backend": jax.default_backend(),
      "devices": [str(d) for d in jax.devices()],
      "python": platform.python_version(),
      "host": platform.node(),
  }


def last_with(records: Iterable[Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
  """The last record that has `key`."""
  found = None
  for r in records:
    if key in r:
      found = r
  return found
