"""The imagenet preset: EfficientNet-Lite0 from its ImageNet weights in every experiment that
starts from a pretrained network, targets ordered by a computed similarity, the scale named."""

from __future__ import annotations

import json
import os

import pytest
from flax import nnx

from transjax import config as config_lib
from transjax import weights
from transjax.config import data_spec
from transjax.paper import common, minima, pairs, report, reproduce, sources, transfer_targets
from transjax.paper.presets import reproduce as reproduce_config
from transjax.paper.presets import transfer_targets as transfer_presets


def test_every_pretrained_network_experiment_has_an_imagenet_preset():
  c = reproduce_config.get_config("imagenet")
  assert c.experiments == reproduce_config.IMAGENET_EXPERIMENTS
  assert not c.sources
  for name in reproduce.EXPERIMENTS:
    assert c.presets[name] == ("imagenet" if name in c.experiments else "quick")
  for name in c.experiments:
    module, cfg = reproduce.experiment_config(name, "imagenet", "/nowhere/sources", "/data")
    if hasattr(module, "validate"):
      module.validate(cfg)
    runs = (pairs.pair_training_configs(cfg) if "target" in cfg
            else list(transfer_targets.training_configs(cfg, sources.IMAGENET_WEIGHTS).values()))
    for run in runs:
      config_lib.validate(run)
      assert run.model.name == "efficientnet_lite0" and run.model.input_size == 64
      assert run.init_from in ("", sources.IMAGENET_WEIGHTS)
      assert run.data.normalize == "efficientnet" and run.model.bn_momentum == 0.9


def test_bn_momentum_reaches_every_batchnorm_and_is_validated():
  c = config_lib.training_defaults()
  c.model.name, c.model.input_size, c.model.in_channels = "resnet_tiny", 16, 3
  default = [m.momentum for _, m in nnx.iter_modules(weights.build_from_config(c, 3))
             if isinstance(m, nnx.BatchNorm)]
  c.model.bn_momentum = 0.5
  changed = [m.momentum for _, m in nnx.iter_modules(weights.build_from_config(c, 3))
             if isinstance(m, nnx.BatchNorm)]
  assert default and all(m != 0.5 for m in default) and changed == [0.5] * len(default)
  c.model.bn_momentum = 1.5
  with pytest.raises(config_lib.ConfigError, match="model.bn_momentum"):
    config_lib.validate(c)


def _tiny_transfer_config():
  c = transfer_presets.get_config("smoke")
  c.run.model.name, c.run.model.input_size, c.run.model.in_channels = "resnet_tiny", 16, 1
  c.order_by_similarity = True
  c.similarity_samples = 32
  c.targets = {}
  c.target_names = ("near", "far")
  synth = "synthetic(num_train=64,num_test=16,seed=3)"
  c.targets.near = {"train": data_spec(synth, "train"), "test": data_spec(synth, "test")}
  # Another target: the same shapes upside down (only the order is asserted, not which wins).
  c.targets.far = {"train": data_spec(synth, "train", ("upside_down",)),
                   "test": data_spec(synth, "test")}
  return c


def test_targets_are_ordered_by_the_computed_distance_and_cached(tmp_path):
  c = _tiny_transfer_config()
  order, distances = transfer_targets.ordered_targets(c, "", str(tmp_path))
  assert sorted(distances) == ["far", "near"]
  assert order == sorted(distances, key=distances.get)
  assert all(d > 0 for d in distances.values())
  cached = json.loads((tmp_path / "similarity.json").read_text())
  assert cached["distances"] == distances
  # A second call reads the file instead of measuring again.
  cached["distances"] = {"near": 2.0, "far": 1.0}
  (tmp_path / "similarity.json").write_text(json.dumps(cached))
  assert transfer_targets.ordered_targets(c, "", str(tmp_path))[0] == ["far", "near"]
  c.order_by_similarity = False
  assert transfer_targets.ordered_targets(c, "", str(tmp_path)) == (["near", "far"], None)


def test_imagenet_weights_by_name_are_a_source():
  c = transfer_presets.get_config("imagenet")
  assert transfer_targets._source(c, "/nowhere") == (
      sources.IMAGENET_WEIGHTS, f"weights {sources.IMAGENET_WEIGHTS}")


def test_the_scale_names_the_network(tmp_path):
  assert common.model_description(
      pairs.target_config("cifar10", "random", "imagenet", "")) == (
      "EfficientNet-Lite0 (ImageNet) at 64 px")
  stats = lambda inc: {"stats": {"mean_increase": inc, "max_increase": 3 * inc}}
  results = {"eigenvalues": {"pretrained": [5, 2], "random": [9, 4]},
             "landscape": {"pretrained": stats(0.1), "random": stats(0.5)}, "data": [],
             "preset": "imagenet", "model": "EfficientNet-Lite0 (ImageNet) at 64 px",
             "elements": ["Fig 3"]}
  assert all(c.why.startswith("EfficientNet-Lite0 (ImageNet) at 64 px on a small target "
                              "instead of ResNet-50") for c in minima.claims(results))
  assert "LeNet" in minima.claims({**results, "model": None, "preset": "quick"})[0].why
  assert minima.claims({**results, "preset": "full"})[0].why == ""
  os.makedirs(tmp_path / "minima")
  (tmp_path / "minima" / "results.json").write_text(json.dumps(results))
  text = open(report.write_report(str(tmp_path), [
      {"name": "minima", "module": "transjax.paper.minima", "status": "done"}],
      "imagenet")).read()
  assert ("- scale: EfficientNet-Lite0 (ImageNet) at 64 px instead of ResNet-50 (the paper's "
          "network)") in text


def test_similarity_order_on_a_network_without_batchnorm_says_how_to_fix(tmp_path):
  c = _tiny_transfer_config()
  c.run.model.name, c.run.model.input_size = "lenet", 28
  with pytest.raises(ValueError, match="has no BatchNorm.*Set it False to keep the order"):
    transfer_targets.ordered_targets(c, "", str(tmp_path))
