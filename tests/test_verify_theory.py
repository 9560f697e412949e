"""End-to-end test of experiments/verify_theory.py with the smoke preset."""

import json
import pathlib
import subprocess
import sys

import pytest

from theory import presets as theory_config
from theory import sweep

_REPO = pathlib.Path(__file__).resolve().parents[1]


def test_smoke_preset_writes_results_and_report_then_resumes(tmp_path):
  workdir = tmp_path / "work"
  completed = subprocess.run(
      [sys.executable, "-m", "experiments.verify_theory", "--config=configs/theory.py:smoke",
       f"--workdir={workdir}"], cwd=_REPO, capture_output=True, text=True, timeout=300)
  assert completed.returncode == 0, completed.stderr[-3000:]
  # Strict JSON: NaN (e.g. the slope of a one-width real sweep) is stored as null.
  results = json.loads((workdir / "results.json").read_text(),
                       parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
  for check in ("theorem1", "theorem2"):
    assert results[check], check
    for row in results[check]:
      assert {"m", "seed", "measured", "predicted", "relative_error"} <= set(row)
    assert check in results["slopes"]
  assert results["config"]["preset"] == "smoke"
  assert "description" in results["task"]
  assert "spearman" in results["similarity"]["theorem2_rank"]
  report = (workdir / "report.md").read_text()
  assert "Verdict" in report and "Theorem 2" in report
  assert (workdir / "similarity.png").exists() and (workdir / "main_error_vs_m.png").exists()
  assert "[1/" in completed.stderr  # A progress line per (task, m, seed).

  # Same config again: results.json is reused (identical numbers, no new training).
  again = sweep.run(theory_config.get_config("smoke"), workdir)
  assert again["theorem1"] == results["theorem1"]
  # A killed run resumes from the per-(m, seed) cache: drop results.json, rerun.
  (workdir / "results.json").unlink()
  cached = len(list((workdir / "cache").glob("*.json")))
  resumed = sweep.run(theory_config.get_config("smoke"), workdir)
  assert resumed["theorem2"] == results["theorem2"]
  assert len(list((workdir / "cache").glob("*.json"))) == cached
