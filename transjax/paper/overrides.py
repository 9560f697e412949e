"""Shrinking the training runs a paper experiment builds: `train_overrides`, `data_stand_ins`.

Every paper experiment builds its training configs itself (sources, target pairs, the
runs of each table); these two fields of the experiment config reach all of them, through
the one function `apply`, so a whole `full` experiment can run as a dry run:

    python -m experiments.paper_minima --config=configs/paper_minima.py:full \
        --workdir=runs/dry --config.source_weights=resnet50.pth \
        --config.train_overrides=num_steps=2,batch_size=2,model.input_size=64 \
        --config.data_stand_ins='*=tfds:mnist[:1000]|total:16'

`train_overrides`: comma-separated `key=value` (or a dict): dotted keys of the training
config (`transjax.config.training_defaults`: num_steps, batch_size, eval_batch_size,
log_every, eval_every, checkpoint_every, model.input_size, optim.lr, data.max_eval_train,
...), set on every training config after the experiment built it. Values are Python
literals (2, 0.5, (0.5,), True) or plain words (resnet50). The experiment's per-run keys
(name, seed, mode, init_from, init_which) and the data specs (use `data_stand_ins`) cannot
be overridden. `variation.every`, `variation.num_points`, `variation.fixed_step` and
`variation.num_samples` set the gradient-variation callback of the shared fine-tuning
pairs (Fig 6/11) instead. pretrain_epochs keeps its pretraining schedule on
`checkpoint_steps`: a `num_steps` override scales those steps to the shorter run.
A ResNet that loads torchvision weights needs model.input_size >= 64 (smaller inputs get
the small-image stem, which has no place for the 7x7 conv1 weights).

`data_stand_ins`: comma-separated `dataset=stand-in` (or a dict): every data spec whose
dataset is `dataset` (its name as the config writes it, e.g. caltech101 or
folder:office31/webcam/images; `*` for every dataset not listed) reads the stand-in
instead. A stand-in is `NAME[slice]|transform|...`: a dataset name (any `load` takes:
mnist, tfds:mnist, synthetic(...), folder:...), an optional slice of its split
(`[:1000]`), and transforms applied after the spec's own (`total:16`). The stand-in is
read from its `train` split, or `test` for a spec's test or validation split; a stand-in
with the dataset's own name keeps the split and only adds the slice and transforms.
Results name each stand-in ("stand-in for caltech101").

Both are empty by default: the experiments run as the paper does.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import ml_collections
from absl import logging

from transjax import config as config_lib
from transjax.data import sources as data_sources
from transjax.data import transforms as transforms_lib

FIELDS = ("train_overrides", "data_stand_ins")
# Set per run by the experiments; overriding them would merge the runs of a table.
RESERVED = ("name", "seed", "mode", "init_from", "init_which")
# Keys of the gradient-variation callback of the shared pairs (pairs.VariationSettings).
VARIATION_PREFIX = "variation."
VARIATION_KEYS = {"every": int, "num_points": int, "fixed_step": float, "num_samples": int}
_TEST_SPLITS = ("test", "validation", "val", "valid")


def add_fields(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the two fields (empty: no change) to an experiment config; returns it."""
  c.train_overrides = ""   # "num_steps=2,batch_size=2,...": every training run (overrides.py)
  c.data_stand_ins = ""    # "caltech101=tfds:mnist[:1000]|total:16,...": datasets replaced
  return c


def copy_fields(source: Any, target: ml_collections.ConfigDict) -> None:
  """Copies the fields from `source` (the reproduce config) to an experiment's config.

  An experiment config without the fields (the theory section) trains no networks and
  is left alone.
  """
  for field in FIELDS:
    value = source.get(field, "") if source is not None else ""
    if value and field in target:
      target[field] = value


# ------------------------------------------------------------------------------ parsing


def _split_top(text: str, sep: str) -> list[str]:
  """Splits on `sep` outside brackets and quotes: "a=(1,2),b=x" -> ["a=(1,2)", "b=x"]."""
  out, depth, quote, start = [], 0, "", 0
  for i, ch in enumerate(text):
    if quote:
      quote = "" if ch == quote else quote
    elif ch in "'\"":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == sep and depth == 0:
      out.append(text[start:i])
      start = i + 1
  out.append(text[start:])
  return [part.strip() for part in out if part.strip()]


def _pairs(value: Any, field: str) -> dict[str, str | Any]:
  """`"k=v,k=v"` or a mapping -> {key: value (text from a string, as given from a dict)}."""
  if value is None or value == "":
    return {}
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {str(k): v for k, v in value.items()}
  if not isinstance(value, str):
    raise config_lib.ConfigError(
        f"config.{field} = {value!r}: expected comma-separated key=value pairs (or a dict).")
  out = {}
  for item in _split_top(value, ","):
    key, eq, text = item.partition("=")
    if not eq or not key.strip():
      raise config_lib.ConfigError(
          f"config.{field}: {item!r} is not key=value (items are comma-separated, e.g. "
          f"{'num_steps=2,batch_size=4' if field == 'train_overrides' else 'caltech101=tfds:mnist'}).")
    out[key.strip()] = text.strip()
  return out


def _literal(text: Any) -> Any:
  if not isinstance(text, str):
    return text
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return {"true": True, "false": False}.get(text.lower(), text)


def _leaf_defaults() -> dict[str, Any]:
  """Dotted leaf keys of the training config -> default value (data specs left out)."""
  out = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, (Mapping, ml_collections.ConfigDict)):
        if prefix + key not in ("data.train", "data.test"):
          walk(value, prefix + key + ".")
      else:
        out[prefix + key] = value
  walk(config_lib.training_defaults(), "")
  return out


def _coerce(key: str, value: Any, default: Any) -> Any:
  """`value` as the type of `default`, or a ConfigError naming the key."""
  def bad():
    raise config_lib.ConfigError(
        f"config.train_overrides: {key}={value!r} has the wrong type; {key} takes "
        f"{type(default).__name__} (default {default!r}).")
  if isinstance(default, bool):
    return value if isinstance(value, bool) else bad()
  if isinstance(default, int):
    return value if isinstance(value, int) and not isinstance(value, bool) else bad()
  if isinstance(default, float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else bad()
  if isinstance(default, (tuple, list)):
    return tuple(value) if isinstance(value, (tuple, list)) else bad()
  if isinstance(default, str):
    return value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else bad()
  return value


def train_overrides(experiment: Any) -> dict[str, Any]:
  """The experiment config's `train_overrides`, parsed and checked: {dotted key: value}.

  Raises:
    ConfigError: an unknown or reserved key, or a value of the wrong type (named).
  """
  raw = _pairs(experiment.get("train_overrides", "") if experiment is not None else "",
               "train_overrides")
  defaults = _leaf_defaults()
  out = {}
  for key, text in raw.items():
    value = _literal(text)
    if key.startswith(VARIATION_PREFIX):
      name = key[len(VARIATION_PREFIX):]
      if name not in VARIATION_KEYS:
        raise config_lib.ConfigError(
            f"config.train_overrides: unknown key {key!r}; the gradient-variation keys are "
            + ", ".join(VARIATION_PREFIX + k for k in VARIATION_KEYS) + ".")
      out[key] = _coerce(key, value, VARIATION_KEYS[name](1))
      continue
    if key in RESERVED:
      raise config_lib.ConfigError(
          f"config.train_overrides: {key!r} is set per run by the experiment and cannot be "
          f"overridden (reserved: {', '.join(RESERVED)}).")
    if key in ("data.train", "data.test") or key.startswith(("data.train.", "data.test.")):
      raise config_lib.ConfigError(
          f"config.train_overrides: {key!r} is a data spec; replace datasets with "
          "config.data_stand_ins (e.g. caltech101=tfds:mnist[:1000]|total:16).")
    if key not in defaults:
      valid = sorted(k for k in defaults if k not in RESERVED)
      raise config_lib.ConfigError(
          f"config.train_overrides: unknown training-config key {key!r}; valid keys: "
          f"{', '.join(valid)}, and {', '.join(VARIATION_PREFIX + k for k in VARIATION_KEYS)}.")
    out[key] = _coerce(key, value, defaults[key])
  return out


@dataclasses.dataclass(frozen=True)
class StandIn:
  name: str                       # the dataset read instead
  slice: str = ""                 # "[:1000]" or ""
  transforms: tuple[str, ...] = ()


_STAND_IN = re.compile(r"^(?P<name>.+?)(?P<slice>\[[^\[\]]*\])?$")
_SLICE = re.compile(r"^\[(-?\d*%?):(-?\d*%?)\]$")


def data_stand_ins(experiment: Any) -> dict[str, StandIn]:
  """The experiment config's `data_stand_ins`, parsed and checked: {dataset: StandIn}.

  Raises:
    ConfigError: an unknown dataset name (key or stand-in), a bad slice or transform.
  """
  raw = _pairs(experiment.get("data_stand_ins", "") if experiment is not None else "",
               "data_stand_ins")
  out = {}
  for key, text in raw.items():
    where = f"config.data_stand_ins: {key}={text}"
    try:
      if key != "*":
        data_sources.check_name(key)
      head, *transforms = _split_top(str(text), "|")
      m = _STAND_IN.match(head.strip()) if head else None
      if m is None:
        raise ValueError("no stand-in dataset given")
      name, slice_ = m.group("name").strip(), m.group("slice") or ""
      data_sources.check_name(name)
      if slice_ and not _SLICE.match(slice_):
        raise ValueError(f"bad slice {slice_!r}; write e.g. [:1000] or [10%:]")
      for t in transforms:
        transforms_lib.check_named(t)
    except ValueError as e:
      raise config_lib.ConfigError(f"{where}: {e}") from None
    out[key] = StandIn(name, slice_, tuple(transforms))
  return out


# ------------------------------------------------------------------------------ applying


def _stand_in_split(split: str, same_dataset: bool, slice_: str) -> str:
  base = re.split(r"\[", split or "train", maxsplit=1)[0].strip()
  if not same_dataset:
    base = "test" if base in _TEST_SPLITS else "train"
  elif not slice_:
    return split or "train"
  return base + slice_


def stand_in_spec(spec: Mapping[str, Any], stand_ins: Mapping[str, StandIn]) -> dict[str, Any]:
  """The data spec with its dataset replaced per `stand_ins` (unchanged if not listed)."""
  spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
  name = spec.get("name", "")
  sub = stand_ins.get(name) or stand_ins.get(data_sources.base_name(name)) or stand_ins.get("*")
  if sub is None:
    return spec
  same = sub.name == name
  extra = tuple(sub.transforms) + (() if same else (f"stand_in:{name}",))
  spec.update(name=sub.name, split=_stand_in_split(spec.get("split", "train"), same, sub.slice),
              transforms=tuple(spec.get("transforms") or ()) + extra)
  return spec


def apply(train_config: ml_collections.ConfigDict, experiment: Any) -> ml_collections.ConfigDict:
  """Sets the experiment's `train_overrides` and `data_stand_ins` on one training config.

  In place; returns `train_config`. Without the fields (or with them empty) nothing
  changes. Raises ConfigError for an unknown key or dataset (see the module docstring).
  """
  values = train_overrides(experiment)
  stand_ins = data_stand_ins(experiment)
  for key, value in values.items():
    if key.startswith(VARIATION_PREFIX):
      continue
    *sections, leaf = key.split(".")
    node = train_config
    for s in sections:
      node = node[s]
    node[leaf] = value
  if stand_ins:
    for split in ("train", "test"):
      train_config.data[split] = stand_in_spec(train_config.data[split], stand_ins)
  return train_config


def variation(settings: Any, experiment: Any) -> Any:
  """`settings` (a pairs.VariationSettings) with the `variation.*` overrides applied."""
  values = {k[len(VARIATION_PREFIX):]: v for k, v in train_overrides(experiment).items()
            if k.startswith(VARIATION_PREFIX)}
  return dataclasses.replace(settings, **values) if values else settings


def scaled_schedule(checkpoint_steps, keep_period: int,
                    experiment: Any) -> tuple[tuple[int, ...], int]:
  """pretrain_epochs' (checkpoint_steps, keep_period) under a `num_steps` override.

  Without one, as given. With num_steps = N, each step s of a schedule ending at S
  becomes max(1, round(s * N / S)) (duplicates merged), and keep_period their gcd, so the
  shorter pretraining keeps checkpoints at the same fractions of the run.
  """
  steps = tuple(sorted(int(s) for s in checkpoint_steps))
  n = train_overrides(experiment).get("num_steps", 0)
  if n <= 0 or not steps:
    return steps, int(keep_period)
  scaled = tuple(sorted({max(1, round(s * n / steps[-1])) for s in steps}))
  keep = math.gcd(*scaled)
  if scaled != steps:
    logging.warning("notice: config.train_overrides num_steps=%d: pretraining checkpoints "
                    "at %s (keep_period %d) instead of %s.", n, scaled, keep, steps)
  return scaled, keep


# ------------------------------------------------------------ the reproduce job's own field


def experiment_overrides(job: Any) -> dict[str, dict[str, Any]]:
  """The reproduce job's `experiment_overrides`, parsed: {experiment: {field path: text}}.

  Comma-separated `experiment.field=value` (or a dict), e.g.
  `minima.lanczos_max_steps=120,init_landscapes.resolution=21`; a nested field as
  `experiment.section.field`. Values are Python literals or plain words.

  Raises:
    ConfigError: an item that is not `experiment.field=value`.
  """
  out: dict[str, dict[str, Any]] = {}
  for key, text in _pairs(job.get("experiment_overrides", "") if job is not None else "",
                          "experiment_overrides").items():
    experiment, dot, path = key.partition(".")
    if not dot or not experiment or not path:
      raise config_lib.ConfigError(
          f"config.experiment_overrides: {key!r} is not experiment.field (e.g. "
          "minima.lanczos_max_steps=120).")
    out.setdefault(experiment, {})[path] = text
  return out


def set_fields(config: ml_collections.ConfigDict, name: str, fields: Mapping[str, Any]) -> None:
  """Sets `fields` ({field path: text}, from `experiment_overrides`) on experiment `name`'s
  config, in place.

  Raises:
    ConfigError: a field the config does not have, or a value of the wrong type (named).
  """
  for path, text in fields.items():
    *sections, leaf = path.split(".")
    node = config
    try:
      for s in sections:
        node = node[s]
      if leaf not in node:
        raise KeyError(leaf)
    except (KeyError, TypeError):
      raise config_lib.ConfigError(
          f"config.experiment_overrides: {name}'s config has no field {path!r}; its fields: "
          f"{', '.join(sorted(config.keys()))}.") from None
    try:
      node[leaf] = _literal(text)
    except (TypeError, ValueError) as e:
      raise config_lib.ConfigError(
          f"config.experiment_overrides: {name}.{path}={text!r}: {e}") from None
