"""Training and fine-tuning: scratch, fixed feature extractor, full fine-tuning.

One code path for all three modes: a boolean mask over the parameters says what trains
(`fixed`: only the head `fc`; `scratch` and `finetune`: everything), and optax zeroes the
updates of the rest. The step is jit-compiled and data-parallel: the batch is sharded
over a 1-D 'data' mesh and parameters are replicated, so the same code runs on one CPU
device or many accelerators.

A run folder (`workdir`) holds config.json, metrics.jsonl, results.json, checkpoints/,
init/ (the starting weights) and what the run's callbacks write (`RunCallback`; with
`transjax.train_callbacks.standard()`, the deviation of the weights from the start in the
evaluations and results.json, and training_curves.png). Started again with the same
workdir, a run resumes from its last checkpoint and ends with the same numbers as an
uninterrupted one: batches are a function of (seed, step), and the metrics log is cut
back to the restored step. A checkpoint that cannot be read is set aside and the run
resumes from the newest readable one (`transjax.checkpoint`); SIGTERM or SIGINT writes a
checkpoint at the current step before the run stops (`transjax.interrupts`).

Under several processes (`transjax.distributed`, one per host) the mesh spans all their
devices, each process reads only its rows of every batch, process 0 writes the folder's
files (config, metrics, results, figures) and every process takes part in the Orbax
checkpoints (docs/multiprocess.md).

Where the weights come from is `transjax.weights`; what trains and the optimiser are
`transjax.optim`; the run's data is `transjax.data.run_data`.

The trainer depends only downward (the weights, optimiser, data, checkpoints): what is
measured besides losses and errors, and every figure, is a callback of its caller's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec

from transjax import checkpoint as ckpt
from transjax import compiled_cache
from transjax import config as config_lib
from transjax import convergence
from transjax import distributed
from transjax import functional
from transjax import interrupts
from transjax import params as params_lib
from transjax import results as results_lib
from transjax import sharding
from transjax import weights as weights_lib
from transjax import workdir_lock
from transjax.data import Dataset, batching
from transjax.data.run_data import RunData, load_data
from transjax.optim import make_optimizer, trainable_mask

class NonFiniteError(FloatingPointError):
  """NaN or Inf in the loss or the parameters; a checkpoint of the last finite state is kept."""


# The training-loss sums of the logging interval a signal cut, beside the checkpoint it
# wrote: the resumed run's next train record then averages the same steps as an
# uninterrupted run's.
INTERRUPTED_INTERVAL = "interrupted_interval.json"


def _interval_at(path: str, start: int) -> tuple[dict[str, float], int]:
  """(sums, count) of the logging interval open at `start`: zero, or what a signal saved."""
  if os.path.exists(path):
    try:
      saved = results_lib.read_json(path)
      if saved.get("step") == start:
        return {"loss": float(saved["loss"]), "accuracy": float(saved["accuracy"])}, \
            int(saved["count"])
    except (OSError, ValueError, KeyError, TypeError):
      pass  # a damaged note: the interval restarts (only its logged average differs)
  return {"loss": 0.0, "accuracy": 0.0}, 0


def _checkpoint_on_signal(store: ckpt.CheckpointStore, ts, step: int, start: int,
                          sums: dict[str, float], count: int, interval_path: str,
                          workdir: str, signum: int | None = None) -> None:
  """Writes a checkpoint at `step` (where one is missing and the state is finite), then
  raises `interrupts.Interrupted` saying where the run stands. `signum`: the signal the
  processes agreed on (`distributed.agreed_signal`), by default this process's own."""
  signum = signum or interrupts.pending()
  if int(ts["nonfinite_step"]) >= 0:
    where = (f"{workdir} stopped at step {step} without a checkpoint (the state is not "
             f"finite); run the same command again to resume from step {start}")
  elif step > start:
    if step not in store.all_steps():  # a scheduled checkpoint may have just been written
      store.save(step, jax.device_get(ts))
    if distributed.is_writer():
      results_lib.write_json(interval_path, {"step": step, "count": count, **sums})
    where = (f"checkpoint written at step {step} of {workdir}; run the same command again "
             "to resume from there")
  else:
    where = (f"{workdir} is at step {step} (nothing new to checkpoint); run the same "
             "command again to resume")
  raise interrupts.Interrupted(signum, where)


class _UnwrittenLog(results_lib.MetricsLog):
  """The metrics log of processes other than 0 in a multi-process run: process 0 writes
  metrics.jsonl; the others keep the same records in memory (read once at the start), so
  decisions made from the log (convergence) and results agree in every process without
  reading a file another process is writing."""

  def __init__(self, path: str):
    super().__init__(path)
    self._records = super().read()

  def append(self, record) -> None:
    self._records.append(json.loads(json.dumps(results_lib.to_jsonable(dict(record)))))

  def truncate_after(self, step: int) -> None:
    self._records = [r for r in self._records if r.get("step", 0) <= step]

  def read(self) -> list[dict[str, Any]]:
    return list(self._records)


def num_train_steps(config: ml_collections.ConfigDict, n_train: int) -> int:
  if config.batch_size > n_train:
    raise config_lib.ConfigError(
        f"config.batch_size = {config.batch_size} is larger than the training set "
        f"({n_train} examples).")
  if config.num_steps > 0:
    return int(config.num_steps)
  per_epoch = batching.steps_per_epoch(n_train, config.batch_size)
  return max(1, int(math.ceil(config.num_epochs * per_epoch)))


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
  # Each process reads only its rows of every batch, padded to its share.
  rows = slice(0, batch_size) if data_sharding is None else \
      distributed.local_rows(data_sharding, batch_size)
  for batch in batching.eval_batches(ds, batch_size, mean=mean, std=std, rows=rows):
    batch = _padded(batch, rows.stop - rows.start)
    if data_sharding is not None:
      batch = distributed.global_batch(batch, data_sharding, batch_size)
    l, c = eval_step(params, state, batch)
    loss_sum += float(l)
    correct += float(c)
  n = len(ds)
  return {"loss": loss_sum / n, "error": 1.0 - correct / n}


# ------------------------------------------------------------------------ the driver


# XLA:CPU hands dots (and reductions, elementwise fusions) to YNNPACK by default; the
# training step runs faster on XLA's own kernels. LeNet, batch 64, 10 interleaved rounds
# in one process (2-core EPYC): best 2.72 against 3.63 ms a step, every round faster;
# EfficientNet-Lite0 at 96 px 978 against 1558 ms (4 rounds); resnet_tiny the same (71.5
# against 72.1 ms). Losses agree to 1e-6 and gradient norms to 7e-4 (float32 sums taken
# in another order).
CPU_TRAIN_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _train_compiler_options() -> dict[str, Any] | None:
  return CPU_TRAIN_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None


def jit_train_step(step_fn: Callable) -> Callable:
  """The jitted training step `train` runs: its state argument donated, and on CPU
  compiled with `CPU_TRAIN_COMPILER_OPTIONS`."""
  return jax.jit(step_fn, donate_argnums=(0,), compiler_options=_train_compiler_options())


STEPS_CACHE_SIZE = 4
# The jitted steps of the runs of this process (`jitted_steps`): module-level, so it lives
# as long as the process; `STEPS_CACHE.clear()` drops them, `len(STEPS_CACHE)` and
# `STEPS_CACHE.keys()` show what is held.
STEPS_CACHE: compiled_cache.CompiledCache[
    tuple[optax.GradientTransformation, Callable, Callable]] = compiled_cache.CompiledCache(
        "transjax.train steps", STEPS_CACHE_SIZE)


def _canonical_json(value: Any) -> str:
  """One string per value: JSON with sorted keys at every level, NaN and Infinity kept
  apart, anything JSON cannot write by its repr."""
  return json.dumps(value, sort_keys=True, default=repr)


def jitted_steps(graphdef, config: ml_collections.ConfigDict, num_steps: int, mask: Any,
                 state_mask: Any) -> tuple[optax.GradientTransformation, Callable, Callable]:
  """(optimizer, jitted train step, jitted eval step) of a run, shared by identical runs.

  The step is a function of the model graph, the mode (fixed: frozen features), the
  optimiser settings, the schedule length and the trainable masks only, so runs in one
  process that agree on all of them (the seeds and modes of a paper table, the targets of
  one pretrained network) reuse one jitted function, and with it JAX's compiled
  executables: a ResNet-50 step is then neither traced nor compiled (or read from the
  persistent cache) again. They are kept in `STEPS_CACHE` (the last `STEPS_CACHE_SIZE`),
  keyed on exactly those inputs: the optimiser settings as canonical JSON
  (`make_optimizer` reads `config.optim` only), the masks as tree structure and leaves,
  and the compiler options the step is jitted with.
  """
  masks = tuple((jax.tree.structure(m), tuple(bool(x) for x in jax.tree.leaves(m)))
                for m in (mask, state_mask))
  options = _train_compiler_options()
  key = (graphdef, config.mode == "fixed", _canonical_json(config.optim.to_dict()),
         int(num_steps), masks, None if options is None else _canonical_json(options))

  def build():
    loss_fn = functional.make_loss_fn(graphdef, frozen_features=config.mode == "fixed")
    tx = make_optimizer(config, num_steps, mask)
    return (tx, jit_train_step(make_train_step(loss_fn, tx, state_mask)),
            jax.jit(make_eval_step(loss_fn)))

  return STEPS_CACHE.get(key, build)


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  try:
    return sharding.data_mesh(num_devices)
  except ValueError as e:
    raise config_lib.ConfigError(f"config.num_devices = {num_devices}: {e}") from None


def _round_up(x: int, k: int) -> int:
  return -(-x // k) * k


# ------------------------------------------------------------------------ callbacks
#
# The trainer computes the loss and error of its evaluations and nothing else: what a run
# measures besides (the deviation of the weights, gradient variations) and the figures it
# draws are callbacks its caller registers (`transjax.train_callbacks.standard()` are
# those of a standard run). Two kinds, told apart by what they implement; one object may
# be both. Every process of a multi-process run calls them alike, except `write`.


@runtime_checkable
class StepCallback(Protocol):
  """Measures something every few steps: a record of its own in metrics.jsonl.

  After every step `done` (1, 2, ...: the number of steps taken) the trainer asks
  `should_run(done)` (cheap: called every step) and, when true, calls
  `cb(done, params, state)` with the current parameters and BatchNorm statistics (jax
  arrays, replicated over the mesh; not to be kept past the call: the next step donates
  them). The mapping it returns is logged as one record `{"step": done, **mapping}`
  (JSON-able values). It may raise to stop the run (the state of the last checkpoint
  stays).
  """

  def should_run(self, step: int) -> bool: ...

  def __call__(self, step: int, params: Any, state: Any) -> Mapping[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class Run:
  """What a `RunCallback` is told of the run at its start."""
  config: ml_collections.ConfigDict
  workdir: str                # the run folder (absolute)
  data: RunData
  num_steps: int              # the schedule's length
  start_step: int             # 0, or the checkpoint step it resumed from
  params0: Any                # the weights the run started from (replicated over the mesh)


class RunCallback:
  """Adds metrics to the evaluations, keys to results.json and files to the run folder.

  Subclass and override what you need; each hook does nothing by default. Called, in order:

  * `begin(run)`: once per `train` call, before the first evaluation, when the starting
    weights are known (restored from init/ on a resume).
  * `evaluate(step, params, state)`: at each evaluation (step 0 of a fresh run, every
    `config.eval_every` steps and the last); its mapping is merged into that evaluation's
    metrics.jsonl record after the trainer's keys (which it may not reuse).
  * `results(final)`: once, at the end; `final` is the last evaluation record (with the
    keys `evaluate` added, possibly from an earlier call that the run resumed); its
    mapping is merged into results.json after "final" (the trainer's keys not reused).
  * `write(run, records, results)`: in process 0 only, after results.json is written,
    with every metrics record of the run and its results; writes files in `run.workdir`.

  A callback serves one run at a time (`begin` starts it afresh).
  """

  def begin(self, run: Run) -> None:
    del run

  def evaluate(self, step: int, params: Any, state: Any) -> Mapping[str, Any]:
    del step, params, state
    return {}

  def results(self, final: Mapping[str, Any]) -> Mapping[str, Any]:
    del final
    return {}

  def write(self, run: Run, records: Sequence[Mapping[str, Any]],
            results: Mapping[str, Any]) -> None:
    del run, records, results


Callback = StepCallback | RunCallback


def _split_callbacks(callbacks: Sequence[Callback]
                     ) -> tuple[list[StepCallback], list[RunCallback]]:
  steps = [cb for cb in callbacks if isinstance(cb, StepCallback)]
  runs = [cb for cb in callbacks if isinstance(cb, RunCallback)]
  for i, cb in enumerate(callbacks):
    if not isinstance(cb, (StepCallback, RunCallback)):
      raise TypeError(f"callbacks[{i}] ({type(cb).__name__}) is neither a StepCallback "
                      "(should_run and __call__) nor a RunCallback (transjax.train).")
  return steps, runs


def _merged(record: dict[str, Any], extra: Mapping[str, Any], cb: RunCallback, what: str,
            reserved: Sequence[str] = ()) -> None:
  """`record` updated with what `cb.<what>` returned, none of whose keys the trainer's."""
  clash = sorted((set(record) | set(reserved)) & set(extra))
  if clash:
    raise ValueError(f"{type(cb).__name__}.{what} returned keys the trainer writes: {clash}.")
  record.update(extra)


@workdir_lock.locked()
def train(config: ml_collections.ConfigDict, workdir: str,
          callbacks: Sequence[Callback] = (), *, data: RunData | None = None) -> dict[str, Any]:
  """Trains per `config` into `workdir` (resuming what is there); returns results.json.

  `callbacks`: `StepCallback`s and `RunCallback`s, called as those classes say; the
  trainer alone logs losses and errors (`transjax.train_callbacks.standard()` adds the
  deviation of the weights and training_curves.png of a standard run).
  `data`: `load_data(config)` when the caller already has it (a callback built from the
  same data), so it is not read twice. The workdir is locked for the call
  (`transjax.workdir_lock`): a second process on the same folder is refused before
  anything in it changes.
  """
  config_lib.validate(config)
  step_callbacks, run_callbacks = _split_callbacks(callbacks)
  workdir = results_lib.ensure_workdir(workdir)
  config_path = os.path.join(workdir, "config.json")
  config_dict = results_lib.to_jsonable(config)
  # Every process of a multi-process run must train the same thing: checked before work.
  distributed.check_same_config(config_dict)
  distributed.check_divides(config.batch_size)
  config_lib.check_run_folder_config(workdir, config_dict, ckpt.checkpoint_steps(workdir))

  data = data if data is not None else load_data(config)
  num_steps = num_train_steps(config, len(data.train))
  mesh = make_mesh(config.num_devices)
  n_dev = mesh.devices.size
  if config.batch_size % n_dev:
    raise config_lib.ConfigError(
        f"config.batch_size = {config.batch_size} must be divisible by the {n_dev} devices.")
  data_sharding = NamedSharding(mesh, PartitionSpec("data"))
  eval_batch = _round_up(min(config.eval_batch_size, max(len(data.test), 1)), n_dev)

  graphdef, params0, state0, init_note = weights_lib.initial_weights(config, data.num_classes)
  # Written once the data and weights are in hand: a start that fails leaves the folder as
  # it was (a folder with config.json but no checkpoint is reused anyway).
  if distributed.is_writer():  # the run folder's own files: process 0's
    results_lib.write_json(config_path, config_dict)
    results_lib.write_json(os.path.join(workdir, "run.json"), {
        "num_classes": data.num_classes, "num_steps": num_steps, "init": init_note,
        "data": data.describe(), "mean": data.mean, "std": data.std,
        "num_params": params_lib.count(params0), **results_lib.run_metadata()})
  # fixed: the backbone is a fixed feature extractor, BatchNorm included.
  mask = trainable_mask(config, params0)
  state_mask = trainable_mask(config, state0)
  tx, step_fn, eval_step = jitted_steps(graphdef, config, num_steps, mask, state_mask)

  def eval_record(ts) -> dict[str, Any]:
    p, s = ts["params"], ts["state"]
    test = evaluate(eval_step, p, s, data.test, batch_size=eval_batch, mean=data.mean,
                    std=data.std, data_sharding=data_sharding)
    tr = evaluate(eval_step, p, s, data.train, batch_size=eval_batch, mean=data.mean,
                  std=data.std, data_sharding=data_sharding,
                  max_examples=config.data.max_eval_train)
    record = {"step": int(ts["step"]), "test_loss": test["loss"], "test_error": test["error"],
              "train_eval_loss": tr["loss"], "train_eval_error": tr["error"]}
    for cb in run_callbacks:
      _merged(record, cb.evaluate(record["step"], p, s), cb, "evaluate")
    return record

  log = (results_lib.MetricsLog if distributed.is_writer() else _UnwrittenLog)(
      os.path.join(workdir, "metrics.jsonl"))
  distributed.barrier("metrics read")  # before process 0 cuts the log back
  init_dir = os.path.join(workdir, "init")
  interval_path = os.path.join(workdir, INTERRUPTED_INTERVAL)
  # SIGTERM / SIGINT wait for the end of a step (transjax.interrupts), then checkpoint.
  with interrupts.deferred(), ckpt.CheckpointStore(
      workdir, max_to_keep=config.keep_checkpoints,
      keep_period=config.keep_period or None) as store:
    ts = {"step": jnp.zeros((), jnp.int32), "params": params0, "state": state0,
          "opt_state": tx.init(params0), "nonfinite_step": jnp.full((), -1, jnp.int32)}
    start, restored = store.restore_newest_readable(ts)
    if start is not None:
      ts = restored
      params0 = ckpt.restore_tree(init_dir, {"params": params0, "state": state0})["params"]
      log.truncate_after(start)
      logging.info("Resuming %s from step %d of %d.", workdir, start, num_steps)
    else:
      start = 0
      # Host copies: Orbax refuses a process-local jax.Array in a multi-process run.
      ckpt.save_tree(init_dir, jax.device_get({"params": params0, "state": state0}))
      log.truncate_after(-1)
    # The step donates its input; params0 must outlive it.
    # Across processes through host copies: a restored array is committed to one local
    # device, and JAX does not move that to another process's devices.
    params0 = distributed.replicate(jax.tree.map(jnp.copy, params0), mesh)
    ts = distributed.replicate(jax.tree.map(jnp.copy, ts), mesh)
    run = Run(config=config, workdir=workdir, data=data, num_steps=num_steps,
              start_step=start, params0=params0)
    for cb in run_callbacks:
      cb.begin(run)
    if start == 0:
      log.append(eval_record(ts))

    t0, interval_t0 = time.time(), time.time()
    stop_at = float(config.get("stop_at_train_error", 0.0))
    sums, count = _interval_at(interval_path, start)
    # A checkpoint a signal wrote between scheduled ones goes once the next one is written,
    # so the folder ends as an uninterrupted run's.
    unscheduled = start if start % config.checkpoint_every and start != num_steps else None
    pending = []
    # Each process reads and prepares only its rows of every global batch.
    rows = distributed.local_rows(data_sharding, config.batch_size)
    for step, batch in batching.iterate(data.train, config.batch_size, config.seed,
                                        start_step=start, num_steps=num_steps - start,
                                        augment=config.data.augment, mean=data.mean,
                                        std=data.std, rows=rows):
      # `step` steps are done: the state is whole here. With several processes, one that
      # got the signal stops them all at this step.
      signum = distributed.agreed_signal(interrupts.pending())
      if signum:
        for m in jax.device_get(pending):
          sums["loss"] += float(m["loss"])
          sums["accuracy"] += float(m["accuracy"])
          count += 1
        _checkpoint_on_signal(store, ts, step, start, sums, count, interval_path, workdir,
                              signum)
      ts, metrics = step_fn(ts, distributed.global_batch(batch, data_sharding,
                                                         config.batch_size))
      pending.append(metrics)
      done = step + 1
      for cb in step_callbacks:
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
      converged = False
      if done % config.eval_every == 0 or done == num_steps:
        ev = eval_record(ts)
        log.append(ev)
        if stop_at > 0:   # reads the curve back (a resumed run's earlier records included)
          converged = convergence.should_stop(
              stop_at, ev["train_eval_error"],
              [(r["step"], r["train_loss"]) for r in log.read() if "train_loss" in r])
      if done % config.checkpoint_every == 0 or done == num_steps or converged:
        store.save(done, jax.device_get(ts))
        if unscheduled is not None:
          store.delete(unscheduled)
          unscheduled = None
      if converged:
        logging.info("[%s] stopped at step %d of %d: %s", config.name, done, num_steps,
                     convergence.criterion(stop_at))
        break
    wall = time.time() - t0
  if os.path.exists(interval_path) and distributed.is_writer():
    os.remove(interval_path)

  records = log.read()
  final = results_lib.last_with(records, "test_error")
  results = {
      "name": config.name, "mode": config.mode, "init": init_note,
      "steps": int(final["step"]) if final else num_steps,
      "final": {"train_loss": final["train_eval_loss"], "train_error": final["train_eval_error"],
                "test_loss": final["test_loss"], "test_error": final["test_error"]},
  }
  tail = {"data": data.describe(), "wall_time_s_this_call": wall,
          "resumed_from_step": start or None}
  for cb in run_callbacks:
    _merged(results, cb.results(final), cb, "results", reserved=tuple(tail))
  results.update(tail)
  if distributed.is_writer():
    results_lib.write_json(os.path.join(workdir, "results.json"), results)
    for cb in run_callbacks:
      cb.write(run, records, results)
  return results
