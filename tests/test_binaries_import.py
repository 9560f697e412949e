"""Every module under experiments/ imports beside every other one and defines no flag.

absl keeps one flag registry per process, so a binary that defines its flags when imported
cannot be imported beside another that defines a flag of the same name (CI's pytest worker
that imported two binaries with --output died of DuplicateFlagError). A binary defines its
flags in its `__main__` guard (`cli.BinaryFlags`); this test imports all of experiments/ in
one fresh process and names any module whose import raised or added a flag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import flags
import pytest

from tests.conftest import ROOT
from transjax import cli

# Runs in a fresh process. transjax.cli first (presets and libraries import it: it must
# define no flag); then the library's own modules, so the flags they define when imported
# (orbax's) are in the baseline; then each experiments module in turn, recording the flags
# its import added and any error it raised.
_SCRIPT = r"""
import importlib, json, pkgutil, sys, traceback
from absl import app, flags, logging  # absl's own flags (--v, --pdb ...) are the baseline
from ml_collections import config_flags

before = set(flags.FLAGS)
import transjax.cli
report = {"transjax.cli": {"error": None, "flags": sorted(set(flags.FLAGS) - before)}}
for package in ("transjax", "theory", "configs"):
  for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
    try:
      importlib.import_module(info.name)
    except Exception:  # an experiments module that needs it reports the error below
      pass

import experiments
for info in pkgutil.walk_packages(experiments.__path__, "experiments."):
  before = set(flags.FLAGS)
  try:
    importlib.import_module(info.name)
    error = None
  except BaseException as e:  # DuplicateFlagError, ImportError, SystemExit ...
    error = "".join(traceback.format_exception_only(type(e), e)).strip()
  report[info.name] = {"error": error, "flags": sorted(set(flags.FLAGS) - before)}
print(json.dumps(report))
"""


def test_every_experiments_module_imports_in_one_process_without_defining_flags():
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  binaries = {p.stem for p in (ROOT / "experiments").glob("*.py")} - {"__init__"}
  imported = {name.split(".", 1)[1] for name in report if name.startswith("experiments.")}
  assert imported == binaries  # every module was imported
  errors = {name: r["error"] for name, r in report.items() if r["error"]}
  assert not errors, f"these modules do not import beside the others: {errors}"
  defining = {name: r["flags"] for name, r in report.items() if r["flags"]}
  assert not defining, (
      f"importing these modules defined flags: {defining}; define a binary's flags in its "
      "`if __name__ == '__main__':` guard (cli.BinaryFlags), so binaries import side by side")


def test_binary_flags_are_defined_once_and_read_by_name():
  registry = flags.FlagValues()
  calls = []

  def define():
    calls.append(1)
    return {"output": flags.DEFINE_string("output", "a.json", "Where.", flag_values=registry)}

  binary = cli.BinaryFlags(define)
  with pytest.raises(RuntimeError, match="not defined"):
    _ = binary.output
  assert binary.define() is binary.define() and len(calls) == 1  # a second define() is a no-op
  registry(["prog", "--output=b.json"])
  assert binary.output == "b.json" and binary.values() == {"output": "b.json"}
  with pytest.raises(AttributeError, match="no flag 'outptu'"):
    _ = binary.outptu
