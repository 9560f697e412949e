"""Ranking candidate pretrained models for a target dataset by a transferability score.

    ranked = rank_candidates(target, ["imagenet:efficientnet_lite0", "runs/mnist_lenet"],
                             "logme", num_samples=500)

A candidate is named as training's `config.init_from` names weights: an `imagenet:` name, a
run folder (its final checkpoint), or a weights file (EfficientNet-PyTorch layout for an
EfficientNet model, torchvision layout for a ResNet; `weights_model` says which model).
A run folder may name a checkpoint: "runs/a@400" (a step), "runs/a@init".
Each candidate sees the target images as its own training saw its inputs (resized or padded
to its input size, grey <-> RGB, normalised with its statistics), and its features are what
its head reads (the "fc" tap), with BatchNorm's stored statistics (the frozen network), in
one pass that also gives its source head's softmax for LEEP / NCE and y_P->Q.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transjax import functional
from transjax import results as results_lib
from transjax import weights as weights_lib
from transjax.data import batching, transforms
from transjax.data.dataset import Dataset
from transjax.models import EFFICIENTNET_NAMES, build_model
from transjax.models import taps as taps_lib
from transjax.transferability import SCORES, ntk, score as score_fn
from transjax.weights import named as imagenet
from transjax.weights import torchvision_resnet as pretrained

IMAGENET_CLASSES = 1000
DEFAULT_IMAGE_SIZE = 224
# The theory scores on the network's own empirical NTK (they need the model, not features).
NTK_SCORES = {"ntk_deviation": ntk.ntk_deviation,
              "ntk_generalisation": ntk.ntk_generalisation}
DEFAULT_NTK_LAYERS = "fc"   # transjax models' head (transjax.optim.HEAD)


@dataclasses.dataclass
class Candidate:
  """A pretrained network with what its inputs must look like."""

  name: str
  model: nnx.Module
  input_size: int
  in_channels: int
  mean: Any
  std: Any
  note: str


def run_checkpoint(source: str) -> tuple[str, str | int]:
  """"runs/a" -> ("runs/a", "final"); "runs/a@400" -> ("runs/a", 400); "runs/a@init"."""
  folder, at, which = source.rpartition("@")
  if not at or not os.path.isdir(folder):
    return source, "final"
  return folder, int(which) if which.isdigit() else which


def load_candidate(source: str, *, image_size: int | None = None,
                   weights_model: str | None = None) -> Candidate:
  """Loads one candidate with its source head.

  Args:
    source: "imagenet:NAME", a run folder, or a weights file.
    image_size: input side for ImageNet networks and weight files (default 224; smaller runs
      faster on a CPU). A run folder uses its own config's input size.
    weights_model: the model a weights file fits ("efficientnet_lite0", "resnet50", ...).

  Returns:
    The candidate.

  Raises:
    ValueError: a weights file without `weights_model`, or an unknown name.
    FileNotFoundError: the source is neither a name, a folder nor a file.
  """
  size = int(image_size or DEFAULT_IMAGE_SIZE)
  if imagenet.is_imagenet_name(source):
    name = source[len(imagenet.PREFIX):]
    imagenet.weights_path(name)  # unknown names and missing packages fail here, clearly
    model_name = imagenet.WEIGHTS[name][3]
    model = build_model(model_name, IMAGENET_CLASSES, in_channels=3, input_size=size)
    model, note = imagenet.initial_weights(source, model_name, model, skip_head=False)
    return Candidate(source, model, size, 3, imagenet.INPUT_MEAN, imagenet.INPUT_STD, note)
  folder, which = run_checkpoint(source)
  if os.path.isdir(folder):
    config, graphdef, params, state = weights_lib.restore_run_weights(folder, which)
    run = results_lib.read_json(os.path.join(folder, "run.json"))
    return Candidate(source, functional.merge(graphdef, params, state),
                     int(config.model.input_size), int(config.model.in_channels),
                     run.get("mean"), run.get("std"), f"run {folder} ({which})")
  if os.path.isfile(source):
    if not weights_model:
      raise ValueError(f"{source} is a weights file: say which model it fits "
                       "(weights_model, e.g. efficientnet_lite0 or resnet50).")
    model = build_model(weights_model, IMAGENET_CLASSES, in_channels=3, input_size=size)
    if weights_model in EFFICIENTNET_NAMES:
      model, note = imagenet.initial_weights(source, weights_model, model, skip_head=False)
      return Candidate(source, model, size, 3, imagenet.INPUT_MEAN, imagenet.INPUT_STD, note)
    pretrained.load_torchvision_resnet(source, model, skip_head=False)
    return Candidate(source, model, size, 3, transforms.IMAGENET_MEAN, transforms.IMAGENET_STD,
                     f"torchvision weights {source}")
  raise FileNotFoundError(f"candidate {source!r} is neither an imagenet: name, a run folder "
                          "nor a weights file.")


def model_inputs(candidate: Candidate, ds: Dataset) -> np.ndarray:
  """`ds`'s images as `candidate` takes them: its size and channels, normalised, float32."""
  size, channels = candidate.input_size, candidate.in_channels
  converted = transforms.to_model_input(ds, size, size, channels)
  return batching.prepare_images(converted.images, candidate.mean, candidate.std)


def ntk_score(candidate: Candidate, ds: Dataset, score_name: str, source_probs: Any, *,
              layers: Any = DEFAULT_NTK_LAYERS) -> float:
  """A theory score (b) of `candidate`: its empirical NTK with respect to `layers`.

  Args:
    candidate: the network.
    ds: the target sample.
    score_name: a key of NTK_SCORES.
    source_probs: the candidate's source softmax on `ds` (y_P->Q), or None.
    layers: the layers free in the kernel (`transjax.params.mask_for` names).

  Returns:
    The score (higher = better transfer).
  """
  graphdef, params, state = functional.split(candidate.model)
  apply_fn, subset = ntk.model_apply_fn(graphdef, params, state, layers)
  return NTK_SCORES[score_name](apply_fn, subset, model_inputs(candidate, ds), ds.labels,
                                source_probs)


def features_and_probs(candidate: Candidate, ds: Dataset, *,
                       batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
  """(features (N, D) the head reads, source softmax (N, C_s)) of `ds` through `candidate`.

  Args:
    candidate: the network.
    ds: target images (any size and channels; converted to the candidate's input).
    batch_size: images per forward pass.

  Returns:
    Both float64.
  """
  images = model_inputs(candidate, ds)
  graphdef, state = nnx.split(candidate.model)

  @jax.jit
  def run(state, x):
    m = nnx.merge(graphdef, state)
    values = taps_lib.TapValues()
    logits = m(x, train=False, taps=values)
    if "fc" not in values:
      raise ValueError(f"{type(m).__name__} has no 'fc' tap (the head's input).")
    return values["fc"].reshape(x.shape[0], -1), jax.nn.softmax(logits, axis=-1)

  feats, probs = [], []
  for i in range(0, len(images), batch_size):
    f, p = run(state, jnp.asarray(images[i:i + batch_size]))
    feats.append(np.asarray(f, np.float64))
    probs.append(np.asarray(p, np.float64))
  probs = np.concatenate(probs)
  # float32 softmax rows sum to 1 only to ~1e-7; LEEP checks they are distributions.
  return np.concatenate(feats), probs / probs.sum(axis=1, keepdims=True)


def rank_candidates(target: Dataset, candidates: Sequence[str], score_name: str, *,
                    num_samples: int | None = 500, seed: int = 0,
                    image_size: int | None = None, weights_model: str | None = None,
                    batch_size: int = 128, ntk_layers: Any = DEFAULT_NTK_LAYERS
                    ) -> dict[str, Any]:
  """Scores every candidate on a stratified sample of `target` and ranks them, best first.

  Args:
    target: the target dataset (uint8 or float images, integer labels).
    candidates: candidate names (see the module docstring).
    score_name: a key of `transferability.SCORES` or of NTK_SCORES.
    num_samples: target samples scored (stratified, seeded); None or more than the
      dataset: all of it.
    seed: seed of the sample.
    image_size: input side for ImageNet candidates and weight files.
    weights_model: the model weight files fit.
    batch_size: images per forward pass.
    ntk_layers: the layers free in the NTK scores' kernel.

  Returns:
    {"score", "target", "num_samples", "ranking": [{"rank", "candidate", "score",
    "seconds_features", "seconds_score", "note"}], "seconds_total"}.
  """
  if score_name not in SCORES and score_name not in NTK_SCORES:
    raise KeyError(f"unknown score {score_name!r}; known: "
                   f"{', '.join([*SCORES, *NTK_SCORES])}.")
  if not candidates:
    raise ValueError("no candidates to rank.")
  start = time.perf_counter()
  if num_samples and num_samples < len(target):
    target = transforms.subset_total(target, num_samples, seed)
  rows = []
  for source in candidates:
    t0 = time.perf_counter()
    candidate = load_candidate(source, image_size=image_size, weights_model=weights_model)
    features, probs = features_and_probs(candidate, target, batch_size=batch_size)
    t1 = time.perf_counter()
    if score_name in NTK_SCORES:
      value = ntk_score(candidate, target, score_name, probs, layers=ntk_layers)
    else:
      value = score_fn(score_name, features, target.labels, probs)
    rows.append({"candidate": source, "score": value, "seconds_features": t1 - t0,
                 "seconds_score": time.perf_counter() - t1, "note": candidate.note})
  rows.sort(key=lambda r: -r["score"])
  for i, row in enumerate(rows):
    row["rank"] = i + 1
  return {"score": score_name, "target": target.describe(),
          "num_samples": len(target), "ranking": rows,
          "seconds_total": time.perf_counter() - start}


def format_ranking(result: dict[str, Any]) -> str:
  """The ranking as a table, best first, with the time each candidate took."""
  lines = [f"{result['score']} on {result['target']} ({result['num_samples']} samples), "
           "higher = better transfer:",
           f"{'rank':>4}  {'score':>14}  {'features s':>10}  {'score s':>8}  candidate"]
  for row in result["ranking"]:
    lines.append(f"{row['rank']:>4}  {row['score']:>14.6g}  {row['seconds_features']:>10.2f}  "
                 f"{row['seconds_score']:>8.2f}  {row['candidate']}")
  lines.append(f"total {result['seconds_total']:.1f} s")
  return "\n".join(lines)


def rank_to_file(target_spec: dict[str, Any], candidates: Sequence[str], score_name: str,
                 output: str, *, data_dir: str | None = None, seed: int = 0,
                 **kwargs: Any) -> dict[str, Any]:
  """Builds the target dataset from its spec, ranks the candidates, writes JSON to `output`.

  Args:
    target_spec: a `transjax.data.build` spec ({"name": ..., "split": ...}).
    candidates: candidate names.
    score_name: a key of `transferability.SCORES` or of NTK_SCORES.
    output: path of the JSON file written (folders created).
    data_dir: local data folder.
    seed: seed of the data's transforms and of the target sample.
    **kwargs: `rank_candidates`'s keyword arguments.

  Returns:
    The result `rank_candidates` returns (also in `output`).
  """
  from transjax.data import spec as data_spec  # pylint: disable=import-outside-toplevel
  data_spec.validate(target_spec)
  target = data_spec.build(target_spec, data_dir=data_dir, seed=seed)
  result = rank_candidates(target, candidates, score_name, seed=seed, **kwargs)
  folder = os.path.dirname(os.path.abspath(output))
  os.makedirs(folder, exist_ok=True)
  results_lib.write_json(output, result)
  return result
