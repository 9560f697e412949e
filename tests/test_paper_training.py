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


# claims() of these experiments: tests/test_claims.py.


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
  assert c.init_from == "weights/resnet50-0676ba61.pth"   # as the other full presets
  c.init_from = str(tmp_path / "missing.pth")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    transfer_targets.run(c, str(tmp_path))
  c.init_from = ""
  with pytest.raises(ValueError, match="init_from"):
    transfer_targets.run(c, str(tmp_path))


def test_fig8cd_missing_weights_is_a_clear_error(tmp_path):
  c = load_config("inputs_labels", "full")
  c.scenes.weights = {"imagenet": str(tmp_path / "missing.pth")}
  with pytest.raises(FileNotFoundError, match="weight files not found"):
    inputs_labels._run_scenes(c, str(tmp_path))  # pylint: disable=protected-access
