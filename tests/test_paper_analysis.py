"""The analysis experiments (Fig 3-7, 10, 11, B.4) and the theory section: smoke runs write
their contract files; claims() verdicts follow the numbers; full configs validate."""

from __future__ import annotations

import importlib
import json
import os

import pytest

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
  dirs = {smoke_runs[n][1]["run_dirs"]["pretrained"] for n in ("minima", "init_landscapes",
                                                                "gradient_stats")}
  assert len(dirs) == 1


# ------------------------------------------------------------------- claims are computed


def _verdicts(module, results):
  return [c.verdict for c in module.claims(results)]


def _minima_results(p_eig, r_eig, p_inc, r_inc):
  stats = lambda inc: {"stats": {"mean_increase": inc, "max_increase": 3 * inc}}
  return {"eigenvalues": {"pretrained": p_eig, "random": r_eig},
          "landscape": {"pretrained": stats(p_inc), "random": stats(r_inc)},
          "data": ["usps (stand-in for SVHN)"], "preset": "quick"}


def test_minima_claims():
  m = _module("minima")
  assert _verdicts(m, _minima_results([5, 2], [9, 4], 0.1, 0.5)) == [common.REPRODUCED] * 2
  assert _verdicts(m, _minima_results([9, 4], [5, 2], 0.5, 0.1)) == [common.NOT_REPRODUCED] * 2
  assert _verdicts(m, _minima_results([5, 9], [9, 1], 0.1, 0.5))[0] == common.PARTLY


def _variation_results(p, r):
  block = lambda v: {"mean_gradient": v, "max_gradient": 2 * v, "mean_fixed": v, "max_fixed": 2 * v}
  return {"variation": {"pretrained": block(p), "random": block(r)}, "data": []}


def test_gradient_variation_claims():
  m = _module("gradient_variation")
  assert _verdicts(m, _variation_results(0.1, 1.0)) == [common.REPRODUCED] * 2
  assert _verdicts(m, _variation_results(1.0, 0.1)) == [common.NOT_REPRODUCED] * 2


def _tsne_results(within_init, within_target, nn):
  return {"clusters": {"mean_within_init": within_init,
                       "mean_within_target_across_inits": within_target,
                       "nn_same_init_fraction": nn, "num_runs": 9}, "data": []}


def test_tsne_claims_and_cluster_stats():
  m = _module("tsne_weights")
  assert _verdicts(m, _tsne_results(1.0, 5.0, 1.0)) == [common.REPRODUCED]
  assert _verdicts(m, _tsne_results(5.0, 1.0, 0.0)) == [common.NOT_REPRODUCED]
  import numpy as np
  # Two inits x two targets; same-init points close together.
  pts = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], float)
  d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
  s = m.cluster_stats(d, ["a", "b", "a", "b"], ["p", "p", "r", "r"])
  assert s["mean_within_init"] == 1.0 and s["mean_within_target_across_inits"] == 10.0
  assert s["nn_same_init_fraction"] == 1.0
  s = m.cluster_stats(d, ["a", "a", "b", "b"], ["p", "r", "p", "r"])
  assert s["nn_same_init_fraction"] == 0.0


def _init_results(p_range, r_range, sp, sr, p_mean, r_mean):
  layer = lambda a, b: {"pretrained": {"range": a, "roughness": a},
                        "random": {"range": b, "roughness": b}}
  return {"lower_layers": ["conv1", "conv2"],
          "per_layer": {"conv1": layer(p_range, r_range), "conv2": layer(p_range, r_range)},
          "convergence": {"pretrained": {"steps_to_threshold": sp, "mean_train_loss": p_mean},
                          "random": {"steps_to_threshold": sr, "mean_train_loss": r_mean}},
          "threshold": 0.5, "data": []}


def test_init_landscape_claims():
  m = _module("init_landscapes")
  assert _verdicts(m, _init_results(0.1, 1.0, 10, 50, 0.3, 0.9)) == [common.REPRODUCED] * 2
  assert _verdicts(m, _init_results(1.0, 0.1, 50, 10, 0.9, 0.3)) == [common.NOT_REPRODUCED] * 2
  # Scratch never reaching the threshold counts as slower.
  assert _verdicts(m, _init_results(0.1, 1.0, 10, None, 0.3, 0.9))[0] == common.REPRODUCED
  assert m.steps_to_threshold([(5, 2.0), (10, 0.4)], 0.5) == 10
  assert m.steps_to_threshold([(5, 2.0)], 0.5) is None


def _stats_results(p, r):
  block = lambda v: {"mean_abs_grad": v, "top_projection": v, "scale_spread": 1 + v,
                     "scale_mean": v}
  return {"stats": {"pretrained": block(p), "random": block(r)}, "layer": "conv2", "data": []}


def test_gradient_stats_claims():
  m = _module("gradient_stats")
  assert _verdicts(m, _stats_results(0.1, 1.0)) == [common.REPRODUCED] * 2
  assert _verdicts(m, _stats_results(1.0, 0.1)) == [common.NOT_REPRODUCED] * 2


def _theory_results(status):
  checks = ("theorem1", "theorem1_vector", "theorem2", "theorem2_scratch", "lemma3", "lemma1",
            "lemma4", "theorem3")
  rank = {"status": status}
  return {"verdicts": {k: {"status": status} for k in checks},
          "similarity": {"theorem1_rank": rank, "theorem2_rank": rank,
                         "finetune_vs_scratch": {"agree": 4 if status == "holds" else 0,
                                                 "total": 4}},
          "preset": "quick"}


def test_theory_claims():
  m = _module("theory_section")
  assert _verdicts(m, _theory_results("holds")) == [common.REPRODUCED] * 3
  assert _verdicts(m, _theory_results("does not hold")) == [common.NOT_REPRODUCED] * 3
  assert [c.element for c in m.claims(_theory_results("holds"))] == list(m.ELEMENTS)


# --------------------------------------------------------------------------- full configs


@pytest.mark.parametrize("name", sorted(MODULES))
def test_full_configs_load_and_validate(name):
  c = _config(MODULES[name], "full")
  assert c.preset == "full"
  _module(name).validate(c)
  if "resolution" in c:
    assert (c.resolution, c.eta, c.num_samples) == (200, 0.001, 256)
  if "top_k" in c:
    assert c.top_k == 20


def test_theory_full_config_validates():
  _module("theory_section").validate(importlib.import_module("theory.presets").get_config("full"))


def test_unknown_preset_names_the_valid_ones():
  with pytest.raises(ValueError, match="smoke"):
    _config("minima", "huge")
