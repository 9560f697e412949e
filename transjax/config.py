"""The training-run config: its defaults, and validation before any heavy work.

A config file (configs/*.py) starts from `training_defaults()` and overrides fields, so
every run's `config.json` has the same keys. `validate` raises one `ConfigError` naming
the key and the allowed values.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

import ml_collections
from absl import logging

from transjax import results as results_lib
from transjax.data import spec as data_spec_lib
from transjax.models import HEAD_KINDS, MODEL_NAMES
from transjax.weights import named as imagenet

MODES = ("scratch", "fixed", "finetune")
SCHEDULES = ("constant", "step")
NORMALIZATIONS = ("train", "imagenet", "efficientnet", "none")


class ConfigError(ValueError):
  """A config key that is unknown or has a bad value."""


def data_spec(name: str, split: str = "train", transforms: tuple[str, ...] = ()) -> dict:
  """One dataset as the config names it (see `transjax.data.spec`)."""
  return {"name": name, "split": split, "transforms": tuple(transforms)}


def training_defaults() -> ml_collections.ConfigDict:
  """Every key a training run reads, with the paper's LeNet protocol as defaults."""
  c = ml_collections.ConfigDict()
  c.name = "run"                     # free text, shown in reports
  c.seed = 0                         # initialisation, data order and subsets
  c.mode = "scratch"                 # scratch | fixed | finetune
  c.init_from = ""                   # run dir, torchvision .pth/.npz, or imagenet:efficientnet_lite0
  c.init_which = "final"             # "final" or a checkpoint step of init_from
  c.new_head = True                  # re-initialise the head `fc` (needed when classes differ)

  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet"             # lenet | resnet18 | resnet50 | resnet_tiny | efficientnet_lite0
  c.model.head = "linear"            # linear | mlp (the paper's BN + LeakyReLU 512-unit head)
  c.model.input_size = 28            # images are padded/resized to this square size
  c.model.in_channels = 1            # 1 grey, 3 RGB
  c.model.bn_momentum = 0.0          # 0: the architecture's own; else every BatchNorm's running-
                                     # average momentum m (flax: new = m old + (1 - m) batch)

  c.data = ml_collections.ConfigDict()
  c.data.train = data_spec("digits", "train")
  c.data.test = data_spec("digits", "test")
  c.data.data_dir = ""               # local files; empty: $TRANSJAX_DATA_DIR
  c.data.tfds_data_dir = ""          # TFDS prepared data; empty: <data_dir>/tfds or TFDS default
  # train (per-channel stats of the training set) | imagenet (torchvision mean/std) |
  # efficientnet ((x - 127) / 128, what the EfficientNet-Lite ImageNet weights expect) | none
  c.data.normalize = "train"
  c.data.augment = False             # random crop (pad 4) + horizontal flip
  c.data.max_eval_train = 10000      # training-set examples used for the logged training error
  c.data.verify_checksums = True     # check local IDX files against their canonical sha256

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 0.01
  c.optim.momentum = 0.9
  c.optim.weight_decay = 5e-4
  c.optim.nesterov = False
  c.optim.schedule = "constant"      # constant | step
  c.optim.decay_at = ()              # fractions of training (0..1) where lr *= decay_factor
  c.optim.decay_factor = 0.1

  c.batch_size = 64
  c.eval_batch_size = 500
  c.num_epochs = 100.0               # used when num_steps <= 0
  c.num_steps = -1
  # > 0: stop before num_steps at the first evaluation whose training error is at most this
  # and whose logged training loss has plateaued (transjax.convergence); 0: train num_steps.
  c.stop_at_train_error = 0.0
  c.log_every = 50                   # steps between progress lines and train-metric records
  c.eval_every = 500                 # steps between test/train error and deviation records
  c.checkpoint_every = 1000          # steps between checkpoints (a multiple of log_every)
  c.keep_checkpoints = 3             # most recent checkpoints kept
  c.keep_period = 0                  # also keep every checkpoint whose step is a multiple (0: none)
  c.num_devices = 0                  # devices on the 'data' mesh axis (0: all)
  return c


def resnet50_protocol(c: ml_collections.ConfigDict, *,
                      fine_tune_epochs: float | None = 200) -> ml_collections.ConfigDict:
  """Sets training config `c` to the paper's ResNet-50 protocol (Appendix A) and returns it.

  torchvision ResNet-50 on 224x224 RGB with ImageNet normalisation and augmentation, batch
  32, SGD lr 0.01 (momentum 0.9, the default), weight decay 1e-4 (not stated in the paper;
  torchvision's ImageNet value). With `fine_tune_epochs`: that many epochs and lr x0.1 at
  2/3 of training (the paper picks the time by cross-validation); None leaves length and
  schedule to the caller (pretraining).
  """
  c.model.name = "resnet50"
  c.model.input_size = 224
  c.model.in_channels = 3
  c.data.normalize = "imagenet"
  c.data.augment = True
  c.batch_size = 32
  c.eval_batch_size = 128
  c.optim.lr = 0.01
  c.optim.weight_decay = 1e-4
  if fine_tune_epochs is not None:
    c.num_epochs = fine_tune_epochs
    c.optim.schedule = "step"
    c.optim.decay_at = (2 / 3,)
  return c


def _fail(key: str, value: Any, allowed: str) -> None:
  raise ConfigError(f"config.{key} = {value!r} is not allowed; expected {allowed}.")


def check_keys(config: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = "") -> None:
  """Raises ConfigError for keys not in `defaults` (recursing into sub-configs)."""
  for key, value in config.items():
    if key not in defaults:
      close = difflib.get_close_matches(key, list(defaults), n=3, cutoff=0.6)
      hint = (f"did you mean {' or '.join(repr(prefix + c) for c in close)}?" if close
              else f"valid keys here: {', '.join(sorted(defaults))}.")
      raise ConfigError(f"Unknown config key {prefix + key!r}; {hint}")
    default = defaults[key]
    is_section = isinstance(default, (Mapping, ml_collections.ConfigDict))
    if is_section and key not in ("train", "test"):
      check_keys(value, default, prefix + key + ".")


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
  """["optim.lr: 0.01 -> 0.05", ...] between two JSON configs (keys added since count)."""
  if isinstance(old, Mapping) and isinstance(new, Mapping):
    out = []
    for key in sorted(set(old) | set(new)):
      if key not in old and key in ADDED_KEYS and new[key] == ADDED_KEYS[key]:
        continue  # a key added to the defaults later, at its old behaviour
      if key not in old or key not in new:
        out.append(f"{prefix}{key}: {'(absent)' if key not in old else repr(old[key])} -> "
                   f"{'(absent)' if key not in new else repr(new[key])}")
      else:
        out.extend(config_differences(old[key], new[key], f"{prefix}{key}."))
    return out
  return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


# Keys added to training_defaults() after runs were made, with the value that behaves as
# before; a run folder without them still resumes.
ADDED_KEYS: dict[str, Any] = {"verify_checksums": True, "bn_momentum": 0.0}


def check_run_folder_config(workdir: str, config_dict: Mapping[str, Any],
                            finished_steps: list[int]) -> None:
  """Refuses to resume a run folder that holds a run with another config.

  A folder with no finished step (a start that failed before its first checkpoint) is
  reusable: its config.json is replaced, with a notice.
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  try:
    old = results_lib.read_json(path)  # paths stored relative come back at today's place
  except ValueError:
    old = None
  diff = (config_differences(results_lib.comparable(old), results_lib.comparable(config_dict))
          if isinstance(old, Mapping) else ["(unreadable)"])
  if not diff:
    return
  shown = "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
  if not finished_steps:
    logging.warning("%s held a run that never reached a checkpoint (config differs: %s); "
                    "starting it afresh with the new config.", workdir, shown)
    return
  raise ConfigError(
      f"{workdir} holds a run with a different config (checkpoints up to step "
      f"{finished_steps[-1]}; differences: {shown}). Use a new --workdir, run again with the "
      "same config to resume, or delete the folder to start over.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks every key and value of a training config; raises ConfigError."""
  check_keys(config, training_defaults())
  if config.mode not in MODES:
    _fail("mode", config.mode, f"one of {MODES}")
  if config.mode in ("fixed", "finetune") and not config.init_from:
    raise ConfigError(f"config.mode = {config.mode!r} needs config.init_from "
                      "(a pretraining run dir, a weights file, or imagenet:efficientnet_lite0).")
  if imagenet.is_imagenet_name(config.init_from):  # a typo: now, not after the data loads
    imagenet.check_name(config.init_from, config.model.name)
  if config.mode == "fixed" and not config.new_head and not config.init_from:
    raise ConfigError("config.mode = 'fixed' trains only the head; set config.new_head.")
  if config.model.name not in MODEL_NAMES:
    _fail("model.name", config.model.name, f"one of {MODEL_NAMES}")
  if config.model.head not in HEAD_KINDS:
    _fail("model.head", config.model.head, f"one of {HEAD_KINDS}")
  if not 0.0 <= config.model.get("bn_momentum", 0.0) < 1.0:
    _fail("model.bn_momentum", config.model.bn_momentum, "0 (the architecture's own) or in (0, 1)")
  if config.model.in_channels not in (1, 3):
    _fail("model.in_channels", config.model.in_channels, "1 or 3")
  if config.model.input_size < 8:
    _fail("model.input_size", config.model.input_size, "at least 8")
  if config.data.normalize not in NORMALIZATIONS:
    _fail("data.normalize", config.data.normalize, f"one of {NORMALIZATIONS}")
  for split in ("train", "test"):
    try:
      data_spec_lib.validate(config.data[split])
    except ValueError as e:
      raise ConfigError(f"config.data.{split}: {e}") from e
  o = config.optim
  if not o.lr > 0:
    _fail("optim.lr", o.lr, "a positive number")
  if not 0 <= o.momentum < 1:
    _fail("optim.momentum", o.momentum, "a number in [0, 1)")
  if o.weight_decay < 0:
    _fail("optim.weight_decay", o.weight_decay, "a non-negative number")
  if o.schedule not in SCHEDULES:
    _fail("optim.schedule", o.schedule, f"one of {SCHEDULES}")
  if any(not 0 < f < 1 for f in o.decay_at):
    _fail("optim.decay_at", o.decay_at, "fractions strictly between 0 and 1")
  for key in ("batch_size", "eval_batch_size", "log_every", "eval_every", "checkpoint_every",
              "keep_checkpoints"):
    if int(config[key]) < 1:
      _fail(key, config[key], "a positive integer")
  if config.num_steps <= 0 and not config.num_epochs > 0:
    _fail("num_epochs", config.num_epochs, "positive (or set num_steps)")
  if config.checkpoint_every % config.log_every:
    raise ConfigError(
        f"config.checkpoint_every ({config.checkpoint_every}) must be a multiple of "
        f"config.log_every ({config.log_every}) so a resumed run logs exactly as an "
        "uninterrupted one.")
  if config.keep_period < 0:
    _fail("keep_period", config.keep_period, "0 or a positive integer")
  if not 0.0 <= float(config.get("stop_at_train_error", 0.0)) < 1.0:
    _fail("stop_at_train_error", config.stop_at_train_error,
          "a training error in [0, 1) (0: train num_steps)")
