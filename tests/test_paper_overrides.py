"""train_overrides / data_stand_ins (transjax/paper/overrides.py): parsing, one clear error
per bad input, and every place a paper experiment builds a training config."""

from __future__ import annotations

import json
import pathlib

import ml_collections
import pytest

from tests.test_binaries import _run
from tests.conftest import ROOT
from transjax import config as config_lib
from transjax.paper import (inputs_labels, overrides, pairs, presets, pretrain_epochs,
                            reproduce, transfer_targets, tsne_weights)

SHRINK = "num_steps=2,batch_size=4,model.input_size=64,optim.decay_at=(0.5,),data.augment=False"
STAND_INS = "*=tfds:mnist[:1000]|total:16,mnist=mnist|per_class:2"


def _experiment(train_overrides="", data_stand_ins=""):
  c = overrides.add_fields(ml_collections.ConfigDict())
  c.train_overrides, c.data_stand_ins = train_overrides, data_stand_ins
  return c


def test_train_overrides_parse_to_typed_values():
  got = overrides.train_overrides(_experiment(
      "num_steps=2, optim.lr=1, model.name=resnet50, optim.decay_at=(0.25, 0.5), "
      "data.augment=false, data.normalize=none, variation.every=3"))
  assert got == {"num_steps": 2, "optim.lr": 1.0, "model.name": "resnet50",
                 "optim.decay_at": (0.25, 0.5), "data.augment": False,
                 "data.normalize": "none", "variation.every": 3}
  assert isinstance(got["optim.lr"], float)
  # A dict works too (a config built in Python), and empty means nothing.
  assert overrides.train_overrides({"train_overrides": {"num_steps": 5}}) == {"num_steps": 5}
  assert overrides.train_overrides(_experiment()) == {}
  assert overrides.train_overrides(ml_collections.ConfigDict()) == {}   # no fields at all


@pytest.mark.parametrize("text, message", [
    ("num_step=2", "unknown training-config key 'num_step'"),
    ("optim.learning_rate=0.1", "unknown training-config key 'optim.learning_rate'"),
    ("seed=1", "'seed' is set per run by the experiment"),
    ("init_from=/x", "'init_from' is set per run"),
    ("data.train=mnist", "'data.train' is a data spec; replace datasets with config.data_stand_ins"),
    ("num_steps=two", "num_steps='two' has the wrong type; num_steps takes int"),
    ("data.augment=1", "data.augment=1 has the wrong type"),
    ("num_steps", "'num_steps' is not key=value"),
    ("variation.steps=2", "unknown key 'variation.steps'"),
])
def test_a_bad_train_override_is_one_config_error_naming_it(text, message):
  with pytest.raises(config_lib.ConfigError) as e:
    overrides.train_overrides(_experiment(text))
  assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("caltech_101=mnist", "Unknown dataset 'caltech_101'"),
    ("caltech101=mnsit", "Unknown dataset 'mnsit'"),
    ("caltech101=mnist|totl:4", "Unknown transform 'totl:4'"),
    ("caltech101=mnist[::3]", "bad slice '[::3]'"),
    ("caltech101", "'caltech101' is not key=value"),
])
def test_a_bad_stand_in_is_one_config_error_naming_it(text, message):
  with pytest.raises(config_lib.ConfigError) as e:
    overrides.data_stand_ins(_experiment(data_stand_ins=text))
  assert message in str(e.value) and "config.data_stand_ins" in str(e.value)


def test_stand_in_specs_keep_transforms_map_splits_and_name_the_original():
  stand_ins = overrides.data_stand_ins(_experiment(data_stand_ins=STAND_INS))
  spec = overrides.stand_in_spec(config_lib.data_spec("svhn_cropped", "train", ("per_class:60",)),
                                 stand_ins)
  assert spec == {"name": "tfds:mnist", "split": "train[:1000]",
                  "transforms": ("per_class:60", "total:16", "stand_in:svhn_cropped")}
  # validation (Food-101) reads the stand-in's test split; an image folder's "all" its train.
  assert overrides.stand_in_spec(config_lib.data_spec("food101", "validation"),
                                 stand_ins)["split"] == "test[:1000]"
  folder = overrides.stand_in_spec(
      config_lib.data_spec("folder:office31/webcam/images", "all", ("split_test:0.8",)), stand_ins)
  assert folder["split"] == "train[:1000]"
  assert folder["transforms"] == ("split_test:0.8", "total:16",
                                  "stand_in:folder:office31/webcam/images")
  # The dataset's own name: same split, only the transforms added, no stand-in tag.
  assert overrides.stand_in_spec(config_lib.data_spec("mnist", "test", ("upside_down",)),
                                 stand_ins) == {"name": "mnist", "split": "test",
                                                "transforms": ("upside_down", "per_class:2")}
  # A base name matches its options: synthetic(...) is replaced by "*" unless listed.
  assert overrides.stand_in_spec(config_lib.data_spec("synthetic(seed=3)", "train"),
                                 stand_ins)["name"] == "tfds:mnist"
  assert overrides.stand_in_spec(config_lib.data_spec("usps", "train"), {}) == \
      config_lib.data_spec("usps", "train")


def _check_shrunk(cfgs):
  assert cfgs
  for c in cfgs:
    config_lib.validate(c)
    assert c.num_steps == 2 and c.batch_size == 4 and c.model.input_size == 64
    assert c.data.augment is False and tuple(c.optim.decay_at) == (0.5,)
    for split in ("train", "test"):
      spec = c.data[split]
      assert spec.name in ("tfds:mnist", "mnist"), spec
      assert "total:16" in spec.transforms or "per_class:2" in spec.transforms


def _full(name):
  c = getattr(presets, name).get_config("full")
  c.train_overrides, c.data_stand_ins = SHRINK, STAND_INS
  return c


def test_every_training_config_of_the_full_experiments_is_shrunk():
  c = _full("transfer_targets")
  tt = transfer_targets.training_configs(c, "/weights.pth")
  _check_shrunk(tt.values())
  assert {cfg.mode for cfg in tt.values()} == {"fixed", "finetune", "scratch"}
  assert all(cfg.init_from == ("" if cfg.mode == "scratch" else "/weights.pth")
             for cfg in tt.values())   # per-run keys stay the experiment's

  c = _full("inputs_labels")
  names = tuple(c.inputs.sources) + tuple(c.labels.sources)
  _check_shrunk(inputs_labels.training_configs(c, {n: f"/sources/{n}" for n in names}).values())
  _check_shrunk(inputs_labels.scene_configs(c).values())

  c = _full("pretrain_epochs")
  pre = pretrain_epochs.pretrain_config(c)
  assert pretrain_epochs.schedule(c) == ((1, 2), 1)   # 5000 .. 160000 scaled to 2 steps
  assert (pre.num_steps, pre.keep_period, pre.eval_every, pre.checkpoint_every) == (2, 1, 1, 1)
  _check_shrunk([pre, pretrain_epochs.finetune_config(c, "/pre", 1, 0)])

  for name in ("minima", "init_landscapes", "gradient_variation", "gradient_stats"):
    _check_shrunk(pairs.pair_training_configs(_full(name)))
  c = _full("tsne_weights")
  _check_shrunk([cfg for _, _, cfg, _ in tsne_weights.run_configs(
      c, dict(zip(c.sources, c.source_weights_by_name.split(","))))])


def test_source_configs_and_the_variation_settings_take_the_overrides():
  c = _full("gradient_variation")
  c.train_overrides += ",variation.every=1,variation.num_points=3"
  s = overrides.variation(pairs.variation_settings("full"), c)
  assert (s.every, s.num_points, s.num_samples) == (1, 3, 256)
  assert overrides.variation(pairs.variation_settings("full"), None) == \
      pairs.variation_settings("full")


def test_tsne_full_shares_the_pair_runs_of_its_imagenet_source():
  # The pair experiments fine-tune from config.source_weights; Fig 4's runs from the same
  # file on the same target are those runs, not a second copy.
  c = presets.tsne_weights.get_config("full")
  c.shared_dir = "/shared"
  paths = dict(zip(c.sources, c.source_weights_by_name.split(",")))
  assert paths["imagenet"] == c.source_weights
  dirs = {(t, i): d for t, i, _, d in tsne_weights.run_configs(c, paths)}
  assert dirs[("cars196", "imagenet")] == pairs.pair_dir("/shared", "cars196", "pretrained")
  assert dirs[("cars196", "places365")] == pairs.pair_dir("/shared", "cars196", "pretrained",
                                                          "_from_places365")
  # Each target's random run starts from its own random weights (cars196 is target 1).
  assert dirs[("cars196", "random")] == pairs.pair_dir(
      "/shared", "cars196", "random", seed=tsne_weights.RANDOM_SEED + 1)
  assert [cfg.seed for t, i, cfg, _ in tsne_weights.run_configs(c, paths) if i == "random"] == [
      tsne_weights.RANDOM_SEED + k for k in range(len(c.targets))]
  cfgs = {(t, i): cfg for t, i, cfg, _ in tsne_weights.run_configs(c, paths)}
  pair = pairs.pair_training_configs(presets.minima.get_config("full"))[0]
  assert cfgs[("cars196", "imagenet")].to_dict() == pair.to_dict()


def test_the_reproduce_job_passes_its_overrides_to_sources_and_experiments(tmp_path):
  c = presets.reproduce.get_config("smoke")
  c.experiments = ("transfer_targets",)
  c.train_overrides = "num_steps=2,log_every=1,eval_every=1,checkpoint_every=2"
  c.data_stand_ins = "digits=synthetic(num_train=400,num_test=200,seed=3)"
  out = reproduce.run(c, str(tmp_path))
  assert not out["failed"], out
  configs = [json.loads(p.read_text()) for p in tmp_path.rglob("config.json")]
  assert len(configs) >= 1 + 2 * 3      # the mnist source + 2 targets x 3 modes
  assert all(cfg["num_steps"] == 2 for cfg in configs)
  names = {cfg["data"]["train"]["name"] for cfg in configs}
  assert "digits" not in names and "synthetic(num_train=400,num_test=200,seed=3)" in names
  done = json.loads((tmp_path / "transfer_targets" / "done.json").read_text())
  assert done["config"]["train_overrides"] == c.train_overrides


def test_the_command_line_override_and_its_errors(tmp_path: pathlib.Path):
  proc = _run(["experiments.paper_minima", "--config=configs/paper_minima.py:smoke",
               f"--workdir={tmp_path / 'w'}", f"--config.shared_dir={tmp_path / 's'}",
               "--config.train_overrides=num_steps=2,batch_sizes=4"], ROOT)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "unknown training-config key 'batch_sizes'" in lines[0], proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("config.json"))


def test_a_pair_run_reads_its_data_once(tmp_path, monkeypatch):
  """The gradient-variation callback and the training run share one `load_data`."""
  loads, trained = [], {}
  monkeypatch.setattr(pairs.run_data, "load_data", lambda c: loads.append(c) or "the data")
  monkeypatch.setattr(pairs, "variation_callbacks", lambda c, s, data: [("callback", data)])
  monkeypatch.setattr(pairs.train_lib, "train",
                      lambda c, d, callbacks, data: trained.update(callbacks=callbacks, data=data))
  config = ml_collections.ConfigDict({"seed": 0})
  pairs.ensure_target_run(config, str(tmp_path / "run"), "smoke")
  assert len(loads) == 1
  assert trained["data"] == "the data" and trained["callbacks"][-1] == ("callback", "the data")


def test_a_misspelled_tfds_stand_in_is_a_config_error():
  experiment = ml_collections.ConfigDict({"data_stand_ins": "*=tfds:mnsit[:100]"})
  with pytest.raises(config_lib.ConfigError, match="data_stand_ins.*did you mean 'mnist'"):
    overrides.data_stand_ins(experiment)
