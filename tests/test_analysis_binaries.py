"""Each analysis binary's smoke preset writes its contract files (on a real tiny run)."""

import json
import os
import subprocess
import sys

import pytest

from configs import gradient_stats as gradient_stats_cfg
from configs import gradient_variation as gradient_variation_cfg
from configs import hessian as hessian_cfg
from configs import landscape as landscape_cfg
from configs import lenet_mnist
from configs import weight_tsne as weight_tsne_cfg
from experiments import gradient_stats, gradient_variation, hessian, landscape, weight_tsne
from transjax import params as params_lib
from transjax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("smoke_run"))
  train.train(lenet_mnist.get_config("smoke"), d)
  return d


def _cfg(module, run_dir, **overrides):
  c = module.get_config("smoke")
  c.checkpoints = run_dir
  for k, v in overrides.items():
    setattr(c, k, v)
  return c


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def test_hessian_binary(run_dir, tmp_path):
  out = hessian.run(_cfg(hessian_cfg, f"{run_dir},{run_dir}"), str(tmp_path))
  res = _results(tmp_path)
  assert len(res["runs"]) == 2
  r = res
  assert len(r["eigenvalues"]) == 3 and r["eigenvalues"] == sorted(r["eigenvalues"], reverse=True)
  assert r["method"] == "lanczos" and r["hvp_count"] > 0 and "trace" in r["trace"]
  assert "synthetic" in r["data"]
  assert os.path.exists(tmp_path / "eigenvalues.png")
  assert out["runs"]


def test_landscape_binary_layer_and_center(run_dir, tmp_path):
  landscape.run(_cfg(landscape_cfg, run_dir), str(tmp_path), layer="conv2", center="init")
  res = _results(tmp_path)
  assert res["layer"] == "conv2" and res["center"] == "init"
  assert len(res["axes"]) == 2 and len(res["losses"]) == 9 and len(res["losses"][0]) == 9
  assert abs(res["losses"][4][4] - res["center_loss"]) < 1e-5
  assert "synthetic" in res["data"] and os.path.exists(tmp_path / "landscape.png")
  assert not os.path.exists(tmp_path / "landscape_partial.npz")  # only while it runs
  with pytest.raises(params_lib.UnknownLayerError, match="Valid layers"):
    landscape.run(_cfg(landscape_cfg, run_dir), str(tmp_path), layer="layer3.0.conv2")


def test_landscape_binary_command_line(run_dir, tmp_path):
  cmd = [sys.executable, "-m", "experiments.landscape",
         "--config=configs/landscape.py:smoke", f"--config.checkpoints={run_dir}",
         "--config.dims=1", f"--workdir={tmp_path}", "--layer=fc"]
  env = {**os.environ, "PYTHONPATH": ROOT}
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "centre loss" in proc.stdout
  assert len(_results(tmp_path)["losses"]) == 9


def test_gradient_variation_binary(run_dir, tmp_path):
  gradient_variation.run(_cfg(gradient_variation_cfg, run_dir, steps="20,60"), str(tmp_path))
  res = _results(tmp_path)["runs"][run_dir]
  for p in ("gradient", "fixed"):
    assert res["protocols"][p]["steps"] == [20, 60]
    assert len(res["protocols"][p]["max_change"]) == 2
    assert os.path.exists(tmp_path / f"gradient_variation_{p}.png")


def test_gradient_stats_binary(run_dir, tmp_path):
  gradient_stats.run(_cfg(gradient_stats_cfg, run_dir), str(tmp_path))
  res = _results(tmp_path)["runs"][run_dir]
  assert res["scale"]["layers"][0] == "fc" and len(res["svd"]["projection"]) == 16
  for f in ("gradient_histogram.png", "singular_projection.png", "layer_gradient_scale.png"):
    assert os.path.exists(tmp_path / f)


def test_weight_tsne_binary(run_dir, tmp_path):
  weight_tsne.run(_cfg(weight_tsne_cfg, f"{run_dir},{run_dir},{run_dir}", inits="a,b,c"),
                  str(tmp_path))
  res = _results(tmp_path)
  assert len(res["embedding"]) == 3 and res["inits"] == ["a", "b", "c"]
  assert os.path.exists(tmp_path / "tsne.png")
