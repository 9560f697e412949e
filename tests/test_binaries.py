"""Every binary explains its flags; the README's pretrain -> finetune path runs end to end."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HELPERS = {"__init__", "peers"}  # modules the binaries import
BINARIES = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem not in HELPERS)


def _run(args, cwd, timeout=600):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)


@pytest.mark.parametrize("name", BINARIES)
def test_help_explains_every_flag(name):
  proc = _run([f"experiments.{name}", "--help"], ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]  # cli.parse_flags: --help is not an error
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  flag_lines = [line for line in proc.stdout.splitlines() if line.startswith("  --")]
  assert flag_lines, f"experiments.{name} --help lists no flags:\n{proc.stdout}"
  for line in flag_lines:  # absl prints "  --flag: help text"
    assert line.split(":", 1)[1].strip(), f"{line.strip()} has no help text"


def test_pretrain_then_finetune_commands(tmp_path: pathlib.Path):
  pre = _run(["experiments.pretrain", "--config=configs/lenet_mnist.py:smoke",
              f"--workdir={tmp_path / 'pre'}"], ROOT)
  assert pre.returncode == 0, pre.stderr[-3000:]
  ft = _run(["experiments.finetune", "--config=configs/lenet_mnist_to_usps.py:smoke",
             f"--config.init_from={tmp_path / 'pre'}", f"--workdir={tmp_path / 'ft'}"], ROOT)
  assert ft.returncode == 0, ft.stderr[-3000:]
  assert "test error" in ft.stdout
  results = json.loads((tmp_path / "ft" / "results.json").read_text())
  assert results["mode"] == "finetune" and "run " in results["init"]


def test_a_bad_config_value_is_one_clear_line(tmp_path: pathlib.Path):
  proc = _run(["experiments.pretrain", "--config=configs/lenet_mnist.py:smoke",
               "--config.optim.lr=-1", f"--workdir={tmp_path / 'w'}"], ROOT)
  assert proc.returncode != 0
  assert "config.optim.lr = -1" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_an_unknown_config_field_is_one_clear_line(tmp_path: pathlib.Path):
  proc = _run(["experiments.pretrain", "--config=configs/lenet_mnist.py:smoke",
               "--config.optim.learning_rate=0.1", f"--workdir={tmp_path / 'w'}"], ROOT)
  assert proc.returncode != 0
  assert "unknown config field 'learning_rate' in --config.optim.learning_rate" in proc.stderr
  assert "Traceback" not in proc.stderr
