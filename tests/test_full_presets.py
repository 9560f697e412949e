"""The `full` presets of every paper experiment, end to end on CPU.

A GPU user's first `full` run must not crash at step one. Each test runs one experiment's
`full` preset (ResNet-50, TFDS names, torchvision weights, the paper's protocol) through
its own `run`, shrunk only by the hooks a user has on the command line
(transjax/paper/overrides.py): `train_overrides` (2 steps, batch 2, 64-pixel inputs) and
`data_stand_ins` (the TFDS-prepared `mnist` of the shared data folder read in place of
Caltech-101, Stanford Cars, CUB-200, Food-101, SVHN and the Office-31 / MIT-Indoor image
folders), plus the experiment's analysis sizes (grid 3x3, top-2 eigenvalues, 4 samples)
and one seed. The weights are torchvision-format state dicts of a randomly initialised
ResNet-50, written the way torchvision's and the Places365 files are (an .npz of
torchvision names; a .pth checkpoint with "state_dict" and "module." prefixes), so the
real reading and conversion path runs. Verdicts are meaningless here; what is checked is
that every experiment reaches results.json with computed claims and its figures.

The experiments share one folder of sources and fine-tuning pairs, as in the reproduce
job, and run in this process in file order so jitted steps are shared; each test still
trains what it needs when run alone.
"""

from __future__ import annotations

import json
import pathlib
import types

import jax
import numpy as np
import pytest

from transjax import functional
from transjax.analysis import landscape
from transjax.models import build_model
from transjax.paper import (common, gradient_stats, gradient_variation, init_landscapes,
                            inputs_labels, minima, presets, pretrain_epochs, report,
                            reproduce, transfer_targets, tsne_weights)
from transjax.weights import torchvision_resnet as pretrained

MODULES = {"transfer_targets": transfer_targets, "inputs_labels": inputs_labels,
           "pretrain_epochs": pretrain_epochs, "minima": minima, "tsne_weights": tsne_weights,
           "init_landscapes": init_landscapes, "gradient_variation": gradient_variation,
           "gradient_stats": gradient_stats}

# What a user would pass as --config.train_overrides for a dry run of the full presets.
TRAIN_OVERRIDES = ",".join([
    "num_steps=2", "batch_size=2", "eval_batch_size=8", "log_every=1", "eval_every=2",
    "checkpoint_every=2", "model.input_size=64", "data.max_eval_train=8",
    # One optimiser for every run: fewer distinct ResNet-50 steps to compile on 2 cores.
    "optim.schedule=constant", "optim.lr=0.01",
    "variation.every=1", "variation.num_points=2", "variation.num_samples=4"])
# The paper's datasets, each read as 16 (train) / 16 (test) MNIST images from TFDS; the
# digit sources of Fig 8a read their own (local) files, 16 images each.
MNIST = "tfds:mnist[:1000]|total:16"
PAPER_DATASETS = ("caltech101", "caltech_birds2011", "cars196", "food101", "svhn_cropped",
                  "folder:office31/webcam/images", "folder:mit_indoor67/Images")
DATA_STAND_INS = ",".join([f"{name}={MNIST}" for name in PAPER_DATASETS]
                          + ["mnist=mnist|total:16", "fashion_mnist=fashion_mnist|total:16"])


def _torchvision_resnet50(seed: int, num_classes: int) -> dict[str, np.ndarray]:
  """A random ResNet-50 as a torchvision state dict (names, OIHW layout, num_batches_tracked)."""
  from tests.test_pretrained import torchvision_resnet50_shapes  # pylint: disable=import-outside-toplevel
  model = build_model("resnet50", num_classes, input_size=224, seed=seed)
  state_dict = pretrained.flax_to_torchvision(model)
  assert {k: v.shape for k, v in state_dict.items()} == torchvision_resnet50_shapes(num_classes)
  return state_dict


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_data_dir):
  tfds_mnist = pathlib.Path(real_data_dir) / "tfds" / "mnist"
  if not tfds_mnist.is_dir():
    pytest.skip(f"TFDS-prepared mnist not found at {tfds_mnist}")
  root = tmp_path_factory.mktemp("full_presets")
  weights = root / "weights"
  weights.mkdir()
  imagenet = weights / "resnet50-imagenet-random.npz"
  np.savez(imagenet, **_torchvision_resnet50(seed=101, num_classes=1000))
  places_dict = _torchvision_resnet50(seed=102, num_classes=365)
  try:  # as the Places365 release: a torch checkpoint of a DataParallel model
    import torch  # pylint: disable=import-outside-toplevel
    places = weights / "resnet50_places365-random.pth"
    torch.save({"epoch": 90, "arch": "resnet50",
                "state_dict": {f"module.{k}": torch.from_numpy(np.array(v))
                               for k, v in places_dict.items()}}, places)
  except ImportError:
    places = weights / "resnet50_places365-random.npz"
    np.savez(places, **{f"module.{k}": v for k, v in places_dict.items()})
  del places_dict
  # One persistent compilation cache for the file (the analyses compile the same ResNet-50
  # programs per run). Not jax_disable_most_optimizations: it saves a quarter of each
  # compile but runs the Lanczos steps and landscapes several times slower (measured: the
  # file took longer than 13 minutes with it, 8 without).
  previous = jax.config.jax_compilation_cache_dir
  common.use_compilation_cache(str(root / "jax_cache"))
  try:
    yield types.SimpleNamespace(root=root, shared=str(root / "shared"), data_dir=real_data_dir,
                                imagenet=str(imagenet), places=str(places))
  finally:
    if previous is None and jax.config.jax_compilation_cache_dir == str(root / "jax_cache"):
      jax.config.update("jax_compilation_cache_dir", None)


def full_config(name: str, env):
  """The experiment's full preset, with the dry-run fields and the test's weights."""
  c = getattr(presets, name).get_config("full")
  assert c.preset == "full"
  c.shared_dir = env.shared
  c.data_dir = env.data_dir
  c.train_overrides = TRAIN_OVERRIDES
  c.data_stand_ins = DATA_STAND_INS
  if "seeds" in c:            # the pair: one seed (each seed is one more pair of runs)
    assert tuple(c.seeds) == (0, 1, 2)
    c.seeds = (0,)
  if "num_batches" in c:      # Fig 7: one batch (each is one more gradient of ResNet-50)
    c.num_batches = 1
  if "source_weights" in c:
    assert c.source_weights.endswith(".pth")   # the preset names torchvision's file
    c.source_weights = env.imagenet
  return c


def run_and_check(name: str, config, env) -> dict:
  module = MODULES[name]
  workdir = env.root / name
  results = module.run(config, str(workdir))
  on_disk = json.loads((workdir / "results.json").read_text())
  claims = on_disk["claims"]
  assert claims, "no claims"
  assert all(c["verdict"] in common.VERDICTS and c["checks"] for c in claims), claims
  assert set(on_disk["figures"]) == set(module.FIGURES)
  for f in module.FIGURES:
    assert (workdir / f).stat().st_size > 0, f
  # The stand-ins are named in what the experiment records about its data.
  assert "stand-in for" in json.dumps(on_disk["data"]), on_disk["data"]
  assert results["claims"] == claims
  return on_disk


def test_transfer_targets(env):
  c = full_config("transfer_targets", env)
  assert c.init_from.endswith(".pth")   # the preset names torchvision's file
  c.init_from = env.imagenet
  c.num_seeds = 1
  r = run_and_check("transfer_targets", c, env)
  assert set(r["table"]) == set(c.target_names)
  assert all(set(r["table"][t]) == set(c.modes) for t in c.target_names)


def test_inputs_labels(env):
  c = full_config("inputs_labels", env)
  c.num_seeds = 1
  assert set(c.scenes.weights) == {"imagenet", "places"}
  c.scenes.weights = {"imagenet": env.imagenet, "places": env.places}
  r = run_and_check("inputs_labels", c, env)
  assert set(r["fig8cd"]["accuracy"]) == {f"{w}/{t}" for w in c.scenes.weights
                                          for t in c.scenes.targets}


def test_pretrain_epochs(env):
  c = full_config("pretrain_epochs", env)
  r = run_and_check("pretrain_epochs", c, env)
  assert r["steps"] == [1, 2]     # the checkpoint schedule scaled to the 2-step run


def test_minima(env):
  c = full_config("minima", env)
  c.top_k, c.resolution, c.num_samples = 2, 3, 4
  # Lanczos' full reorthogonalisation over 25M parameters costs ~7 s a step on 2 cores;
  # the preset's 8k + 40 steps would take 10 minutes here.
  c.lanczos_max_steps = 4
  r = run_and_check("minima", c, env)
  assert all(len(v) == 2 for v in r["eigenvalues"].values())


def test_tsne_weights(env):
  c = full_config("tsne_weights", env)
  assert len(c.source_weights_by_name.split(",")) == len(c.sources) == 2
  c.source_weights_by_name = f"{env.imagenet},{env.places}"
  c.targets = ("cars196", "caltech_birds2011")   # the pair targets: their runs are shared
  r = run_and_check("tsne_weights", c, env)
  assert r["clusters"]["num_runs"] == len(c.targets) * (len(c.sources) + 1)


def test_init_landscapes(env):
  c = full_config("init_landscapes", env)
  # Every layer the preset names (stage 3 of ResNet-50) is a layer of the model; the run
  # itself takes two of them (each layer is one more landscape of the same kind).
  _, params, _ = functional.split(build_model("resnet50", 10, input_size=64))
  for layer in c.layers:
    landscape.layer_mask(params, layer)   # UnknownLayerError names the valid layers
  assert len(c.layers) == 18
  c.resolution, c.num_samples, c.layers = 3, 4, tuple(c.layers)[:2]
  r = run_and_check("init_landscapes", c, env)
  assert r["layers"] == list(c.layers) and set(r["per_layer"]) == set(c.layers)


def test_gradient_variation(env):
  c = full_config("gradient_variation", env)
  r = run_and_check("gradient_variation", c, env)
  assert all(v["num_records"] == 2 for v in r["variation"].values())


def test_gradient_stats(env):
  c = full_config("gradient_stats", env)
  c.num_samples = 4
  r = run_and_check("gradient_stats", c, env)
  assert r["layer"] == "layer3/0/conv2"


def test_the_report_of_the_full_run(env):
  """REPORT.md over the experiments above, as the reproduce job writes it."""
  missing = [n for n in MODULES if not (env.root / n / "results.json").exists()]
  if missing:
    pytest.skip(f"runs after the experiments of this file; not run here: {missing}")
  statuses = [{"name": n, "module": m.__name__, "status": "done", "wall_time_s": 1.0,
               "error": "", "commit": None} for n, m in MODULES.items()]
  assert set(MODULES) <= set(reproduce.EXPERIMENTS)
  text = pathlib.Path(report.write_report(str(env.root), statuses, "full",
                                          data_dir=env.data_dir)).read_text()
  assert "experiment(s) failed" not in text and "**Failed**" not in text
  for name, module in MODULES.items():
    assert f"## {name}" in text
    for fig in module.FIGURES:
      assert f"]({name}/{fig})" in text
  assert "stand-in data:" in text and "for caltech101" in text
