"""experiments.benchmark_gpu --smoke: the one-command accelerator benchmark runs end to end
on CPU with tiny sizes and writes one JSON holding every benchmark's result."""

import json
import subprocess
import sys

from conftest import ROOT


def test_smoke_runs_every_benchmark_into_one_json(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run([sys.executable, "-m", "experiments.benchmark_gpu", "--smoke",
                         f"--output={out}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  result = json.loads(out.read_text())
  assert result["smoke"] and result["device"]["backend"]
  benches = result["benchmarks"]
  assert set(benches) == {"train", "analysis_51", "theory"}
  assert all(b["returncode"] == 0 for b in benches.values())
  assert benches["train"]["result"]["matmul_flops_per_s"] > 0
  analysis = benches["analysis_51"]["result"]
  assert analysis["landscape"]["torch_point_loop"]["measured"] is False  # peers off
  assert analysis["landscape"]["ratio_vs_point_loop"] is None
  assert len(benches["theory"]["result"]["widths"]) == 2
