"""The training-based paper experiments: smoke runs end to end, computed verdicts, full configs."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import pathlib

import pytest

from transjax import config as config_lib
from transjax.paper import common, inputs_labels, pretrain_epochs, transfer_targets

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = {"transfer_targets": transfer_targets, "inputs_labels": inputs_labels,
           "pretrain_epochs": pretrain_epochs}


def load_config(name: str, preset: str):
  path = ROOT / "configs" / f"paper_{name}.py"
  spec = importlib.util.spec_from_file_location(f"paper_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


@pytest.fixture(scope="module")
def shared_sources(tmp_path_factory):
  return str(tmp_path_factory.mktemp("sources"))


@pytest.mark.parametrize("name", list(MODULES))
def test_smoke_runs_end_to_end(name, tmp_path, shared_sources):
  config = load_config(name, "smoke")
  config.shared_dir = shared_sources
  module = MODULES[name]
  results = module.run(config, str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["claims"] and all(c["verdict"] in common.VERDICTS for c in on_disk["claims"])
  for key in ("elements", "data", "summary", "figures"):
    assert key in on_disk, key
  assert tuple(results["figures"]) == module.FIGURES
  for f in module.FIGURES:
    assert (tmp_path / f).stat().st_size > 0
  for c in on_disk["claims"]:
    assert set(c["element"].split(" / ")) <= set(module.ELEMENTS), c["element"]


def _tt_results(test_errors, deviations, scratch_errors, curve, train_error=0.0):
  targets = ["near", "mid", "far"]
  table = {}
  for t, e, d, s in zip(targets, test_errors, deviations, scratch_errors):
    table[t] = {
        "fixed": {"train_error": [train_error] * 3, "test_error": [e] * 3, "deviation": [d] * 3,
                  "curve_steps": [0, 1, 2, 3], "curves": [curve] * 3},
        "finetune": {"train_error": [0.0] * 3, "test_error": [e] * 3, "deviation": [10 * d] * 3,
                     "curve_steps": [0, 1, 2, 3], "curves": [curve] * 3},
        "scratch": {"train_error": [0.0] * 3, "test_error": [s] * 3, "deviation": [1.0] * 3,
                    "curve_steps": [0, 1, 2, 3], "curves": [curve] * 3}}
  return {"targets": targets, "modes": ["fixed", "finetune", "scratch"], "table": table,
          "data": {}, "table2": transfer_targets.table2(table, targets)}


def test_transfer_targets_claims_follow_the_numbers():
  agree = transfer_targets.claims(_tt_results(
      [0.05, 0.2, 0.4], [0.01, 0.05, 0.1], [0.5, 0.3, 0.42], [0.0, 0.1, 0.2, 0.3]))
  assert [c.verdict for c in agree] == [common.REPRODUCED] * 4
  contra = transfer_targets.claims(_tt_results(
      [0.05, 0.06, 0.07], [0.1, 0.05, 0.01], [0.04, 0.3, 0.5], [0.3, 0.2, 0.1, 0.0],
      train_error=0.3))
  assert [c.verdict for c in contra] == [common.NOT_REPRODUCED] * 4
  bad_train = _tt_results([0.05, 0.2, 0.4], [0.01, 0.05, 0.1], [0.5, 0.3, 0.42], [0, 1, 2, 3])
  bad_train["table"]["far"]["fixed"]["train_error"] = [0.3] * 3
  assert transfer_targets.claims(bad_train)[0].verdict == common.PARTLY


def _il_results(acc, dev_fashion, dev_scratch, real, colour, scratch):
  def entry(a, dev=0.1):
    return {"accuracy": [a], "deviation": {g: [dev] for g in inputs_labels.LAYER_GROUPS},
            "deviation_sum": [3 * dev]}
  names = ("mnist", "mnist_upside_down", "fashion_mnist", "scratch")
  inputs = {n: entry(a) for n, a in zip(names, acc)}
  inputs["fashion_mnist"] = entry(acc[2], dev_fashion)
  inputs["scratch"] = entry(acc[3], dev_scratch)
  return {"inputs": inputs, "labels": {"cifar_real": entry(real), "cifar_colour": entry(colour),
                                       "scratch": entry(scratch)}, "data": {}}


def test_inputs_labels_claims_follow_the_numbers():
  agree = inputs_labels.claims(_il_results([0.9, 0.85, 0.61, 0.6], 0.3, 0.3, 0.7, 0.41, 0.4))
  assert [c.verdict for c in agree[:3]] == [common.REPRODUCED] * 3
  contra = inputs_labels.claims(_il_results([0.5, 0.6, 0.9, 0.7], 0.1, 0.3, 0.3, 0.6, 0.4))
  assert [c.verdict for c in contra[:3]] == [common.NOT_REPRODUCED] * 3
  assert all(c.verdict == common.NOT_REPRODUCED and "not run" in c.why for c in agree[3:])


def test_pretrain_epochs_claims_follow_the_numbers():
  base = {"steps": [1, 2, 3, 4], "epochs": [1, 2, 3, 4], "data": {},
          "source_accuracy": [0.5, 0.7, 0.8, 0.9]}
  peak = dict(base, target_accuracy=[[0.5], [0.7], [0.65], [0.6]])
  rising = dict(base, target_accuracy=[[0.5], [0.6], [0.65], [0.7]])
  assert pretrain_epochs.claims(peak)[0].verdict == common.REPRODUCED
  assert pretrain_epochs.claims(rising)[0].verdict == common.NOT_REPRODUCED


def test_full_configs_validate_without_data():
  weights = "/nonexistent/resnet50.pth"
  c = load_config("transfer_targets", "full")
  configs = transfer_targets.training_configs(c, weights)
  assert len(configs) == len(c.target_names) * len(c.modes) * c.num_seeds
  for cfg in configs.values():
    config_lib.validate(cfg)
  assert {cfg.model.name for cfg in configs.values()} == {"resnet50"}

  c = load_config("inputs_labels", "full")
  dirs = {n: "/nonexistent/" + n for n in tuple(c.inputs.sources) + tuple(c.labels.sources)}
  for cfg in inputs_labels.training_configs(c, dirs).values():
    config_lib.validate(cfg)
  scenes = inputs_labels.scene_configs(c)
  assert {k[:2] for k in scenes} == {(w, t) for w in ("imagenet", "places")
                                     for t in ("cub200", "mit_indoor")}
  for cfg in scenes.values():
    config_lib.validate(cfg)
    assert cfg.model.name == "resnet50" and cfg.init_from.endswith(".pth")

  c = load_config("pretrain_epochs", "full")
  pretrain_epochs.check_steps(c)
  config_lib.validate(pretrain_epochs.pretrain_config(c))
  for step in c.checkpoint_steps:
    config_lib.validate(pretrain_epochs.finetune_config(c, "/nonexistent/pretrain", step, 0))


def test_full_transfer_targets_without_weights_is_a_clear_error(tmp_path):
  c = load_config("transfer_targets", "full")
  with pytest.raises(ValueError, match="init_from"):
    transfer_targets.run(c, str(tmp_path))
  c.init_from = str(tmp_path / "missing.pth")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    transfer_targets.run(c, str(tmp_path))


@pytest.mark.parametrize("imagenet_cub, places_indoor, verdict", [
    (0.80, 0.70, common.REPRODUCED), (0.60, 0.50, common.NOT_REPRODUCED)])
def test_fig8cd_verdicts_are_computed(imagenet_cub, places_indoor, verdict):
  cd = {"accuracy": {"imagenet/cub200": [imagenet_cub], "places/cub200": [0.7],
                     "imagenet/mit_indoor": [0.6], "places/mit_indoor": [places_indoor]},
        "mean_test_error": {"imagenet/cub200": [1 - imagenet_cub], "places/cub200": [0.3],
                            "imagenet/mit_indoor": [0.4], "places/mit_indoor": [1 - places_indoor]}}
  claims = inputs_labels._scene_claims(cd)  # pylint: disable=protected-access
  assert [c.element for c in claims] == ["Fig 8c", "Fig 8d"]
  assert {c.verdict for c in claims} == {verdict}
  assert {c.verdict for c in inputs_labels._scene_claims(inputs_labels.NOT_RUN_8CD)} == {
      common.NOT_REPRODUCED}


def test_fig8cd_missing_weights_is_a_clear_error(tmp_path):
  c = load_config("inputs_labels", "full")
  c.scenes.weights = {"imagenet": str(tmp_path / "missing.pth")}
  with pytest.raises(FileNotFoundError, match="weight files not found"):
    inputs_labels._run_scenes(c, str(tmp_path))  # pylint: disable=protected-access
