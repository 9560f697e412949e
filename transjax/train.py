"""Training and fine-tuning: scratch, fixed feature extractor, full fine-tuning.

One code path for all three modes: a boolean mask over the parameters says what trains
(`fixed`: only the head `fc`; `scratch` and `finetune`: everything), and optax zeroes the
updates of the rest. The step is jit-compiled and data-parallel: the batch is sharded
over a 1-D 'data' mesh and parameters are replicated, so the same code runs on one CPU
device or many accelerators.

A run folder (`workdir`) holds config.json, metrics.jsonl, results.json, checkpoints/,
init/ (the starting weights) and training_curves.png. Started again with the same
workdir, a run resumes from its last checkpoint and ends with the same numbers as an
uninterrupted one: batches are a function of (seed, step), and the metrics log is cut
back to the restored step.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from transjax import checkpoint as ckpt
from transjax import config as config_lib
from transjax import functional
from transjax import params as params_lib
from transjax import plotting
from transjax import results as results_lib
from transjax import sharding
from transjax.analysis import deviation as deviation_lib
from transjax.data import Dataset, batching, spec as data_spec, transforms
from transjax.models import build_model

HEAD = "fc"


class NonFiniteError(FloatingPointError):
  """NaN or Inf in the loss or the parameters; a checkpoint of the last finite state is kept."""


class WeightShapeError(ValueError):
  """Loaded weights do not fit the model (names the parameter and both shapes)."""


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class RunData:
  """A run's datasets at the model's input size (uint8 or float), and normalisation."""
  train: Dataset
  test: Dataset
  mean: np.ndarray | None
  std: np.ndarray | None

  @property
  def num_classes(self) -> int:
    return max(self.train.num_classes, self.test.num_classes)

  def describe(self) -> dict[str, Any]:
    stand_ins = sorted({d.provenance.stand_in_for for d in (self.train, self.test)
                        if d.provenance.stand_in_for})
    return {"train": self.train.provenance.describe(), "test": self.test.provenance.describe(),
            "n_train": len(self.train), "n_test": len(self.test), "stand_in_for": stand_ins}


def load_data(config: ml_collections.ConfigDict) -> RunData:
  """Builds the train and test sets named by the config, sized for the model."""
  data_dir = config.data.data_dir or None
  size, channels = config.model.input_size, config.model.in_channels
  sets = []
  for split in ("train", "test"):
    spec = dict(config.data[split])
    if config.data.tfds_data_dir and "tfds_data_dir" not in spec:
      spec["tfds_data_dir"] = config.data.tfds_data_dir
    # TFDS datasets of natural images come in many sizes; resize them as they are read.
    spec.setdefault("image_size", (size, size))
    ds = data_spec.build(spec, data_dir=data_dir, seed=config.seed)
    sets.append(transforms.to_model_input(ds, size, size, channels))
  train, test = sets
  if config.data.normalize == "train":
    mean, std = transforms.channel_stats(train)
  elif config.data.normalize == "imagenet":
    mean = np.asarray(config_lib.IMAGENET_MEAN[:channels], np.float32)
    std = np.asarray(config_lib.IMAGENET_STD[:channels], np.float32)
  else:
    mean = std = None
  return RunData(train, test, mean, std)


def num_train_steps(config: ml_collections.ConfigDict, n_train: int) -> int:
  if config.batch_size > n_train:
    raise config_lib.ConfigError(
        f"config.batch_size = {config.batch_size} is larger than the training set "
        f"({n_train} examples).")
  if config.num_steps > 0:
    return int(config.num_steps)
  per_epoch = batching.steps_per_epoch(n_train, config.batch_size)
  return max(1, int(math.ceil(config.num_epochs * per_epoch)))


# -------------------------------------------------------------------------- weights


def build_from_config(config: ml_collections.ConfigDict, num_classes: int) -> nnx.Module:
  m = config.model
  return build_model(m.name, num_classes, in_channels=m.in_channels, input_size=m.input_size,
                     head=m.head, seed=config.seed)


def transfer_weights(source: Any, target: Any, *, skip_prefix: str | None, what: str) -> Any:
  """Copies `source` leaves into `target` by path; every path must exist with its shape.

  Leaves under `skip_prefix` (the head, when it is re-initialised) keep the target's.
  """
  src = dict(params_lib.named_leaves(source))
  out, problems = [], []
  for path, leaf in params_lib.named_leaves(target):
    if skip_prefix and (path == skip_prefix or path.startswith(skip_prefix + "/")):
      out.append(leaf)
    elif path not in src:
      problems.append(f"{path}: missing from the loaded weights")
      out.append(leaf)
    elif np.shape(src[path]) != np.shape(leaf):
      problems.append(f"{path}: loaded shape {tuple(np.shape(src[path]))} but the model has "
                      f"{tuple(np.shape(leaf))}")
      out.append(leaf)
    else:
      out.append(jnp.asarray(src[path], dtype=leaf.dtype))
  if problems:
    raise WeightShapeError(f"{what} do not fit the model: " + "; ".join(problems))
  return jax.tree.unflatten(jax.tree.structure(target), out)


def restore_run_weights(run_dir: str, which: str | int = "final") -> tuple[ml_collections.ConfigDict, nnx.GraphDef, Any, Any]:
  """(config, graphdef, params, state) of a training run at "final", "init" or a step."""
  config_path = os.path.join(run_dir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{run_dir} is not a transjax run folder (no config.json).")
  config = ml_collections.ConfigDict(results_lib.read_json(config_path))
  num_classes = int(results_lib.read_json(os.path.join(run_dir, "run.json"))["num_classes"])
  graphdef, params, state = functional.split(build_from_config(config, num_classes))
  like = {"params": params, "state": state}
  if which == "init":
    tree = ckpt.restore_tree(os.path.join(run_dir, "init"), like)
    return config, graphdef, tree["params"], tree["state"]
  steps = ckpt.checkpoint_steps(run_dir)
  if not steps:
    raise FileNotFoundError(f"{run_dir} has no checkpoint yet.")
  step = steps[-1] if which == "final" else int(which)
  if step not in steps:
    raise FileNotFoundError(f"{run_dir} has no checkpoint at step {step}; it has {steps}.")
  with ckpt.CheckpointStore(run_dir, max_to_keep=None) as store:
    raw = store.restore(step, _train_state_like(params, state, config))
  return config, graphdef, raw["params"], raw["state"]


def _initial_weights(config, num_classes) -> tuple[nnx.GraphDef, Any, Any, str]:
  """The model's starting weights: random, or loaded per config.init_from."""
  graphdef, params, state = functional.split(build_from_config(config, num_classes))
  if not config.init_from:
    return graphdef, params, state, f"random (seed {config.seed})"
  source = config.init_from
  skip = HEAD if config.new_head else None
  # ImageNet weights by name ("imagenet:efficientnet_lite0"), and EfficientNet-PyTorch
  # weight files for EfficientNet models: transjax.imagenet resolves and loads them.
  from transjax import imagenet  # pylint: disable=import-outside-toplevel
  if imagenet.handles(source, config.model.name):
    model = functional.merge(graphdef, params, state)
    model, note = imagenet.initial_weights(source, config.model.name, model,
                                           skip_head=bool(config.new_head))
    graphdef, params, state = functional.split(model)
    return graphdef, params, state, note
  if os.path.isdir(source):
    _, _, src_params, src_state = restore_run_weights(source, config.init_which)
    what = f"Weights of run {source} ({config.init_which})"
    params = transfer_weights(src_params, params, skip_prefix=skip, what=what)
    state = transfer_weights(src_state, state, skip_prefix=skip, what=what)
    return graphdef, params, state, f"run {source} ({config.init_which})"
  if os.path.isfile(source):
    from transjax import pretrained  # pylint: disable=import-outside-toplevel
    model = functional.merge(graphdef, params, state)
    model = pretrained.load_torchvision_resnet(source, model, skip_head=bool(config.new_head))
    graphdef, params, state = functional.split(model)
    return graphdef, params, state, f"torchvision weights {source}"
  raise FileNotFoundError(f"config.init_from = {source!r} is neither a run folder nor a file.")


def trainable_mask(config, tree) -> Any:
  """True where `tree` (parameters or BatchNorm state) trains: all of it, or in `fixed`
  mode only the head."""
  flat = [config.mode != "fixed" or path == HEAD or path.startswith(HEAD + "/")
          for path, _ in params_lib.named_leaves(tree)]
  return jax.tree.unflatten(jax.tree.structure(tree), flat)


# ------------------------------------------------------------------------ optimiser


def make_optimizer(config, num_steps: int, mask: Any) -> optax.GradientTransformation:
  """SGD with momentum and (PyTorch-style, coupled) weight decay on the trainable part."""
  o = config.optim
  if o.schedule == "step" and o.decay_at:
    boundaries = {int(f * num_steps): o.decay_factor for f in sorted(o.decay_at)}
    lr = optax.piecewise_constant_schedule(o.lr, boundaries)
  else:
    lr = optax.constant_schedule(o.lr)
  sgd = optax.chain(optax.add_decayed_weights(o.weight_decay),
                    optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov))
  labels = jax.tree.map(lambda m: "train" if m else "frozen", mask)
  return optax.multi_transform({"train": sgd, "frozen": optax.set_to_zero()}, labels)


def _train_state_like(params, state, config) -> dict[str, Any]:
  mask = trainable_mask(config, params)
  opt_state = make_optimizer(config, 1, mask).init(params)
  return {"step": jnp.zeros((), jnp.int32), "params": params, "state": state,
          "opt_state": opt_state, "nonfinite_step": jnp.full((), -1, jnp.int32)}


# ----------------------------------------------------------------------------- steps


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(loss_fn: functional.LossFn, tx: optax.GradientTransformation,
                    state_mask: Any) -> Callable:
  """The pure update: ts, batch -> (ts, metrics).

  A step whose loss or new parameters are not finite is not applied: the state stays at
  the last finite one and `nonfinite_step` records where it happened, so the caller can
  stop with that checkpoint.
  """

  def step(ts, batch):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        ts["params"], ts["state"], batch, True)
    updates, opt_state = tx.update(grads, ts["opt_state"], ts["params"])
    params = optax.apply_updates(ts["params"], updates)
    state = jax.tree.map(lambda m, new, old: new if m else old,
                         state_mask, aux["state"], ts["state"])
    finite = jnp.isfinite(loss) & _all_finite(params)
    new = {"step": ts["step"] + 1, "params": params, "state": state, "opt_state": opt_state,
           "nonfinite_step": ts["nonfinite_step"]}
    kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, ts)
    kept["nonfinite_step"] = jnp.where(
        finite | (ts["nonfinite_step"] >= 0), ts["nonfinite_step"], ts["step"])
    metrics = {"loss": loss, "accuracy": aux["accuracy"], "grad_norm": optax.tree.norm(grads)}
    return kept, metrics

  return step


def make_eval_step(loss_fn: functional.LossFn) -> Callable:
  def eval_step(params, state, batch):
    _, aux = loss_fn(params, state, batch, False)
    return aux["loss_sum"], aux["num_correct"]
  return eval_step


def _padded(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  n = len(batch["label"])
  weight = np.ones((size,), np.float32)
  if n == size:
    return {**batch, "weight": weight}
  weight[n:] = 0.0
  pad = lambda x: np.concatenate([x, np.zeros((size - n,) + x.shape[1:], x.dtype)])
  return {"image": pad(batch["image"]), "label": pad(batch["label"]), "weight": weight}


def evaluate(eval_step: Callable, params, state, ds: Dataset, *, batch_size: int, mean, std,
             data_sharding: NamedSharding | None = None, max_examples: int | None = None) -> dict[str, float]:
  """Loss and error over `ds` (the first `max_examples`), in inference mode."""
  if max_examples and len(ds) > max_examples:
    ds = ds.replace(images=ds.images[:max_examples], labels=ds.labels[:max_examples])
  loss_sum = correct = 0.0
  for batch in batching.eval_batches(ds, batch_size, mean=mean, std=std):
    batch = _padded(batch, batch_size)
    if data_sharding is not None:
      batch = jax.device_put(batch, data_sharding)
    l, c = eval_step(params, state, batch)
    loss_sum += float(l)
    correct += float(c)
  n = len(ds)
  return {"loss": loss_sum / n, "error": 1.0 - correct / n}


# ------------------------------------------------------------------------ the driver


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  try:
    return sharding.data_mesh(num_devices)
  except ValueError as e:
    raise config_lib.ConfigError(f"config.num_devices = {num_devices}: {e}") from None


def _round_up(x: int, k: int) -> int:
  return -(-x // k) * k


Callback = Any  # has should_run(step) -> bool and __call__(step, params, state) -> dict


def train(config: ml_collections.ConfigDict, workdir: str,
          callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
  """Trains per `config` into `workdir` (resuming what is there); returns results.json."""
  config_lib.validate(config)
  workdir = results_lib.ensure_workdir(workdir)
  config_path = os.path.join(workdir, "config.json")
  config_dict = results_lib.to_jsonable(config)
  if os.path.exists(config_path) and results_lib.read_json(config_path) != config_dict:
    raise config_lib.ConfigError(
        f"{workdir} holds a run with a different config; use a new --workdir or delete it.")
  results_lib.write_json(config_path, config_dict)

  data = load_data(config)
  num_steps = num_train_steps(config, len(data.train))
  mesh = make_mesh(config.num_devices)
  n_dev = mesh.devices.size
  if config.batch_size % n_dev:
    raise config_lib.ConfigError(
        f"config.batch_size = {config.batch_size} must be divisible by the {n_dev} devices.")
  replicated = NamedSharding(mesh, PartitionSpec())
  data_sharding = NamedSharding(mesh, PartitionSpec("data"))
  eval_batch = _round_up(min(config.eval_batch_size, max(len(data.test), 1)), n_dev)

  graphdef, params0, state0, init_note = _initial_weights(config, data.num_classes)
  results_lib.write_json(os.path.join(workdir, "run.json"), {
      "num_classes": data.num_classes, "num_steps": num_steps, "init": init_note,
      "data": data.describe(), "mean": data.mean, "std": data.std,
      "num_params": params_lib.count(params0), **results_lib.run_metadata()})
  # fixed: the backbone is a fixed feature extractor, BatchNorm included.
  loss_fn = functional.make_loss_fn(graphdef, frozen_features=config.mode == "fixed")
  mask = trainable_mask(config, params0)
  state_mask = trainable_mask(config, state0)
  tx = make_optimizer(config, num_steps, mask)
  step_fn = jax.jit(make_train_step(loss_fn, tx, state_mask), donate_argnums=(0,))
  eval_step = jax.jit(make_eval_step(loss_fn))
  n_train = len(data.train)

  deviation_fn = jax.jit(lambda p, p0: deviation_lib.deviation(p, p0, n_train))

  def dev(params):
    return deviation_lib.to_floats(deviation_fn(params, params0))

  def eval_record(ts) -> dict[str, Any]:
    p, s = ts["params"], ts["state"]
    test = evaluate(eval_step, p, s, data.test, batch_size=eval_batch, mean=data.mean,
                    std=data.std, data_sharding=data_sharding)
    tr = evaluate(eval_step, p, s, data.train, batch_size=eval_batch, mean=data.mean,
                  std=data.std, data_sharding=data_sharding,
                  max_examples=config.data.max_eval_train)
    d = dev(p)
    return {"step": int(ts["step"]), "test_loss": test["loss"], "test_error": test["error"],
            "train_eval_loss": tr["loss"], "train_eval_error": tr["error"],
            "deviation_last": d["last_layer"], "deviation_sum": d["sum"],
            "deviation": d["per_layer"]}

  log = results_lib.MetricsLog(os.path.join(workdir, "metrics.jsonl"))
  init_dir = os.path.join(workdir, "init")
  with ckpt.CheckpointStore(workdir, max_to_keep=config.keep_checkpoints,
                            keep_period=config.keep_period or None) as store:
    ts = {"step": jnp.zeros((), jnp.int32), "params": params0, "state": state0,
          "opt_state": tx.init(params0), "nonfinite_step": jnp.full((), -1, jnp.int32)}
    start = store.latest_step()
    if start is not None:
      ts = store.restore(start, ts)
      params0 = ckpt.restore_tree(init_dir, {"params": params0, "state": state0})["params"]
      log.truncate_after(start)
      logging.info("Resuming %s from step %d of %d.", workdir, start, num_steps)
    else:
      start = 0
      ckpt.save_tree(init_dir, {"params": params0, "state": state0})
      log.truncate_after(-1)
    # The step donates its input; params0 must outlive it.
    params0 = jax.device_put(jax.tree.map(jnp.copy, params0), replicated)
    ts = jax.device_put(jax.tree.map(jnp.copy, ts), replicated)
    if start == 0:
      log.append(eval_record(ts))

    t0, interval_t0 = time.time(), time.time()
    sums = {"loss": 0.0, "accuracy": 0.0}
    count = 0
    pending = []
    for step, batch in batching.iterate(data.train, config.batch_size, config.seed,
                                        start_step=start, num_steps=num_steps - start,
                                        augment=config.data.augment, mean=data.mean,
                                        std=data.std):
      ts, metrics = step_fn(ts, jax.device_put(batch, data_sharding))
      pending.append(metrics)
      done = step + 1
      for cb in callbacks:
        if cb.should_run(done):
          log.append({"step": done, **cb(done, ts["params"], ts["state"])})
      if done % config.log_every and done != num_steps:
        continue
      # A sync point: collect metrics, check finiteness, log, maybe evaluate/checkpoint.
      for m in jax.device_get(pending):
        sums["loss"] += float(m["loss"])
        sums["accuracy"] += float(m["accuracy"])
        count += 1
      pending = []
      bad = int(ts["nonfinite_step"])
      if bad >= 0:
        store.save(bad, jax.device_get(ts))
        raise NonFiniteError(
            f"Non-finite loss or parameters at step {bad + 1} of {workdir}; training stopped. "
            f"The last finite state (after step {bad}) is checkpointed in "
            f"{store.directory}/{bad}. Try a smaller config.optim.lr.")
      elapsed = time.time() - interval_t0
      rate = count / max(elapsed, 1e-9)
      record = {"step": done, "train_loss": sums["loss"] / count,
                "train_error": 1.0 - sums["accuracy"] / count,
                "lr": float(config.optim.lr), "steps_per_sec": rate}
      log.append(record)
      eta = (num_steps - done) / max(rate, 1e-9)
      logging.info("[%s] step %d/%d  loss %.4f  train err %.2f%%  %.1f steps/s  ETA %.0fs",
                   config.name, done, num_steps, record["train_loss"],
                   100 * record["train_error"], rate, eta)
      sums, count, interval_t0 = {"loss": 0.0, "accuracy": 0.0}, 0, time.time()
      if done % config.eval_every == 0 or done == num_steps:
        log.append(eval_record(ts))
      if done % config.checkpoint_every == 0 or done == num_steps:
        store.save(done, jax.device_get(ts))
    wall = time.time() - t0

  records = log.read()
  final = results_lib.last_with(records, "test_error")
  results = {
      "name": config.name, "mode": config.mode, "init": init_note, "steps": num_steps,
      "final": {"train_loss": final["train_eval_loss"], "train_error": final["train_eval_error"],
                "test_loss": final["test_loss"], "test_error": final["test_error"]},
      "deviation": {"last_layer": final["deviation_last"], "sum": final["deviation_sum"],
                    "per_layer": final["deviation"]},
      "data": data.describe(), "wall_time_s_this_call": wall,
      "resumed_from_step": start or None,
  }
  results_lib.write_json(os.path.join(workdir, "results.json"), results)
  plotting.training_curves(records, os.path.join(workdir, "training_curves.png"),
                           title=config.name)
  return results
