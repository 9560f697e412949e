"""A run folder's files: config.json, metrics.jsonl, results.json, run metadata."""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging


class UnwritableWorkdirError(PermissionError):
  """The workdir cannot be created or written."""


def ensure_workdir(workdir: str) -> str:
  """Creates `workdir` and checks that it is writable, before any heavy work."""
  if not workdir:
    raise UnwritableWorkdirError("--workdir is empty; give a folder for the run's outputs.")
  path = os.path.abspath(workdir)
  try:
    os.makedirs(path, exist_ok=True)
    # Named per process: the processes of a multi-process run probe the same folder.
    probe = os.path.join(path, f".write_test.{os.getpid()}")
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
  return comparable(recorded) == comparable(config)


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


# Config fields that hold a folder or file. Where one points inside the workdir a run
# folder's JSON files belong to, they store it relative to the file's own folder
# ("./..." or "../..."), so that a copied or moved workdir resumes: `write_json` makes them
# relative, `read_json` absolute again at the folder's present place.
PATH_KEYS = frozenset({"init_from", "shared_dir", "data_dir", "tfds_data_dir"})


def _is_path(value: Any) -> bool:
  """A non-empty string that is not a scheme name such as "imagenet:efficientnet_lite0"."""
  return (isinstance(value, str) and bool(value)
          and not (":" in value.split("/", 1)[0] and not os.path.isabs(value)))


def _map_paths(data: Any, fn) -> Any:
  if isinstance(data, Mapping):
    return {k: fn(v) if k in PATH_KEYS and _is_path(v) else _map_paths(v, fn)
            for k, v in data.items()}
  if isinstance(data, list):
    return [_map_paths(v, fn) for v in data]
  return data


def portable(data: Any, folder: str) -> Any:
  """`data` with every PATH_KEYS path inside the held workdir made relative to `folder`.

  The workdir is the outermost folder this process holds (`workdir_lock`) around `folder`,
  else `folder` itself. Paths outside it (a data directory, a weights file elsewhere) stay
  as given, except that a "./" or "../" one (which `resolved` would read back relative to
  `folder`) is made absolute.
  """
  from transjax import workdir_lock  # pylint: disable=import-outside-toplevel
  folder = os.path.abspath(folder)
  anchor = workdir_lock.outermost_held(folder) or folder
  anchor = os.path.realpath(anchor)
  real_folder = os.path.realpath(folder)

  def rel(value: str) -> str:
    if not os.path.isabs(value):
      if not (value in (".", "..") or value.startswith(("./", "../"))):
        return value  # relative to the user's cwd, and unlike what `resolved` reads back
      value = os.path.abspath(value)  # "./data" would read back as <folder>/data
    real = os.path.realpath(value)
    if real != anchor and not real.startswith(anchor + os.sep):
      return value
    out = os.path.relpath(real, real_folder)
    return out if out.startswith("..") else os.path.join(".", out)

  return _map_paths(data, rel)


def resolved(data: Any, folder: str) -> Any:
  """The inverse of `portable`: "./x" and "../x" PATH_KEYS values made absolute at `folder`."""
  folder = os.path.abspath(folder)

  def absolute(value: str) -> str:
    if value == "." or value.startswith(("./", "../")) or value == "..":
      return os.path.normpath(os.path.join(folder, value))
    return value

  return _map_paths(data, absolute)


def comparable(data: Any) -> Any:
  """`data` with its PATH_KEYS paths absolute (a cwd-relative path given by the user, or a
  path read back by `read_json`), for comparing a recorded config with a new one."""
  return _map_paths(to_jsonable(data), lambda v: os.path.normpath(os.path.abspath(v)))


@contextlib.contextmanager
def naming_the_file(path: str) -> Iterator[None]:
  """An OSError of a write (a full disk raises it from write(), naming no file) names `path`
  and what a rerun does."""
  try:
    yield
  except OSError as e:
    if e.filename or e.errno is None:
      raise
    raise OSError(e.errno, f"{e.strerror} while writing {path}; free space (or use another "
                  "--workdir) and run the same command again to resume") from None


def write_json(path: str, data: Any) -> None:
  """Writes JSON atomically (a killed run never leaves half a file); paths inside the
  workdir are stored relative to the file's folder (`portable`)."""
  tmp = path + ".tmp"
  data = portable(to_jsonable(data), os.path.dirname(os.path.abspath(path)))
  with naming_the_file(path):
    with open(tmp, "w") as f:
      json.dump(data, f, indent=2, sort_keys=False)
      f.write("\n")
    os.replace(tmp, path)


def read_json(path: str) -> Any:
  """Reads a JSON file; paths `write_json` stored relative come back absolute."""
  with open(path) as f:
    return resolved(json.load(f), os.path.dirname(os.path.abspath(path)))


class MetricsLog:
  """Appends one JSON object per line to `metrics.jsonl`.

  On resume, `truncate_after(step)` drops records written after the restored checkpoint,
  so a resumed run's log equals an uninterrupted run's.
  """

  def __init__(self, path: str):
    self.path = path
    self._torn_noticed = False

  def append(self, record: Mapping[str, Any]) -> None:
    with naming_the_file(self.path), open(self.path, "a") as f:
      f.write(json.dumps(to_jsonable(record)) + "\n")

  def read(self) -> list[dict[str, Any]]:
    """The records; a torn last line (a kill mid-write) is left out with a notice.

    Raises:
      ValueError: a line before the last does not parse (named by file and line number):
        that is damage a kill cannot cause, so it is not dropped silently.
    """
    if not os.path.exists(self.path):
      return []
    with open(self.path, encoding="utf-8", errors="replace") as f:
      lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(lines):
      try:
        record = json.loads(line)
        if not isinstance(record, dict):
          raise ValueError(f"a JSON {type(record).__name__}, not an object")
      except ValueError as e:
        if i == len(lines) - 1:
          if not self._torn_noticed:
            logging.warning("notice: %s line %d is incomplete (a run killed while writing "
                            "it); left out, the %d records before it are kept.", self.path, n,
                            len(records))
            self._torn_noticed = True
          break
        raise ValueError(f"{self.path} line {n} is not a JSON record ({e}); the lines after "
                         "it are complete, so this is damage, not a kill. Repair or remove "
                         "that line.") from None
      records.append(record)
    return records

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
