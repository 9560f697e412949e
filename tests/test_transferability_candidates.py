"""Ranking candidates on a target: features through the model's head tap, the ranking and
its JSON, candidate names (run checkpoints). Tiny fresh LeNets stand in for pretrained ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transjax import functional
from transjax.data import spec as data_spec
from transjax.data import transforms
from transjax.models import build_model
from transjax.transferability import candidates, ntk, theory_score


def _lenet(name: str, seed: int) -> candidates.Candidate:
  model = build_model("lenet", 4, in_channels=1, input_size=28, seed=seed)
  return candidates.Candidate(name, model, 28, 1, None, None, f"fresh lenet {seed}")


@pytest.fixture(name="target")
def _target():
  return data_spec.build({"name": "digits", "split": "train", "transforms": ("total:64",)}, seed=0)


def test_features_are_the_head_input_and_probs_its_softmax(target):
  cand = _lenet("a", 0)
  feats, probs = candidates.features_and_probs(cand, target, batch_size=16)
  n = len(target)
  assert feats.shape[0] == n and feats.ndim == 2 and feats.dtype == np.float64
  assert probs.shape == (n, 4)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_rank_to_file_ranks_best_first_and_writes_json(tmp_path, monkeypatch):
  monkeypatch.setattr(candidates, "load_candidate",
                      lambda source, **kw: _lenet(source, int(source[-1])))
  out = tmp_path / "r" / "ranking.json"
  result = candidates.rank_to_file({"name": "digits", "split": "train"}, ["m0", "m1", "m2"],
                                   "knn", str(out), num_samples=60)
  scores = [row["score"] for row in result["ranking"]]
  assert scores == sorted(scores, reverse=True)
  assert [row["rank"] for row in result["ranking"]] == [1, 2, 3]
  assert result["num_samples"] == 60
  assert json.loads(out.read_text())["ranking"][0]["candidate"] == result["ranking"][0]["candidate"]
  table = candidates.format_ranking(result)
  assert "knn" in table and "m0" in table


def test_run_checkpoint_names(tmp_path):
  assert candidates.run_checkpoint(str(tmp_path)) == (str(tmp_path), "final")
  assert candidates.run_checkpoint(f"{tmp_path}@400") == (str(tmp_path), 400)
  assert candidates.run_checkpoint(f"{tmp_path}@init") == (str(tmp_path), "init")
  assert candidates.run_checkpoint("imagenet:efficientnet_lite0")[1] == "final"


def test_unknown_candidates_and_scores_are_refused(target):
  with pytest.raises(FileNotFoundError):
    candidates.load_candidate("/no/such/candidate")
  with pytest.raises(KeyError):
    candidates.rank_candidates(target, ["x"], "no_such_score")


def test_the_ntk_of_a_models_linear_head_is_its_features_gram_plus_one(target):
  cand = _lenet("a", 1)
  target = transforms.subset_total(target, 20, 0)
  feats, probs = candidates.features_and_probs(cand, target)
  graphdef, params, state = functional.split(cand.model)
  apply_fn, subset = ntk.model_apply_fn(graphdef, params, state, "fc")
  kernel = ntk.empirical_ntk(apply_fn, subset, candidates.model_inputs(cand, target))
  np.testing.assert_allclose(kernel, feats @ feats.T + 1.0, rtol=1e-5)
  got = candidates.ntk_score(cand, target, "ntk_deviation", probs)
  np.testing.assert_allclose(got, theory_score.deviation_score(feats @ feats.T + 1.0,
                                                               target.labels, probs), rtol=1e-4)


def test_a_jacobian_over_budget_is_refused():
  with pytest.raises(ValueError, match="budget"):
    ntk.empirical_ntk(lambda p, x: x @ p, np.ones((3, 5), np.float32), np.ones((2, 3)),
                      budget_bytes=10)


def test_the_binary_offers_every_score():
  from experiments import rank_models  # pylint: disable=import-outside-toplevel
  assert rank_models._NTK_SCORES == list(candidates.NTK_SCORES)  # pylint: disable=protected-access
