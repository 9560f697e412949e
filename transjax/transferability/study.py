"""The transferability study: how well each score ranks a model zoo, against fine-tuning.

    result = run_study(config, "runs/transferability_quick")   # configs/transferability_study.py

Steps, each resumable (every result is a file in the workdir, skipped when present):
1. **The zoo.** Each source of `config.sources` is pretrained here with `transjax.train`
   into `<workdir>/pretrain/<name>` (a run folder; an interrupted run resumes), keeping a
   checkpoint at every pretraining length asked for; each length is a candidate
   ("<folder>@<step>", as `candidates.py` names run checkpoints). `config.imagenet` adds
   `imagenet:` candidates as they are.
2. **The targets.** A stratified sample of each target's pool, split (seeded) into training,
   validation and test images. A candidate whose source `domain` is the target's is never
   scored or fine-tuned on it.
3. **Frozen evaluation** (`<workdir>/frozen/<target>/<candidate>.json`): every score of
   `config.scores` on the candidate's features of the training images, with the seconds
   each took, and the linear-probe accuracy (logistic regression on the frozen features, its
   inverse strength C chosen on the validation images): the second ground truth.
4. **Fine-tuning** (`<workdir>/finetune/<target>/<candidate>/lr<lr>_seed<seed>.json`): the
   whole network from the candidate's weights with a fresh head, SGD for a fixed number of
   steps through `transjax.train`'s jitted step; every rate of the grid at the first seed,
   the rate with the best validation accuracy kept (ties: the first in the grid), then the
   other seeds at that rate. Each file has the validation and test accuracy and the
   measured deviation ||W - W0|| (whole network, head, the rest; and the library's
   per-layer ||W - W0||_F / sqrt(n)).
5. **Evaluation** (`evaluate`): per target and score, weighted and plain Kendall tau
   against the mean fine-tuned test accuracy over seeds (and against the probe), top-1
   regret, their means over targets, a percentile bootstrap interval of the mean weighted
   tau (targets resampled with replacement, and each candidate's seeds resampled), the
   seconds to score; the fixed-ranking controls (parameter count, pretraining length); and
   Theorem 2 on the real network: the predicted deviation of the theory scores against
   the measured ||W - W0||, Spearman-correlated.
6. **The report**: `report.md`, `report.json` and one score-vs-accuracy figure per target
   (`fig_<target>.png`) plus `fig_deviation.png`, in the workdir.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import scipy.stats

from transjax import config as config_lib
from transjax import functional
from transjax import params as params_lib
from transjax import plotting
from transjax import results as results_lib
from transjax import train as train_lib
from transjax import weights as weights_lib
from transjax import workdir_lock
from transjax.analysis import deviation as deviation_lib
from transjax.data import batching, transforms
from transjax.data import spec as data_spec_lib
from transjax.data.dataset import Dataset
from transjax.optim import HEAD, make_optimizer, trainable_mask
from transjax.transferability import SCORES, ranking
from transjax.transferability import candidates as cand_lib
from transjax.transferability import score as score_fn
from transjax.weights import named as imagenet_weights

# The paper's theory as a score; the field's published scores; the controls.
THEORY_SCORES = ("theory_deviation", "theory_generalisation", "ntk_deviation",
                 "ntk_generalisation")
BASELINE_SCORES = ("logme", "sfda", "nleep", "hscore", "shrinkage_hscore", "gbc", "leep",
                   "nce", "transrate", "parc")
# Fixed rankings that see no target data (recent studies found them hard to beat).
FIXED_CONTROLS = ("num_params", "pretrain_steps", "source_accuracy")
EVAL_BATCH = 500


# ------------------------------------------------------------------------------ the zoo


@dataclasses.dataclass(frozen=True)
class ZooEntry:
  """One candidate of the zoo."""

  label: str            # e.g. "mnist/lenet@500"
  source: str           # the candidates.py name: "<run folder>@<step>" or "imagenet:<name>"
  domain: str           # the data it was pretrained on (never a target of its own)
  model: str
  pretrain_steps: int | None   # None: pretrained elsewhere (imagenet)

  @property
  def slug(self) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label)


def pretrain_config(source: dict[str, Any], data_dir: str) -> ml_collections.ConfigDict:
  """The `transjax.train` config of one zoo source: a checkpoint kept at every length."""
  steps = sorted(int(s) for s in source["checkpoints"])
  every = 0
  for s in steps:
    every = math.gcd(every, s)
  c = config_lib.training_defaults()
  c.name = f"zoo_{source['name']}"
  c.seed = 0
  c.model.name = source["model"]
  c.model.input_size = int(source["input_size"])
  c.model.in_channels = int(source["in_channels"])
  c.data.train = dict(source["train"])
  c.data.test = dict(source["test"])
  c.data.data_dir = data_dir
  c.data.max_eval_train = 1000
  c.optim.lr = float(source["lr"])
  c.batch_size = int(source["batch_size"])
  c.num_steps = steps[-1]
  c.log_every = math.gcd(every, 50)
  c.checkpoint_every = every
  c.keep_period = every        # every length asked for stays
  c.eval_every = steps[-1]
  return c


def pretrain_zoo(config: ml_collections.ConfigDict, workdir: str,
                 log: Callable[[str], None] = print) -> list[ZooEntry]:
  """Pretrains what the zoo lacks (resuming) and returns its candidates."""
  zoo = []
  for source in config.sources:
    source = dict(source)
    folder = os.path.join(workdir, "pretrain", source["name"])
    cfg = pretrain_config(source, config.data_dir)
    if not results_lib.finished_with(folder, results_lib.to_jsonable(cfg)):
      log(f"pretraining {source['name']} ({source['model']}, {cfg.num_steps} steps) "
          f"into {folder}")
      t0 = time.perf_counter()
      train_lib.train(cfg, folder)
      log(f"  done in {time.perf_counter() - t0:.0f} s")
    for step in sorted(int(s) for s in source["checkpoints"]):
      zoo.append(ZooEntry(f"{source['name']}/{source['model']}@{step}", f"{folder}@{step}",
                          source["domain"], source["model"], step))
  for name in config.imagenet:
    short = name.split(":", 1)[-1]
    zoo.append(ZooEntry(f"imagenet/{short}", name, "imagenet", short, None))
  labels = [e.label for e in zoo]
  if len(set(labels)) != len(labels):
    raise config_lib.ConfigError(f"config.sources: candidate names repeat: {labels}.")
  return zoo


def source_accuracies(config: ml_collections.ConfigDict, zoo: Sequence[ZooEntry],
                      workdir: str) -> dict[str, float | None]:
  """Each pretrained-here candidate's accuracy on its source's test split (its own head):
  the fixed "source accuracy" ranking. One file per candidate under source_accuracy/;
  None for imagenet candidates (not measured here)."""
  out: dict[str, float | None] = {e.label: None for e in zoo}
  for source in config.sources:
    source = dict(source)
    test = None
    for entry in zoo:
      if not entry.label.startswith(source["name"] + "/"):
        continue
      path = os.path.join(workdir, "source_accuracy", entry.slug + ".json")
      record = _read(path)
      if record is None:
        if test is None:
          test = data_spec_lib.build(dict(source["test"]), data_dir=config.data_dir or None,
                                     seed=0)
        candidate = cand_lib.load_candidate(entry.source)
        _, probs = cand_lib.features_and_probs(candidate, test)
        record = {"accuracy": float(np.mean(np.argmax(probs, 1) == test.labels)),
                  "test": test.describe()}
        _write(path, record)
      out[entry.label] = record["accuracy"]
  return out


# -------------------------------------------------------------------------- the targets


@dataclasses.dataclass
class Target:
  """A target task: training (scored and fine-tuned on), validation and test images."""

  name: str
  domain: str
  train: Dataset
  val: Dataset
  test: Dataset


def load_target(target: dict[str, Any], data_dir: str, seed: int) -> Target:
  """Builds a target's pool and splits a stratified sample of it (seeded)."""
  spec = dict(target["data"])
  data_spec_lib.validate(spec)
  pool = data_spec_lib.build(spec, data_dir=data_dir or None, seed=seed)
  n_train, n_val, n_test = (int(target[k]) for k in ("num_train", "num_val", "num_test"))
  total = n_train + n_val + n_test
  if total > len(pool):
    raise config_lib.ConfigError(
        f"target {target['name']}: {n_train} + {n_val} + {n_test} images asked for, but "
        f"{pool.describe()} has {len(pool)}; lower num_train / num_val / num_test.")
  pool = transforms.subset_total(pool, total, seed)
  train, rest = transforms.split(pool, n_train, seed)
  val, test = transforms.split(rest, n_val, seed + 1)
  return Target(target["name"], target["domain"], train, val, test)


# -------------------------------------------------------------------- frozen evaluation


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                 val_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 cs: Sequence[float]) -> dict[str, Any]:
  """Logistic regression on standardised frozen features; C chosen on validation."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  mean, std = train_x.mean(0), train_x.std(0) + 1e-8
  norm = lambda x: (x - mean) / std
  best = None
  for c in cs:
    clf = LogisticRegression(C=float(c), max_iter=1000)
    clf.fit(norm(train_x), train_y)
    val = float(np.mean(clf.predict(norm(val_x)) == val_y))
    if best is None or val > best[0]:
      best = (val, float(c), float(np.mean(clf.predict(norm(test_x)) == test_y)))
  return {"val_accuracy": best[0], "C": best[1], "test_accuracy": best[2]}


def frozen_evaluation(candidate: cand_lib.Candidate, target: Target,
                      config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Every score of `config.scores` (with its seconds) and the linear probe's accuracy."""
  t0 = time.perf_counter()
  feats, probs = cand_lib.features_and_probs(candidate, target.train)
  seconds_features = time.perf_counter() - t0
  scores, seconds, errors = {}, {}, {}
  for name in config.scores:
    t = time.perf_counter()
    try:
      if name in cand_lib.NTK_SCORES:
        value = cand_lib.ntk_score(candidate, target.train, name, probs,
                                   layers=config.ntk_layers)
      else:
        value = score_fn(name, feats, target.train.labels, probs)
      value = float(value)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
      value, errors[name] = float("nan"), str(e)
    seconds[name] = time.perf_counter() - t
    scores[name] = value if math.isfinite(value) else None
  val_x, _ = cand_lib.features_and_probs(candidate, target.val)
  test_x, _ = cand_lib.features_and_probs(candidate, target.test)
  probe = linear_probe(feats, target.train.labels, val_x, target.val.labels, test_x,
                       target.test.labels, config.probe_cs)
  graph_params = jax.tree.leaves(functional.split(candidate.model)[1])
  return {"scores": scores, "seconds": seconds, "errors": errors,
          "seconds_features": seconds_features, "probe": probe,
          "feature_dim": int(feats.shape[1]),
          "num_params": int(sum(np.size(p) for p in graph_params))}


# -------------------------------------------------------------------------- fine-tuning


def finetune_config(entry: ZooEntry, lr: float, seed: int, num_steps: int,
                    config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The training config of one fine-tuning run (read by `transjax.weights`/`train`)."""
  ft = config.finetune
  c = config_lib.training_defaults()
  c.name = f"finetune_{entry.slug}"
  c.mode = "finetune"
  c.seed = int(seed)
  c.new_head = True
  if entry.pretrain_steps is None:   # imagenet: a name the weights library resolves
    c.init_from = entry.source
    c.model.name = imagenet_weights.WEIGHTS[entry.model][3]
    c.model.input_size = int(config.image_size)
    c.model.in_channels = 3
  else:
    folder, which = cand_lib.run_checkpoint(entry.source)
    run_model = results_lib.read_json(os.path.join(folder, "config.json"))["model"]
    for key, value in run_model.items():
      c.model[key] = value
    c.init_from = folder
    c.init_which = str(which)
  c.optim.lr = float(lr)
  c.optim.momentum = float(ft.momentum)
  c.optim.weight_decay = float(ft.weight_decay)
  c.batch_size = int(ft.batch_size)
  c.num_steps = int(num_steps)
  return c


def _norm_parts(params: Any, params0: Any) -> dict[str, float]:
  """||W - W0||_F over the whole network, its head and the rest."""
  head = body = 0.0
  for (path, w), (_, w0) in zip(params_lib.named_leaves(params), params_lib.named_leaves(params0)):
    sq = float(jnp.sum(jnp.square(jnp.asarray(w, jnp.float32) - jnp.asarray(w0, jnp.float32))))
    if path == HEAD or path.startswith(HEAD + "/"):
      head += sq
    else:
      body += sq
  return {"total": math.sqrt(head + body), "head": math.sqrt(head), "body": math.sqrt(body)}


_STEPS: dict[Any, tuple[Any, Callable, Callable]] = {}


def _finetune_steps(graphdef: Any, cfg: ml_collections.ConfigDict, params0: Any,
                    state0: Any) -> tuple[optax.GradientTransformation, Callable, Callable]:
  """(optimizer, jitted step, jitted eval step) with the learning rate a value, not a constant.

  `transjax.optim`'s SGD at rate 1, then a scale by the rate held in the optimizer state
  (optax.inject_hyperparams): SGD with momentum and coupled weight decay is linear in the
  rate (the momentum trace does not depend on it), so this is the same update as the
  optimizer at that rate, and one compiled step serves the whole grid (a compile of the
  step is ~5-20 s on 2 busy cores, the fine-tuning itself ~1 s).
  """
  key = (graphdef, int(cfg.num_steps), float(cfg.optim.momentum),
         float(cfg.optim.weight_decay), bool(cfg.optim.nesterov))
  if key not in _STEPS:
    mask, state_mask = trainable_mask(cfg, params0), trainable_mask(cfg, state0)
    unit = ml_collections.ConfigDict(cfg.to_dict())
    unit.optim.lr = 1.0
    tx = optax.chain(make_optimizer(unit, int(cfg.num_steps), mask),
                     optax.inject_hyperparams(optax.scale)(step_size=1.0))
    loss_fn = functional.make_loss_fn(graphdef, frozen_features=False)
    _STEPS[key] = (tx, train_lib.jit_train_step(train_lib.make_train_step(loss_fn, tx,
                                                                          state_mask)),
                   jax.jit(train_lib.make_eval_step(loss_fn)))
  return _STEPS[key]


def finetune(entry: ZooEntry, candidate: cand_lib.Candidate, inputs: dict[str, Dataset],
             lr: float, seed: int, config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Fine-tunes one candidate on one target; its accuracies and measured deviation.

  Args:
    entry: the candidate.
    candidate: it loaded (its input size, channels and normalisation).
    inputs: {"train", "val", "test"}: the target's images at the candidate's input.
    lr: learning rate.
    seed: the head's initialisation and the batch order.
    config: the study config (`finetune` section).

  Returns:
    {"val_accuracy", "test_accuracy", "train_loss", "deviation", "deviation_norm",
    "diverged", "seconds"}.
  """
  t0 = time.perf_counter()
  train_ds = inputs["train"]
  num_steps = int(config.finetune.num_steps)
  cfg = finetune_config(entry, lr, seed, num_steps, config)
  graphdef, params0, state0, _ = weights_lib.initial_weights(cfg, train_ds.num_classes)
  tx, step_fn, eval_step = _finetune_steps(graphdef, cfg, params0, state0)
  opt_state = tx.init(params0)
  opt_state[1].hyperparams["step_size"] = jnp.asarray(lr, jnp.float32)
  ts = {"step": jnp.zeros((), jnp.int32), "params": jax.tree.map(jnp.copy, params0),
        "state": jax.tree.map(jnp.copy, state0), "opt_state": opt_state,
        "nonfinite_step": jnp.full((), -1, jnp.int32)}
  losses = []
  mean, std = candidate.mean, candidate.std
  for _, batch in batching.iterate(train_ds, cfg.batch_size, seed, num_steps=num_steps,
                                   mean=mean, std=std):
    ts, metrics = step_fn(ts, batch)
    losses.append(metrics["loss"])
  evals = {k: train_lib.evaluate(eval_step, ts["params"], ts["state"], inputs[k],
                                 batch_size=min(EVAL_BATCH, len(inputs[k])), mean=mean,
                                 std=std) for k in ("val", "test")}
  dev = deviation_lib.to_floats(deviation_lib.deviation(ts["params"], params0, len(train_ds)))
  tail = np.asarray(jax.device_get(losses[-10:]), np.float64)
  return {"lr": float(lr), "seed": int(seed), "num_steps": num_steps,
          "val_accuracy": 1.0 - evals["val"]["error"],
          "test_accuracy": 1.0 - evals["test"]["error"],
          "train_loss": float(np.mean(tail)), "deviation": dev,
          "deviation_norm": _norm_parts(ts["params"], params0),
          "diverged": int(ts["nonfinite_step"]) >= 0, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------ driver


class Progress:
  """One line per unit of work done, with the elapsed time and an ETA from this process's
  rate (units found done on disk count as done but not into the rate)."""

  def __init__(self, total: int, log: Callable[[str], None]):
    self.total, self.done, self.computed, self.log = total, 0, 0, log
    self.seconds = 0.0
    self.start = time.perf_counter()

  def skip(self):
    self.done += 1

  def did(self, seconds: float, what: str):
    self.done += 1
    self.computed += 1
    self.seconds += seconds
    left = self.total - self.done
    eta = left * self.seconds / self.computed
    self.log(f"[{self.done}/{self.total}] {what} ({seconds:.1f} s) | "
             f"{(time.perf_counter() - self.start) / 60:.1f} min, ETA {eta / 60:.1f} min")


def _read(path: str) -> dict[str, Any] | None:
  return results_lib.read_json(path) if os.path.exists(path) else None


def _write(path: str, data: dict[str, Any]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  results_lib.write_json(path, data)


def _choose_lr(runs: Sequence[dict[str, Any]]) -> float:
  """The rate of the run with the best validation accuracy; ties: the first in the grid."""
  best = max(range(len(runs)), key=lambda i: (runs[i]["val_accuracy"], -i))
  return float(runs[best]["lr"])


@workdir_lock.locked()
def run_study(config: ml_collections.ConfigDict, workdir: str,
              log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs (or resumes) the study into `workdir`; returns the report's JSON (also written).

  Args:
    config: a configs/transferability_study.py preset.
    workdir: folder of every result file, the pretraining runs and the report.
    log: where progress lines go.

  Returns:
    The report (see `evaluate`), with the paths of report.md and the figures.
  """
  check_config(config)
  workdir = results_lib.ensure_workdir(workdir)
  check_same_study(config, workdir)
  zoo = pretrain_zoo(config, workdir, log)
  source_acc = source_accuracies(config, zoo, workdir)
  targets = [load_target(dict(t), config.data_dir, int(config.seed)) for t in config.targets]
  lrs = [float(x) for x in config.finetune.lrs]
  seeds = [int(s) for s in config.finetune.seeds]
  pairs = [(t, e) for t in targets for e in zoo if e.domain != t.domain]
  progress = Progress(len(pairs) * (1 + len(lrs) + len(seeds) - 1), log)
  records: dict[str, dict[str, Any]] = {}
  for target, entry in pairs:
    frozen_path = os.path.join(workdir, "frozen", target.name, entry.slug + ".json")
    ft_dir = os.path.join(workdir, "finetune", target.name, entry.slug)
    cache: dict[str, Any] = {}

    def loaded():
      if "candidate" not in cache:
        candidate = cand_lib.load_candidate(entry.source, image_size=config.image_size)
        size, channels = candidate.input_size, candidate.in_channels
        cache["candidate"] = candidate
        cache["inputs"] = {k: transforms.to_model_input(getattr(target, k), size, size,
                                                        channels)
                           for k in ("train", "val", "test")}
      return cache["candidate"], cache["inputs"]

    frozen = _read(frozen_path)
    if frozen is None:
      t0 = time.perf_counter()
      frozen = frozen_evaluation(loaded()[0], target, config)
      _write(frozen_path, frozen)
      progress.did(time.perf_counter() - t0,
                   f"{target.name} <- {entry.label}: scores + probe "
                   f"(probe {frozen['probe']['test_accuracy']:.3f})")
    else:
      progress.skip()

    def run(lr, seed):
      path = os.path.join(ft_dir, f"lr{lr:g}_seed{seed}.json")
      result = _read(path)
      if result is not None:
        progress.skip()
        return result
      result = finetune(entry, *loaded(), lr, seed, config)
      _write(path, result)
      progress.did(result["seconds"],
                   f"{target.name} <- {entry.label}: fine-tune lr {lr:g} seed {seed}: "
                   f"val {result['val_accuracy']:.3f} test {result['test_accuracy']:.3f}")
      return result

    grid = [run(lr, seeds[0]) for lr in lrs]
    chosen = _choose_lr(grid)
    runs = [grid[lrs.index(chosen)]] + [run(chosen, s) for s in seeds[1:]]
    records.setdefault(target.name, {})[entry.label] = {
        "entry": dataclasses.asdict(entry), "frozen": frozen, "grid": grid,
        "chosen_lr": chosen, "runs": runs, "source_accuracy": source_acc[entry.label]}
  report = evaluate(records, list(config.scores), bootstrap=int(config.bootstrap),
                    seed=int(config.seed))
  report["config"] = results_lib.to_jsonable(config)
  report["zoo"] = [dataclasses.asdict(e) for e in zoo]
  report["targets"] = {t.name: {"domain": t.domain, "train": t.train.describe(),
                                "num_train": len(t.train), "num_val": len(t.val),
                                "num_test": len(t.test)} for t in targets}
  write_report(report, records, workdir)
  return report


# Fields that only change the evaluation of the files, not what a file holds.
EVALUATION_ONLY = ("bootstrap",)
STUDY_CONFIG = "study_config.json"


def check_same_study(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a workdir whose result files were made with another config (they would be
  reused as they are); records the config on the first call."""
  path = os.path.join(workdir, STUDY_CONFIG)
  new = {k: v for k, v in results_lib.to_jsonable(config).items() if k not in EVALUATION_ONLY}
  if not os.path.exists(path):
    results_lib.write_json(path, new)
    return
  old = {k: v for k, v in results_lib.read_json(path).items() if k not in EVALUATION_ONLY}
  diffs = config_lib.config_differences(old, new)
  if diffs:
    raise config_lib.ConfigError(
        f"{workdir} holds a study made with another config ({'; '.join(diffs[:3])}"
        f"{'; ...' if len(diffs) > 3 else ''}): its result files would be reused as they "
        f"are. Use a new --workdir, or the config recorded in {path}.")


def check_config(config: ml_collections.ConfigDict) -> None:
  """One clear error for a config the study cannot run, before any work."""
  known = set(SCORES) | set(cand_lib.NTK_SCORES)
  unknown = [s for s in config.scores if s not in known]
  if unknown:
    raise config_lib.ConfigError(f"config.scores: unknown {unknown}; known: {sorted(known)}.")
  if not config.finetune.lrs or not config.finetune.seeds:
    raise config_lib.ConfigError("config.finetune.lrs and .seeds must not be empty.")
  if not config.targets:
    raise config_lib.ConfigError("config.targets is empty: name at least one target.")
  domains = {dict(s)["domain"] for s in config.sources} | (
      {"imagenet"} if config.imagenet else set())
  for t in config.targets:
    if len(domains - {t["domain"]}) == 0:
      raise config_lib.ConfigError(f"target {t['name']}: every candidate is pretrained on its "
                                   "own domain; add sources from other data.")


# --------------------------------------------------------------------------- evaluation


def _safe(fn, s, a) -> float:
  try:
    return fn(s, a)
  except ValueError:
    return float("nan")


def _per_target(scores: np.ndarray, acc: np.ndarray) -> dict[str, float]:
  """Rank agreement of one score with one accuracy vector (NaN where undefined)."""
  if len(scores) < 2 or not np.all(np.isfinite(scores)):
    return {"weighted_tau": float("nan"), "tau": float("nan"), "regret": float("nan")}
  return {"weighted_tau": _safe(ranking.weighted_kendall_tau, scores, acc),
          "tau": _safe(ranking.kendall_tau, scores, acc),
          "regret": _safe(ranking.top1_regret, scores, acc)}


def _nanmean(values: Sequence[float]) -> float:
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  return float(v.mean()) if len(v) else float("nan")


def evaluate(records: dict[str, dict[str, Any]], score_names: Sequence[str], *,
             bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
  """The study's numbers from its per-(target, candidate) records (see `run_study`)."""
  names = list(score_names) + list(FIXED_CONTROLS)
  per_target: dict[str, Any] = {}
  tables: dict[str, dict[str, np.ndarray]] = {}
  for target, recs in records.items():
    labels = list(recs)
    acc = np.array([[r["test_accuracy"] for r in recs[c]["runs"]] for c in labels])
    probe = np.array([recs[c]["frozen"]["probe"]["test_accuracy"] for c in labels])
    values = {}
    for name in score_names:
      values[name] = np.array([np.nan if recs[c]["frozen"]["scores"].get(name) is None
                               else recs[c]["frozen"]["scores"][name] for c in labels])
    values["num_params"] = np.array([recs[c]["frozen"]["num_params"] for c in labels], float)
    values["source_accuracy"] = np.array(
        [np.nan if recs[c].get("source_accuracy") is None else recs[c]["source_accuracy"]
         for c in labels], float)
    values["pretrain_steps"] = np.array(
        [recs[c]["entry"]["pretrain_steps"] or 1e9 for c in labels], float)
    tables[target] = {"acc": acc, **{f"s:{k}": v for k, v in values.items()}}
    per_target[target] = {
        "candidates": labels,
        "finetune_mean": acc.mean(1).tolist(), "finetune_std": acc.std(1, ddof=0).tolist(),
        "chosen_lr": [recs[c]["chosen_lr"] for c in labels],
        "probe": probe.tolist(),
        "scores": {k: v.tolist() for k, v in values.items()},
        "vs_finetune": {k: _per_target(v, acc.mean(1)) for k, v in values.items()},
        "vs_probe": {k: _per_target(v, probe) for k, v in values.items()},
        "probe_vs_finetune": _per_target(probe, acc.mean(1)),
    }
  rng = np.random.default_rng(seed)
  target_names = list(records)
  summary = {}
  for name in names:
    row = {}
    for truth in ("vs_finetune", "vs_probe"):
      for key in ("weighted_tau", "tau", "regret"):
        row[f"{truth}_{key}"] = _nanmean([per_target[t][truth][name][key]
                                          for t in target_names])
    boot = []
    for _ in range(bootstrap):
      picks = rng.integers(0, len(target_names), len(target_names))
      taus = []
      for i in picks:
        tab = tables[target_names[i]]
        acc = tab["acc"]
        cols = rng.integers(0, acc.shape[1], acc.shape[1])
        s = tab[f"s:{name}"]
        taus.append(_safe(ranking.weighted_kendall_tau, s, acc[:, cols].mean(1))
                    if np.all(np.isfinite(s)) else float("nan"))
      boot.append(_nanmean(taus))
    boot = np.asarray(boot)
    boot = boot[np.isfinite(boot)]
    row["weighted_tau_ci"] = ([float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
                              if len(boot) else [float("nan")] * 2)
    secs = [s for t in target_names for c in records[t]
            for s in [records[t][c]["frozen"]["seconds"].get(name)] if s is not None]
    row["seconds_mean"] = float(np.mean(secs)) if secs else 0.0
    row["seconds_median"] = float(np.median(secs)) if secs else 0.0
    summary[name] = row
  return {"per_target": per_target, "summary": summary,
          "deviation": deviation_check(records), "goal": goal_verdict(summary),
          "bootstrap": {"resamples": bootstrap, "what": "targets resampled with replacement, "
                        "and each candidate's seeds resampled with replacement"}}


def deviation_check(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
  """Theorem 2 on the real network: predicted against measured ||W - W0||, Spearman.

  Predicted: minus the theory deviation scores (they are -sqrt(R^T (H + lam I)^-1 R)).
  Measured: the fine-tuned runs' ||W - W0||_F (whole network, head, the rest): at the
  chosen rate (mean over seeds), and at each rate of the grid (the first seed), since how
  far SGD moves the weights in a fixed number of steps grows with the rate, and the chosen
  rate differs between candidates. Across every (target, candidate) pair, and within
  each target (mean).
  """
  out: dict[str, Any] = {}
  any_rec = next((r for recs in records.values() for r in recs.values()), None)
  grid_lrs = [g["lr"] for g in any_rec["grid"]] if any_rec else []

  def measured(r, part, lr):
    if lr is None:
      return float(np.mean([run["deviation_norm"][part] for run in r["runs"]]))
    return next(g["deviation_norm"][part] for g in r["grid"] if g["lr"] == lr)

  settings = [(part, None) for part in ("total", "head", "body")]
  settings += [(part, lr) for lr in grid_lrs for part in ("total", "head")]
  for pred in ("theory_deviation", "ntk_deviation"):
    for part, lr in settings:
      xs, ys, per = [], [], []
      for recs in records.values():
        tx, ty = [], []
        for r in recs.values():
          v = r["frozen"]["scores"].get(pred)
          if v is None:
            continue
          tx.append(-v)
          ty.append(measured(r, part, lr))
        xs += tx
        ys += ty
        if len(tx) >= 3:
          per.append(float(scipy.stats.spearmanr(tx, ty).statistic))
      if len(xs) < 3:
        continue
      at = "chosen lr" if lr is None else f"lr {lr:g}"
      out[f"{pred}:{part}:{at}"] = {
          "spearman_all": float(scipy.stats.spearmanr(xs, ys).statistic),
          "spearman_within_target_mean": _nanmean(per), "pairs": len(xs),
          "predicted": xs, "measured": ys}
  return out


def goal_verdict(summary: dict[str, dict[str, float]]) -> dict[str, Any]:
  """Issue 27's goal, checked: the best theory score's mean weighted tau >= best baseline's
  + 0.10, above both controls, its interval excluding the baseline's mean, no slower than
  LogME."""
  def best(names):
    have = [n for n in names if n in summary
            and math.isfinite(summary[n]["vs_finetune_weighted_tau"])]
    return max(have, key=lambda n: summary[n]["vs_finetune_weighted_tau"]) if have else None

  theory, base = best(THEORY_SCORES), best(BASELINE_SCORES)
  control = best(("knn",) + FIXED_CONTROLS)
  if theory is None or base is None:
    return {"met": False, "why": "a theory score or a baseline was not computed"}
  t, b = summary[theory], summary[base]
  c = summary[control]["vs_finetune_weighted_tau"] if control else float("-inf")
  checks = {
      "margin_0.10": t["vs_finetune_weighted_tau"] >= b["vs_finetune_weighted_tau"] + 0.10,
      "above_controls": t["vs_finetune_weighted_tau"] > c,
      "interval_excludes_baseline": t["weighted_tau_ci"][0] > b["vs_finetune_weighted_tau"],
      "time_at_most_logme": ("logme" not in summary
                             or t["seconds_median"] <= summary["logme"]["seconds_median"]),
  }
  return {"met": all(checks.values()), "checks": checks, "best_theory": theory,
          "best_baseline": base, "best_control": control}


# ------------------------------------------------------------------------------ report


def _fmt(x: float, digits: int = 3) -> str:
  return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def write_report(report: dict[str, Any], records: dict[str, dict[str, Any]],
                 workdir: str) -> None:
  """report.json, report.md and the figures, into `workdir`."""
  figures = {}
  for target, pt in report["per_target"].items():
    figures[target] = _target_figure(target, pt, os.path.join(workdir, f"fig_{target}.png"))
  figures["deviation"] = _deviation_figure(report["deviation"],
                                           os.path.join(workdir, "fig_deviation.png"))
  report["figures"] = {k: os.path.basename(v) for k, v in figures.items() if v}
  results_lib.write_json(os.path.join(workdir, "report.json"), report)
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write(report_markdown(report))


def _target_figure(target: str, pt: dict[str, Any], path: str) -> str:
  names = [n for n in pt["scores"]]
  cols = 5
  rows = -(-len(names) // cols)
  fig, axes = plotting.subplots(rows, cols, figsize=(3.2 * cols, 2.7 * rows), squeeze=False)
  acc, std = np.asarray(pt["finetune_mean"]), np.asarray(pt["finetune_std"])
  for ax, name in zip(axes.flat, names):
    s = np.asarray(pt["scores"][name], np.float64)
    ok = np.isfinite(s)
    ax.errorbar(s[ok], acc[ok], yerr=std[ok], fmt="o", ms=3, capsize=2)
    tau = pt["vs_finetune"][name]["weighted_tau"]
    ax.set_title(f"{name}\nweighted tau {_fmt(tau, 2)}", fontsize=8)
    ax.tick_params(labelsize=6)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  axes[0, 0].set_ylabel("fine-tuned test accuracy", fontsize=7)
  fig.suptitle(f"target {target}: score (x) against fine-tuned accuracy (y, mean +- std over "
               "seeds)", fontsize=9)
  return plotting.save_figure(fig, path)


def _deviation_figure(dev: dict[str, Any], path: str) -> str | None:
  # At the chosen rate and at the grid's middle rate (the same rate for every candidate).
  rates = sorted({k.split(":")[2] for k in dev} - {"chosen lr"},
                 key=lambda r: float(r.split()[-1]))
  at = ["chosen lr"] + rates[len(rates) // 2:len(rates) // 2 + 1]
  keys = [k for k in (f"{p}:{part}:{r}" for p, part in (("theory_deviation", "total"),
                                                        ("ntk_deviation", "head"))
                      for r in at) if k in dev]
  if not keys:
    return None
  fig, axes = plotting.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
  for ax, key in zip(axes.flat, keys):
    d = dev[key]
    ax.plot(d["predicted"], d["measured"], "o", ms=3)
    pred, part, at = key.split(":")
    ax.set_xlabel(f"predicted: -{pred}", fontsize=8)
    ax.set_ylabel(f"measured ||W - W0|| ({part}, {at})", fontsize=8)
    ax.set_title(f"Spearman {_fmt(d['spearman_all'], 2)} over {d['pairs']} pairs", fontsize=9)
  return plotting.save_figure(fig, path)


def report_markdown(report: dict[str, Any]) -> str:
  """The study as markdown: zoo, ground truth, scores, Theorem 2, the goal."""
  summary, per_target = report["summary"], report["per_target"]
  lines = ["# Transferability study", ""]
  cfg = report.get("config", {})
  ft = cfg.get("finetune", {})
  lines += [f"Zoo: {len(report.get('zoo', []))} candidates; targets: "
            f"{', '.join(per_target)}. Fine-tuning: {ft.get('num_steps')} SGD steps, "
            f"learning rate from {list(ft.get('lrs', []))} on validation, seeds "
            f"{list(ft.get('seeds', []))}. Scores on each target's training images "
            "(the images fine-tuning sees). Higher score = predicted better transfer.", ""]
  if not cfg.get("imagenet"):
    lines += ["ImageNet EfficientNet-Lite candidates are not in this run (`imagenet` is "
              "empty): at the 64 px they need, a Lite network takes about a second a "
              "training step on 2 CPU cores, so fine-tuning one on every target with the "
              "learning-rate grid and seeds would take hours; `experiments.rank_models` "
              "scores them.", ""]
  lines += ["## Scores against fine-tuned accuracy (mean over targets)", "",
            "| score | weighted tau | 95% interval | tau | top-1 regret | weighted tau vs "
            "probe | seconds (median) |", "|---|---|---|---|---|---|---|"]
  order = sorted(summary, key=lambda n: -np.nan_to_num(summary[n]["vs_finetune_weighted_tau"],
                                                        nan=-9))
  for name in order:
    r = summary[name]
    lo, hi = r["weighted_tau_ci"]
    lines.append(f"| {name} | {_fmt(r['vs_finetune_weighted_tau'])} | [{_fmt(lo)}, {_fmt(hi)}]"
                 f" | {_fmt(r['vs_finetune_tau'])} | {_fmt(r['vs_finetune_regret'])} | "
                 f"{_fmt(r['vs_probe_weighted_tau'])} | {_fmt(r['seconds_median'], 2)} |")
  lines += ["", f"Interval: percentile bootstrap of the mean weighted tau, "
            f"{report['bootstrap']['resamples']} resamples ({report['bootstrap']['what']}). "
            "`num_params`, `pretrain_steps` and `source_accuracy` (each candidate's "
            "accuracy on its source's test split, with its own head) are fixed rankings "
            "(no target data); `knn` is the 1-NN control.", ""]
  lines += ["## Weighted tau per target", "",
            "| score | " + " | ".join(per_target) + " |",
            "|---|" + "---|" * len(per_target)]
  for name in order:
    lines.append(f"| {name} | " + " | ".join(
        _fmt(per_target[t]["vs_finetune"][name]["weighted_tau"]) for t in per_target) + " |")
  lines += [""]
  for target, pt in per_target.items():
    lines += [f"## Target {target}", "",
              f"![{target}](fig_{target}.png)", "",
              "| candidate | fine-tuned test accuracy | chosen lr | linear probe | "
              "source accuracy |", "|---|---|---|---|---|"]
    order_c = np.argsort(-np.asarray(pt["finetune_mean"]))
    for i in order_c:
      lines.append(f"| {pt['candidates'][i]} | {pt['finetune_mean'][i]:.3f} +- "
                   f"{pt['finetune_std'][i]:.3f} | {pt['chosen_lr'][i]:g} | "
                   f"{pt['probe'][i]:.3f} | "
                   f"{_fmt(pt['scores']['source_accuracy'][i])} |")
    lines += ["", f"Probe against fine-tuning: weighted tau "
              f"{_fmt(pt['probe_vs_finetune']['weighted_tau'])}.", ""]
  lines += ["## Theorem 2 on the real network", "",
            "Predicted deviation (minus the theory deviation scores) against the measured "
            "||W - W0||_F of the fine-tuned runs (whole network, head, the rest): at the "
            "chosen rate (mean over seeds), and at each rate of the grid (first seed; the "
            "distance moved in a fixed number of steps grows with the rate, and the chosen "
            "rate differs between candidates). Spearman rank correlation.", "",
            "| predicted : measured part : rate | over all pairs | within target (mean) | "
            "pairs |",
            "|---|---|---|---|"]
  for key, d in report["deviation"].items():
    lines.append(f"| {key} | {_fmt(d['spearman_all'])} | "
                 f"{_fmt(d['spearman_within_target_mean'])} | {d['pairs']} |")
  lines += ["", "![deviation](fig_deviation.png)", ""]
  goal = report["goal"]
  lines += ["## Issue 27's goal", ""]
  if "checks" in goal:
    t, b = summary[goal["best_theory"]], summary[goal["best_baseline"]]
    lines += [f"Best theory score {goal['best_theory']}: mean weighted tau "
              f"{_fmt(t['vs_finetune_weighted_tau'])} (interval "
              f"[{_fmt(t['weighted_tau_ci'][0])}, {_fmt(t['weighted_tau_ci'][1])}]); best "
              f"baseline {goal['best_baseline']}: {_fmt(b['vs_finetune_weighted_tau'])}; best "
              f"control {goal['best_control']}. Checks: "
              + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in goal["checks"].items())
              + f". Goal {'met' if goal['met'] else 'not met'}.", ""]
  else:
    lines += [f"Not evaluated: {goal['why']}.", ""]
  return "\n".join(lines)

