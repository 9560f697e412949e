"""The analysis experiments (Fig 3-7, 10, 11, B.4) and the theory section: smoke runs write
their contract files; claims() verdicts follow the numbers; full configs validate."""

from __future__ import annotations

import importlib
import json
import os

import pytest

from transjax import memory
from transjax.analysis import hessian
from transjax.paper import common

MODULES = {  # experiment module -> its presets (transjax.paper.presets.<name>)
    "minima": "minima",
    "tsne_weights": "tsne_weights",
    "init_landscapes": "init_landscapes",
    "gradient_variation": "gradient_variation",
    "gradient_stats": "gradient_stats",
}


def _module(name):
  return importlib.import_module(f"transjax.paper.{name}")


def _config(cfg_name, preset, **fields):
  c = importlib.import_module(f"transjax.paper.presets.{cfg_name}").get_config(preset)
  for k, v in fields.items():
    setattr(c, k, v)
  return c


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
  """Every analysis experiment's smoke run, sharing one source and one target pair."""
  root = tmp_path_factory.mktemp("analysis")
  shared = str(root / "shared")
  out = {}
  for name, cfg_name in MODULES.items():
    workdir = str(root / name)
    out[name] = (workdir, _module(name).run(_config(cfg_name, "smoke", shared_dir=shared), workdir))
  return out


@pytest.mark.parametrize("name", sorted(MODULES))
def test_smoke_run_writes_contract_files(smoke_runs, name):
  workdir, results = smoke_runs[name]
  module = _module(name)
  with open(os.path.join(workdir, "results.json")) as f:
    stored = json.load(f)
  for key in ("elements", "data", "summary", "figures", "claims", "metadata"):
    assert key in stored, key
  assert stored["figures"] == list(module.FIGURES)
  for fig in stored["figures"]:
    assert os.path.getsize(os.path.join(workdir, fig)) > 0, fig
  assert set(c["element"] for c in stored["claims"]) <= set(module.ELEMENTS)
  assert all(c["verdict"] in common.VERDICTS for c in stored["claims"])
  assert stored["summary"].startswith("|")
  # The stored verdicts are what claims() computes from the stored numbers.
  assert [c.to_dict() for c in module.claims(stored)] == stored["claims"]
  assert results["claims"] == stored["claims"]


def test_target_pair_is_shared(smoke_runs):
  dirs = {tuple(smoke_runs[n][1]["run_dirs"]["pretrained"])
          for n in ("minima", "init_landscapes", "gradient_stats")}
  assert len(dirs) == 1 and len(next(iter(dirs))) == 1   # smoke: one seed


# ---------------------------------------------------- helpers behind the claims
# (claims() themselves: tests/test_claims.py)


def test_cluster_stats():
  import numpy as np
  m = _module("tsne_weights")
  # Two inits x two targets; same-init points close together.
  pts = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], float)
  d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
  s = m.cluster_stats(d, ["a", "b", "a", "b"], ["p", "p", "r", "r"])
  assert s["mean_within_init"] == 1.0 and s["mean_within_target_across_inits"] == 10.0
  assert s["nn_same_init_fraction"] == 1.0
  s = m.cluster_stats(d, ["a", "a", "b", "b"], ["p", "r", "p", "r"])
  assert s["nn_same_init_fraction"] == 0.0


def test_steps_to_threshold():
  m = _module("init_landscapes")
  assert m.steps_to_threshold([(5, 2.0), (10, 0.4)], 0.5) == 10
  assert m.steps_to_threshold([(5, 2.0)], 0.5) is None


# --------------------------------------------------------------------------- full configs


@pytest.mark.parametrize("name", sorted(MODULES))
def test_full_configs_load_and_validate(name, monkeypatch):
  c = _config(MODULES[name], "full")
  assert c.preset == "full"
  # On an accelerator of 80 GiB (the paper's top-20 Lanczos basis over ResNet-50: 17.5 GiB).
  monkeypatch.setattr(memory, "available_bytes", lambda: (80 << 30, "test device memory"))
  _module(name).validate(c)
  if "resolution" in c:
    assert (c.resolution, c.eta, c.num_samples) == (200, 0.001, 256)
  if "top_k" in c:
    assert c.top_k == 20


def test_full_minima_on_a_small_machine_is_refused_with_the_steps_that_fit(monkeypatch):
  """23.5M ResNet-50 parameters x 200 Krylov steps in float32 do not fit in half of 24 GiB:
  refused before the pair is trained, with the field to set; 120 steps fit."""
  c = _config(MODULES["minima"], "full")
  monkeypatch.setattr(memory, "available_bytes", lambda: (24 << 30, "test host memory"))
  with pytest.raises(hessian.BasisTooLargeError,
                     match=r"200 steps x 23,510,081 parameters \(float32\) needs 17.5 GiB.*"
                           r"at most 137 steps fit\. Set --config.lanczos_max_steps"):
    _module("minima").validate(c)
  c.lanczos_max_steps = 120
  _module("minima").validate(c)


def test_theory_full_config_validates():
  _module("theory_section").validate(importlib.import_module("theory.presets").get_config("full"))


def test_unknown_preset_names_the_valid_ones():
  with pytest.raises(ValueError, match="smoke"):
    _config("minima", "huge")
