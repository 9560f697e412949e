"""Fig 6 + Fig 11: loss variation along the gradient during training, pretrained vs random.

At every `every`-th training step a callback takes the gradient g of the loss on a fixed
sample set and evaluates the loss along it, L(theta - c_k g) for k = 0..K:
  * "gradient" protocol (Fig 6, Santurkar et al. 2018): c_k = k * lr, so the step length
    is proportional to the size of the gradient;
  * "fixed" protocol (Fig 11): c_k = k * delta / ||g||, a fixed step length delta.
The variation is max_k L - min_k L. The paper: the pretrained network's variation is
substantially smaller than the randomly initialised one's.

This module also owns the fine-tuning pair the analysis experiments share (Fig 3, 5, 6, 7):
`pair_runs` trains "pretrained" (fine-tuned from the source) and "random" (from scratch) on
the same target into `<shared_dir>/targets/<target>_<init>`, with this callback attached, so
minima, init_landscapes, gradient_stats and this experiment read the same runs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
import numpy as np

from transjax import config as config_lib
from transjax import functional
from transjax import plotting
from transjax import results as results_lib
from transjax import train as train_lib
from transjax import weights
from transjax.analysis import gradients
from transjax.config import data_spec, training_defaults
from transjax.data import transforms
from transjax.data.run_data import load_data
from transjax.paper import common, sources

FIGURES = ("gradient_variation.png", "gradient_variation_fixed.png")
ELEMENTS = ("Fig 6", "Fig 11")
INITS = ("pretrained", "random")
PREFIX = "gradvar_"   # metric keys the callback writes: gradvar_<protocol>/max_change, ...

# ----------------------------------------------------------------------- the shared pair


@dataclasses.dataclass(frozen=True)
class VariationSettings:
  """How the callback measures (fixed per preset, so every experiment shares the runs)."""
  every: int
  num_points: int          # K: points along the gradient (the paper: 100)
  fixed_step: float        # delta of the fixed-step protocol
  num_samples: int         # fixed sample set (the paper: 256)


def variation_settings(preset: str) -> VariationSettings:
  if preset == "smoke":
    return VariationSettings(every=10, num_points=8, fixed_step=0.05, num_samples=64)
  if preset == "quick":
    return VariationSettings(every=20, num_points=20, fixed_step=0.05, num_samples=256)
  return VariationSettings(every=500, num_points=100, fixed_step=0.05, num_samples=256)


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
    "fashion_small": (data_spec("fashion_mnist", "test", ("per_class:60",)),
                      data_spec("fashion_mnist", "test", ("total:2000",))),
}
_RESNET_TARGETS = ("cars196", "caltech_birds2011", "food101", "caltech101")


def target_config(target: str, init: str, preset: str, source: str, *, data_dir: str = "",
                  seed: int = 0) -> ml_collections.ConfigDict:
  """Training config of one run of the pair: `init` "pretrained" (from `source`) or "random".

  `source` is a run folder (LeNet presets) or a torchvision weights file (full).
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
    c.model.name, c.model.input_size, c.model.in_channels = "resnet50", 224, 3
    c.data.train, c.data.test = data_spec(target, "train"), data_spec(target, "test")
    c.data.normalize = "imagenet"
    c.data.augment = True
    c.batch_size, c.eval_batch_size = 32, 128
    c.num_epochs = 200
    c.optim.weight_decay = 1e-4
    c.optim.schedule, c.optim.decay_at = "step", (2 / 3,)
    c.log_every, c.eval_every, c.checkpoint_every = 100, 2000, 2000
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
               weights: str = "") -> str:
  """The pretrained source: a shared source run (LeNet presets) or a weights file (full)."""
  if preset == "full":
    return weights
  return sources.ensure_source(name, preset, shared_dir, data_dir=data_dir)


def pair_dir(shared_dir: str, target: str, init: str, tag: str = "") -> str:
  return os.path.join(shared_dir, "targets", f"{target}{tag}_{init}")


def ensure_target_run(config: ml_collections.ConfigDict, run_dir: str, preset: str) -> str:
  """Trains (resumes / reuses) one target run with the variation callback; returns its dir."""
  settings = variation_settings(preset)
  sidecar = os.path.join(run_dir, "variation_settings.json")
  if os.path.exists(sidecar) and results_lib.read_json(sidecar) != dataclasses.asdict(settings):
    raise ValueError(f"{run_dir} was trained with other gradient-variation settings; delete it.")
  done = os.path.join(run_dir, "results.json")
  cfg_path = os.path.join(run_dir, "config.json")
  if (os.path.exists(done) and os.path.exists(cfg_path)
      and results_lib.read_json(cfg_path) == results_lib.to_jsonable(config)):
    return run_dir
  os.makedirs(run_dir, exist_ok=True)
  results_lib.write_json(sidecar, dataclasses.asdict(settings))
  train_lib.train(config, run_dir, callbacks=[variation_callback(config, settings)])
  return run_dir


def pair_runs(ecfg: ml_collections.ConfigDict) -> dict[str, str]:
  """{"pretrained": dir, "random": dir} of the shared pair named by an experiment config
  (fields preset, shared_dir, data_dir, target, source, source_weights)."""
  source = source_for(ecfg.preset, ecfg.shared_dir, ecfg.data_dir, name=ecfg.source,
                      weights=ecfg.get("source_weights", ""))
  out = {}
  for init in INITS:
    cfg = target_config(ecfg.target, init, ecfg.preset, source, data_dir=ecfg.data_dir)
    out[init] = ensure_target_run(cfg, pair_dir(ecfg.shared_dir, ecfg.target, init),
                                  ecfg.preset)
  return out


def pair_training_configs(ecfg: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """The pair's training configs without training anything (for validation)."""
  source = ecfg.get("source_weights", "") or "<source run>"
  return [target_config(ecfg.target, init, ecfg.preset, source, data_dir=ecfg.data_dir)
          for init in INITS]


def fixed_batch(config: ml_collections.ConfigDict, n: int, seed: int = 0) -> dict[str, np.ndarray]:
  """`n` stratified training examples, normalised as in training (the paper's 256 samples)."""
  data = load_data(config)
  ds = data.train
  if n < len(ds):
    ds = transforms.subset_total(ds, n, seed)
  images = transforms.to_unit_float(ds.images)
  if data.mean is not None:
    images = (images - np.asarray(data.mean, np.float32)) / np.asarray(data.std, np.float32)
  return {"image": np.asarray(images, np.float32), "label": ds.labels.astype(np.int32)}


# ----------------------------------------------------------------------- the callback


def variation_callback(config: ml_collections.ConfigDict,
                       settings: VariationSettings) -> gradients.GradientVariationCallback:
  """The analysis package's callback with this experiment's settings: both protocols from
  one gradient, losses only (no gradient per point), on the fixed sample set."""
  num_classes = load_data(config).num_classes
  graphdef, _, _ = functional.split(weights.build_from_config(config, num_classes))
  return gradients.GradientVariationCallback(
      settings.every, fixed_batch(config, settings.num_samples), gradients.PROTOCOLS,
      loss_fn=functional.make_loss_fn(graphdef), lr=float(config.optim.lr),
      step_length=settings.fixed_step, num_steps=settings.num_points, with_gradients=False,
      prefix=PREFIX)


def variation_records(run_dir: str) -> list[dict[str, Any]]:
  """The callback's records in a run's metrics.jsonl, as {"step", "gradient", "fixed",
  "grad_norm", "loss"} (the max-variations per protocol)."""
  log = results_lib.MetricsLog(os.path.join(run_dir, "metrics.jsonl"))
  return [{"step": r["step"], "gradient": r[f"{PREFIX}gradient/max_change"],
           "fixed": r[f"{PREFIX}fixed/max_change"], "grad_norm": r[f"{PREFIX}gradient/grad_norm"],
           "loss": r[f"{PREFIX}loss"]}
          for r in log.read() if f"{PREFIX}gradient/max_change" in r]


# --------------------------------------------------------------------------- experiment


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  dirs = pair_runs(config)
  settings = variation_settings(config.preset)
  numbers, curves = {}, {"gradient": {}, "fixed": {}}
  data = []
  for init, d in dirs.items():
    recs = variation_records(d)
    if not recs:
      raise RuntimeError(f"{d} has no gradient-variation records (metrics "
                         f"'{PREFIX}gradient/max_change'); a run trained by an older transjax "
                         "wrote other keys: delete the folder to retrain it.")
    numbers[init] = {
        "mean_gradient": float(np.nanmean([r["gradient"] for r in recs])),
        "mean_fixed": float(np.nanmean([r["fixed"] for r in recs])),
        "max_gradient": float(np.nanmax([r["gradient"] for r in recs])),
        "max_fixed": float(np.nanmax([r["fixed"] for r in recs])),
        "mean_grad_norm": float(np.mean([r["grad_norm"] for r in recs])),
        "num_records": len(recs), "run_dir": d}
    for proto in curves:
      curves[proto][init] = [(r["step"], r[proto]) for r in recs]
    run_json = results_lib.read_json(os.path.join(d, "run.json"))
    data.append(f"{init}: {run_json['data']['train']} (init {run_json['init']})")
  for proto, path, title in (
      ("gradient", FIGURES[0], "Loss variation along the gradient (step ∝ |g|)"),
      ("fixed", FIGURES[1], f"Loss variation along the gradient (fixed step {settings.fixed_step})")):
    plotting.step_curves(os.path.join(workdir, path),
                         {i: tuple(zip(*pts)) if pts else ((), ()) for i, pts in curves[proto].items()},
                         ylabel="max variation of the loss", xlabel="step", title=title,
                         yscale="symlog", marker=".")
  p, r = numbers["pretrained"], numbers["random"]
  summary = "\n".join([
      "| init | mean max-variation (step ∝ grad) | mean max-variation (fixed step) | mean ‖g‖ |",
      "|---|---|---|---|",
      *[f"| {k} | {v['mean_gradient']:.4g} | {v['mean_fixed']:.4g} | {v['mean_grad_norm']:.4g} |"
        for k, v in numbers.items()],
      "", f"ratio random / pretrained: {r['mean_gradient'] / max(p['mean_gradient'], 1e-12):.2f} "
      f"(step ∝ grad), {r['mean_fixed'] / max(p['mean_fixed'], 1e-12):.2f} (fixed step)"])
  results = {"elements": list(ELEMENTS), "data": data, "summary": summary,
             "figures": list(FIGURES), "variation": numbers,
             "settings": dataclasses.asdict(settings), "preset": config.preset,
             "curves": {k: {i: v for i, v in c.items()} for k, c in curves.items()}}
  return common.write_results(workdir, results, claims(results))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  v = results["variation"]
  p, r = v["pretrained"], v["random"]
  why = common.stand_in_note(results.get("data", []))
  scale = "LeNet on small targets instead of ResNet-50 on CUB-200/Stanford Cars"
  out = []
  for element, proto, words in (("Fig 6", "gradient", "step proportional to the gradient"),
                                ("Fig 11", "fixed", "fixed step length")):
    checks = [p[f"mean_{proto}"] < r[f"mean_{proto}"], p[f"max_{proto}"] < r[f"max_{proto}"]]
    out.append(common.Claim(
        element=element,
        statement=f"The loss varies less along the gradient ({words}) with pretrained weights "
                  "than with random initialisation.",
        paper="pretrained variation substantially smaller than random throughout training",
        ours=(f"mean max-variation {p[f'mean_{proto}']:.4g} (pretrained) vs "
              f"{r[f'mean_{proto}']:.4g} (random); peak {p[f'max_{proto}']:.4g} vs "
              f"{r[f'max_{proto}']:.4g}"),
        verdict=common.verdict_from_checks(checks),
        why="; ".join(x for x in (why, scale if results.get("preset") != "full" else "") if x)))
  return out


def validate(config: ml_collections.ConfigDict) -> None:
  for c in pair_training_configs(config):
    config_lib.validate(c)
