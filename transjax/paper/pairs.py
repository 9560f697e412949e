"""The fine-tuning pair the analysis experiments share (Fig 3, 4, 5, 6, 7).

`pair_runs` trains "pretrained" (fine-tuned from the source) and "random" (from scratch) on
the same target into `<shared_dir>/targets/<target>_<init>`, with the gradient-variation
callback attached (Fig 6/11 read its records), so minima, tsne_weights, init_landscapes,
gradient_variation and gradient_stats read the same runs. Identical configs train once.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections

from transjax import config as config_lib
from transjax import functional
from transjax import results as results_lib
from transjax import train as train_lib
from transjax import train_callbacks
from transjax import weights
from transjax.analysis import batchnorm, gradients
from transjax.config import data_spec, training_defaults
from transjax.data import run_data
from transjax.paper import common, overrides, sources

INITS = ("pretrained", "random")
PREFIX = "gradvar_"   # metric keys the callback writes: gradvar_<protocol>/max_change, ...
# BatchNorm modes the callback measures in (transjax.analysis.batchnorm): the first one's
# keys are PREFIX..., the others' PREFIX<mode>_... . "batch" is the training loss along
# SGD's gradient (the paper's Fig 6/11 measure it during training); "running" the stored
# statistics (the protocol before the mode). A model without BatchNorm records the first.
VARIATION_BN_MODES = ("batch", "running")


@dataclasses.dataclass(frozen=True)
class VariationSettings:
  """How the callback measures (fixed per preset, so every experiment shares the runs)."""
  every: int
  num_points: int          # K: points along the gradient (the paper: 100)
  fixed_step: float        # delta of the fixed-step protocol
  num_samples: int         # fixed sample set (the paper: 256)
  bn_modes: tuple[str, ...] = VARIATION_BN_MODES


def variation_settings(preset: str) -> VariationSettings:
  if preset == "smoke":
    return VariationSettings(every=10, num_points=8, fixed_step=0.05, num_samples=64)
  if preset == "quick":
    return VariationSettings(every=20, num_points=20, fixed_step=0.05, num_samples=256)
  if preset == "imagenet":   # EfficientNet-Lite0 on CPU: each point is a 128-image forward
    return VariationSettings(every=50, num_points=20, fixed_step=0.05, num_samples=128)
  return VariationSettings(every=500, num_points=100, fixed_step=0.05, num_samples=256)


def variation_prefix(mode: str, settings: VariationSettings) -> str:
  """The metric-key prefix of the callback measuring in BatchNorm mode `mode`."""
  return PREFIX if mode == settings.bn_modes[0] else f"{PREFIX}{mode}_"


# target name -> (train spec, test spec); LeNet 28x28 grey unless full.
_LENET_TARGETS = {
    "digits": (data_spec("digits", "train", ("per_class:20",)), data_spec("digits", "test")),
    "synthetic": (data_spec("synthetic(num_train=200,num_test=100,seed=21,noise=0.2)", "train"),
                  data_spec("synthetic(num_train=200,num_test=100,seed=21,noise=0.2)", "test")),
    "usps": (data_spec("usps", "train", ("per_class:60", "stand_in:SVHN")),
             data_spec("usps", "test", ("stand_in:SVHN",))),
    # CIFAR-10 split B (split A pretrains the cifar sources), grey, 600 training images.
    "cifar_grey": (data_spec("cifar10", "test", ("split_test:0.5", "split_train:0.8",
                                                  "per_class:60", "grey", "stand_in:Caltech-101")),
                   data_spec("cifar10", "test", ("split_test:0.5", "split_test:0.8", "grey",
                                                 "stand_in:Caltech-101"))),
    # Fashion-MNIST's test file (its train file pretrains the fashion_mnist source), split
    # in two halves so the target's training and test images are disjoint.
    "fashion_small": (data_spec("fashion_mnist", "test", ("split_train:0.5", "per_class:60")),
                      data_spec("fashion_mnist", "test", ("split_test:0.5", "total:2000"))),
}
_RESNET_TARGETS = ("cars196", "caltech_birds2011", "food101", "caltech101")


def pair_fields(preset: str, full_target: str) -> ml_collections.ConfigDict:
  """The fields of an experiment config that name its shared fine-tuning pair (`pair_runs`)."""
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.shared_dir = "runs/shared"       # source runs and target pairs (reproduce sets it)
  c.data_dir = ""                    # local data files; empty: $TRANSJAX_DATA_DIR
  c.source = "mnist"                 # shared source name (transjax/paper/sources.py)
  c.source_weights = ""              # full: torchvision ResNet-50 ImageNet weights file
  c.target = {"smoke": "digits", "quick": "usps", "imagenet": "cifar10",
              "full": full_target}[preset]
  c.seed = 0                         # landscape directions, Lanczos start
  # Training seeds of the pair: every compared condition is trained and measured once per
  # seed, and the claims test the difference against the spread over seeds.
  c.seeds = (0,) if preset == "smoke" else (0, 1, 2)
  # BatchNorm statistics the instruments measure with (transjax.analysis.batchnorm): each
  # experiment's preset sets bn_mode to the paper's analogue; bn_compare is measured too
  # where the network has BatchNorm, and claims whose verdict differs in it say so.
  c.bn_mode = "running"
  c.bn_compare = "running"
  if preset == "full":
    c.source_weights = "weights/resnet50-0676ba61.pth"
  if preset == "imagenet":           # EfficientNet-Lite0's installed ImageNet weights
    c.source = "imagenet"
  return overrides.add_fields(c)   # train_overrides, data_stand_ins: see overrides.py


def target_config(target: str, init: str, preset: str, source: str, *, data_dir: str = "",
                  seed: int = 0) -> ml_collections.ConfigDict:
  """Training config of one run of the pair: `init` "pretrained" (from `source`) or "random".

  `source` is a run folder (LeNet presets), a torchvision weights file (full) or the name of
  installed weights (imagenet: `sources.IMAGENET_WEIGHTS`).
  """
  if init not in INITS:
    raise ValueError(f"init must be one of {INITS}, got {init!r}.")
  c = training_defaults()
  c.name = f"{target}_{init}"
  c.seed = seed
  if init == "pretrained":
    c.mode, c.init_from = "finetune", source
  if preset == "full":
    if target not in _RESNET_TARGETS:
      raise ValueError(f"full targets are {_RESNET_TARGETS}, got {target!r}.")
    config_lib.resnet50_protocol(c)
    c.data.train, c.data.test = data_spec(target, "train"), data_spec(target, "test")
    c.log_every, c.eval_every, c.checkpoint_every = 100, 2000, 2000
  elif preset == "imagenet":
    if target not in sources.IMAGENET_TARGETS:
      raise ValueError(f"imagenet targets are {sorted(sources.IMAGENET_TARGETS)}, got {target!r}.")
    sources.imagenet_protocol(c)
    c.data.train, c.data.test = sources.IMAGENET_TARGETS[target]
  else:
    if target not in _LENET_TARGETS:
      raise ValueError(f"LeNet targets are {sorted(_LENET_TARGETS)}, got {target!r}.")
    c.data.train, c.data.test = _LENET_TARGETS[target]
    if preset == "smoke":
      c.num_steps, c.batch_size, c.optim.lr = 20, 32, 0.05
      c.log_every, c.eval_every, c.checkpoint_every = 5, 20, 20
    else:
      c.num_epochs, c.optim.lr = 30, 0.01
      c.log_every, c.eval_every, c.checkpoint_every = 10, 100, 100
  if data_dir:
    c.data.data_dir = data_dir
  return c


def source_for(preset: str, shared_dir: str, data_dir: str, *, name: str = "mnist",
               weights: str = "", experiment: Any = None) -> str:
  """The pretrained source: a shared source run (LeNet presets), a weights file (full) or
  the installed ImageNet weights (imagenet)."""
  if preset == "full":
    return weights
  if preset == "imagenet":
    return sources.IMAGENET_WEIGHTS
  return sources.ensure_source(name, preset, shared_dir, data_dir=data_dir, experiment=experiment)


def pair_dir(shared_dir: str, target: str, init: str, tag: str = "", seed: int = 0) -> str:
  """`<shared_dir>/targets/<target><tag>_<init>`, with `_s<seed>` after the target for seeds
  other than 0 (so the seed-0 runs of earlier versions are reused)."""
  seed_tag = f"_s{seed}" if seed else ""
  return os.path.join(shared_dir, "targets", f"{target}{tag}{seed_tag}_{init}")


def seeds_of(ecfg: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The pair's training seeds named by an experiment config (`seeds`, else `(seed,)`)."""
  seeds = tuple(int(s) for s in (ecfg.get("seeds") or ()))
  return seeds or (int(ecfg.get("seed", 0)),)


def ensure_target_run(config: ml_collections.ConfigDict, run_dir: str, preset: str,
                      experiment: Any = None) -> str:
  """Trains (resumes / reuses) one target run with the variation callback; returns its dir."""
  settings = overrides.variation(variation_settings(preset), experiment)   # variation.* keys
  sidecar = os.path.join(run_dir, "variation_settings.json")
  recorded = dataclasses.asdict(settings)
  recorded["bn_modes"] = list(settings.bn_modes)     # as JSON reads it back
  if os.path.exists(sidecar) and results_lib.read_json(sidecar) != recorded:
    raise ValueError(f"{run_dir} was trained with other gradient-variation settings "
                     f"({sidecar}); delete the folder to retrain it with these.")
  if results_lib.finished_with(run_dir, config):
    return run_dir
  os.makedirs(run_dir, exist_ok=True)
  results_lib.write_json(sidecar, recorded)
  data = run_data.load_data(config)
  train_lib.train(config, run_dir, callbacks=[*train_callbacks.standard(),
                                              *variation_callbacks(config, settings, data)],
                  data=data)
  return run_dir


def pair_runs(ecfg: ml_collections.ConfigDict, seed: int = 0) -> dict[str, str]:
  """{"pretrained": dir, "random": dir} of the shared pair named by an experiment config
  (fields preset, shared_dir, data_dir, target, source, source_weights), trained with
  `seed` (the random initialisation, the data order)."""
  source = source_for(ecfg.preset, ecfg.shared_dir, ecfg.data_dir, name=ecfg.source,
                      weights=ecfg.get("source_weights", ""), experiment=ecfg)
  out = {}
  for init in INITS:
    cfg = overrides.apply(target_config(ecfg.target, init, ecfg.preset, source,
                                        data_dir=ecfg.data_dir, seed=seed), ecfg)
    out[init] = ensure_target_run(cfg, pair_dir(ecfg.shared_dir, ecfg.target, init, seed=seed),
                                  ecfg.preset, ecfg)
  return out


def validate(config: ml_collections.ConfigDict) -> None:
  """Validates the pair's training configs named by an experiment config, before any work."""
  for c in pair_training_configs(config):
    config_lib.validate(c)


def pair_training_configs(ecfg: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """The pair's training configs without training anything (for validation)."""
  source = ecfg.get("source_weights", "") or (
      sources.IMAGENET_WEIGHTS if ecfg.preset == "imagenet" else "<source run>")
  return [overrides.apply(target_config(ecfg.target, init, ecfg.preset, source,
                                        data_dir=ecfg.data_dir), ecfg)
          for init in INITS]


def model_of(ecfg: ml_collections.ConfigDict) -> str:
  """The pair's network as the scale notes name it (`common.model_description`)."""
  return common.model_description(pair_training_configs(ecfg)[0])


def variation_callbacks(config: ml_collections.ConfigDict, settings: VariationSettings,
                        data: run_data.RunData) -> list[gradients.GradientVariationCallback]:
  """The analysis package's callback with this experiment's settings, one per BatchNorm
  mode of `settings.bn_modes` (only the first for a model without BatchNorm): both
  protocols from one gradient, losses only (no gradient per point), on the fixed sample
  set of `data` (the run's `load_data(config)`)."""
  graphdef, _, state = functional.split(weights.build_from_config(config, data.num_classes))
  modes = settings.bn_modes if batchnorm.has_statistics(state) else settings.bn_modes[:1]
  batch = run_data.sample_batch(data.train, settings.num_samples, mean=data.mean, std=data.std)
  return [gradients.GradientVariationCallback(
      settings.every, batch, gradients.PROTOCOLS,
      loss_fn=functional.make_loss_fn(graphdef), lr=float(config.optim.lr),
      step_length=settings.fixed_step, num_steps=settings.num_points, with_gradients=False,
      prefix=variation_prefix(mode, settings), bn_mode=mode) for mode in modes]


def variation_records(run_dir: str, prefix: str = PREFIX) -> list[dict[str, Any]]:
  """The callback's records (keys `prefix`...) in a run's metrics.jsonl, as {"step",
  "gradient", "fixed" (the max-variations per protocol), "gradient_rise", "fixed_rise"
  (the largest climbs; NaN in runs recorded before them), "grad_norm", "loss"}."""
  log = results_lib.MetricsLog(os.path.join(run_dir, "metrics.jsonl"))
  number = lambda x: float("nan") if x is None else float(x)  # JSON null: not finite
  return [{"step": r["step"], "gradient": number(r[f"{prefix}gradient/max_change"]),
           "fixed": number(r[f"{prefix}fixed/max_change"]),
           "gradient_rise": number(r.get(f"{prefix}gradient/max_rise")),
           "fixed_rise": number(r.get(f"{prefix}fixed/max_rise")),
           "grad_norm": number(r[f"{prefix}gradient/grad_norm"]),
           "loss": number(r[f"{prefix}loss"])}
          for r in log.read() if f"{prefix}gradient/max_change" in r]


def data_notes(run_dirs: dict[str, str]) -> list[str]:
  """One line per run of a pair: its train and test data and where its weights came from."""
  out = []
  for init, d in run_dirs.items():
    info = results_lib.read_json(os.path.join(d, "run.json"))
    out.append(f"{init}: train {info['data']['train']}; test {info['data']['test']} "
               f"(init: {info['init']})")
  return out
