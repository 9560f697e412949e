"""Training: modes, resume, NaN stop, bad input; sharding in test_sharding.py."""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest

from tests.train_helpers import tiny_config
from transjax import checkpoint as ckpt
from transjax import config as config_lib
from transjax import params as params_lib
from transjax import runs
from transjax import train
from transjax import train_callbacks
from transjax.data import DatasetNotFoundError
from transjax.weights import state_dict as pretrained_lib


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  for r in records:
    r.pop("steps_per_sec", None)
  return records


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("pre"))
  train.train(tiny_config(), workdir, train_callbacks.standard())
  return workdir


def test_scratch_run_writes_its_files_and_learns(pretrained):
  for name in ("config.json", "metrics.jsonl", "results.json", "run.json", "training_curves.png"):
    assert os.path.exists(os.path.join(pretrained, name)), name
  records = _metrics(pretrained)
  evals = [r for r in records if "test_error" in r]
  assert evals[0]["step"] == 0 and evals[-1]["step"] == 24
  assert evals[-1]["train_eval_loss"] < evals[0]["train_eval_loss"]
  assert evals[0]["deviation_sum"] == 0.0 and evals[-1]["deviation_sum"] > 0.0


def test_training_stops_at_the_convergence_criterion(pretrained, tmp_path, monkeypatch):
  """stop_at_train_error: the run ends at the first evaluation where the criterion holds
  (here: from step 16 on; the criterion itself is tested in test_paper_protocol), with a
  checkpoint there and the numbers of the full run up to that step."""
  seen = []

  def criterion(max_error, error, curve):
    seen.append((max_error, curve[-1][0]))
    return max_error > 0 and curve[-1][0] >= 16

  monkeypatch.setattr(train.convergence, "should_stop", criterion)
  workdir = str(tmp_path / "stopped")
  out = train.train(tiny_config(stop_at_train_error=0.5), workdir, train_callbacks.standard())
  assert out["steps"] == 16 and seen == [(0.5, 8), (0.5, 16)]
  assert ckpt.checkpoint_steps(workdir)[-1] == 16
  evals = [r for r in _metrics(pretrained) if "test_error" in r]
  stopped = [r for r in _metrics(workdir) if "test_error" in r]
  assert [r["test_error"] for r in stopped] == [r["test_error"] for r in evals
                                                if r["step"] <= 16]


def test_resume_after_a_kill_equals_uninterrupted(pretrained, tmp_path):
  class Kill:
    def should_run(self, step):
      return step == 19

    def __call__(self, step, params, state):
      raise KeyboardInterrupt("killed")

  workdir = str(tmp_path / "killed")
  with pytest.raises(KeyboardInterrupt):
    train.train(tiny_config(), workdir, callbacks=[*train_callbacks.standard(), Kill()])
  resumed = train.train(tiny_config(), workdir, train_callbacks.standard())
  assert resumed["resumed_from_step"] == 16
  with open(os.path.join(pretrained, "results.json")) as f:
    straight = json.load(f)
  assert resumed["final"] == straight["final"]
  assert resumed["deviation"] == straight["deviation"]
  assert _metrics(workdir) == _metrics(pretrained)
  a, b = runs.load_run(workdir), runs.load_run(pretrained)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_fixed_mode_leaves_the_backbone_bit_identical(pretrained, tmp_path):
  config = tiny_config(mode="fixed", init_from=pretrained, num_steps=8)
  train.train(config, str(tmp_path / "fixed"))
  before = runs.load_run(pretrained).params
  after = runs.load_run(str(tmp_path / "fixed")).params
  changed = []
  for (path, x), (_, y) in zip(params_lib.named_leaves(before), params_lib.named_leaves(after)):
    if not np.array_equal(np.asarray(x), np.asarray(y)):
      changed.append(path)
  assert changed and all(p.startswith("fc/") for p in changed), changed


def test_finetune_starts_from_the_pretrained_backbone(pretrained, tmp_path):
  config = tiny_config(mode="finetune", init_from=pretrained, num_steps=4)
  train.train(config, str(tmp_path / "ft"))
  init = runs.load_run(str(tmp_path / "ft"), "init").params
  source = runs.load_run(pretrained).params
  np.testing.assert_array_equal(np.asarray(init["conv1"]["kernel"][...]),
                                np.asarray(source["conv1"]["kernel"][...]))


def test_nan_stops_with_step_and_checkpoint(tmp_path):
  config = tiny_config(**{"optim.lr": 1e12, "optim.momentum": 0.0})
  with pytest.raises(train.NonFiniteError, match=r"at step \d+.*checkpointed in .*checkpoints/\d+"):
    train.train(config, str(tmp_path / "nan"))
  steps = os.listdir(tmp_path / "nan" / "checkpoints")
  assert steps


@pytest.mark.parametrize("overrides, error, message", [
    ({"mode": "bogus"}, config_lib.ConfigError, "config.mode"),
    ({"optim.lr": -1.0}, config_lib.ConfigError, "optim.lr"),
    ({"model.name": "vgg"}, config_lib.ConfigError, "lenet"),
    ({"mode": "finetune"}, config_lib.ConfigError, "init_from"),
    ({"checkpoint_every": 6}, config_lib.ConfigError, "multiple of"),
    ({"stop_at_train_error": 1.5}, config_lib.ConfigError, "stop_at_train_error"),
    ({"data.train": {"name": "imagenette", "split": "train", "transforms": ()}},
     config_lib.ConfigError, "mnist"),
    ({"data.train": {"name": "mnist", "split": "train", "transforms": ("per_klass:3",)}},
     config_lib.ConfigError, "per_class"),
])
def test_bad_config_values_are_named(tmp_path, overrides, error, message):
  with pytest.raises(error, match=message):
    train.train(tiny_config(**overrides), str(tmp_path / "w"))


def test_unknown_config_key_is_named(tmp_path):
  config = tiny_config()
  config.unlock()
  config.optim.learning_rate = 0.1
  with pytest.raises(config_lib.ConfigError, match="optim.learning_rate"):
    train.train(config, str(tmp_path / "w"))


def test_data_dir_without_the_files(tmp_path):
  config = tiny_config(**{"data.train": {"name": "mnist", "split": "train", "transforms": ()},
                          "data.data_dir": str(tmp_path)})
  with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.gz"):
    train.train(config, str(tmp_path / "w"))


def test_subset_larger_than_the_data(tmp_path):
  spec = {"name": "synthetic(num_train=256,num_test=64,seed=3)", "split": "train",
          "transforms": ("total:5000",)}
  with pytest.raises(ValueError, match="5000"):
    train.train(tiny_config(**{"data.train": spec}), str(tmp_path / "w"))


def test_batch_larger_than_the_data(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="larger than the training set"):
    train.train(tiny_config(batch_size=512), str(tmp_path / "w"))


def test_checkpoint_shapes_that_do_not_fit_are_named(pretrained, tmp_path):
  config = tiny_config(mode="finetune", init_from=pretrained, **{"model.input_size": 36})
  with pytest.raises(pretrained_lib.WeightMismatchError, match=r"fc1/kernel: loaded shape \(400, 120\) but the model has \(576, 120\)"):
    train.train(config, str(tmp_path / "w"))


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(PermissionError, match="Cannot write to workdir"):
    train.train(tiny_config(), str(blocker / "sub"))


def test_a_workdir_with_another_config_is_refused(pretrained):
  with pytest.raises(config_lib.ConfigError, match="different config"):
    train.train(tiny_config(num_steps=30), pretrained)


def test_loss_decreases_on_real_mnist(real_data_dir, tmp_path):
  from transjax.config import data_spec
  config = tiny_config(**{"data.train": data_spec("mnist", "train", ("per_class:50",)),
                          "data.test": data_spec("mnist", "test", ("total:200",)),
                          "data.data_dir": real_data_dir, "num_steps": 40})
  result = train.train(config, str(tmp_path / "mnist"))
  records = [r for r in _metrics(str(tmp_path / "mnist")) if "test_error" in r]
  assert records[-1]["test_loss"] < records[0]["test_loss"]
  assert result["final"]["test_error"] < 0.5


@pytest.mark.parametrize("normalize,mean,std", [
    ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ("efficientnet", (127 / 255,) * 3, (128 / 255,) * 3),   # (x - 127) / 128 on [0, 255]
    ("none", None, None)])
def test_fixed_input_normalisations(normalize, mean, std):
  from transjax.data.run_data import load_data  # pylint: disable=import-outside-toplevel
  data = load_data(tiny_config(**{"data.normalize": normalize, "model.in_channels": 3}))
  if mean is None:
    assert data.mean is None and data.std is None
  else:
    np.testing.assert_allclose(data.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(data.std, std, rtol=1e-6)


def test_runs_that_agree_on_the_step_share_one_jitted_step(tmp_path):
  """The step depends on the graph, mode, optimiser settings, length and masks only: runs
  differing in seed (or data) reuse its jitted function; any of those differing does not.
  Training with a shared step gives what a fresh one gives (the first run of each key in
  this test traces it afresh)."""
  from transjax import functional, optim, weights  # pylint: disable=import-outside-toplevel

  def steps(config, num_steps=10):
    graphdef, params, state = functional.split(weights.build_from_config(config, 10))
    return train.jitted_steps(graphdef, config, num_steps, optim.trainable_mask(config, params),
                              optim.trainable_mask(config, state))

  base = tiny_config()
  other_seed = tiny_config()
  other_seed.seed = 7
  assert steps(base) is steps(other_seed)
  lr = tiny_config()
  lr.optim.lr = 0.5
  fixed = tiny_config()
  fixed.mode, fixed.init_from = "fixed", "/run"
  mlp = tiny_config()
  mlp.model.head = "mlp"
  shared = steps(base)
  for config, num_steps in ((lr, 10), (fixed, 10), (mlp, 10), (base, 11)):
    assert steps(config, num_steps) is not shared
    assert steps(base) is shared   # still cached (and the most recent again)
  # Two identical runs in one process (the second reuses the step) end identically.
  short = lambda: tiny_config(num_steps=8)
  a, b = (train.train(short(), str(tmp_path / d), train_callbacks.standard()) for d in "ab")
  assert a["final"] == b["final"] and a["deviation"] == b["deviation"]


def test_the_cpu_compiled_step_is_the_same_step():
  """`jit_train_step` (on CPU without YNNPACK) takes the same SGD steps as a plain jit."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from transjax import functional, optim  # pylint: disable=import-outside-toplevel
  from transjax.models import build_model  # pylint: disable=import-outside-toplevel
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  tx = optim.make_optimizer(config_lib.training_defaults(), 100, jax.tree.map(lambda _: True, p))
  fn = train.make_train_step(functional.make_loss_fn(g), tx, jax.tree.map(lambda _: True, s))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(32, 28, 28, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 32), jnp.int32)}

  def three_steps(step):
    ts = {"step": jnp.zeros((), jnp.int32), "params": p, "state": s, "opt_state": tx.init(p),
          "nonfinite_step": jnp.full((), -1, jnp.int32)}
    ts = jax.tree.map(jnp.copy, ts)   # the step donates its state
    losses = []
    for _ in range(3):
      ts, m = step(ts, batch)
      losses.append(float(m["loss"]))
    return losses, ts["params"]

  ours, p_ours = three_steps(train.jit_train_step(fn))
  ref, p_ref = three_steps(jax.jit(fn))
  np.testing.assert_allclose(ours, ref, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_ref)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


class _Recorder(train.RunCallback):
  """A RunCallback that notes every call and adds one key where it may."""

  def __init__(self):
    self.calls = []

  def begin(self, run):
    self.calls.append(("begin", run.start_step, run.num_steps, run.workdir))
    self.params0 = jax.tree.map(np.asarray, run.params0)

  def evaluate(self, step, params, state):
    self.calls.append(("evaluate", step))
    return {"recorded_step": step}

  def results(self, final):
    self.calls.append(("results", final["step"], final["recorded_step"]))
    return {"recorded": final["recorded_step"]}

  def write(self, run, records, results):
    self.calls.append(("write", len(records), results["recorded"]))
    with open(os.path.join(run.workdir, "recorded.txt"), "w") as f:
      f.write("written")


def test_callbacks_are_called_as_their_protocol_says(tmp_path):
  """Without callbacks the trainer logs losses and errors only (no deviation, no figure);
  a RunCallback's hooks run in order, its keys land in the evaluations and results.json,
  and a StepCallback's records in metrics.jsonl."""

  class Every3:
    def should_run(self, step):
      return step % 3 == 0

    def __call__(self, step, params, state):
      return {"every3": step}

  workdir = str(tmp_path / "bare")
  rec = _Recorder()
  out = train.train(tiny_config(num_steps=8, eval_every=4, checkpoint_every=4), workdir,
                    [rec, Every3()])
  assert not os.path.exists(os.path.join(workdir, train_callbacks.TRAINING_CURVES))
  records = _metrics(workdir)
  evals = [r for r in records if "test_error" in r]
  assert [r["step"] for r in evals] == [0, 4, 8]
  assert all("deviation_sum" not in r and r["recorded_step"] == r["step"] for r in evals)
  assert [r["every3"] for r in records if "every3" in r] == [3, 6]
  assert "deviation" not in out and list(out).index("recorded") == list(out).index("final") + 1
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f) == json.loads(json.dumps(out))
  assert rec.calls == [("begin", 0, 8, workdir), ("evaluate", 0), ("evaluate", 4),
                       ("evaluate", 8), ("results", 8, 8), ("write", len(records), 8)]
  assert (tmp_path / "bare" / "recorded.txt").read_text() == "written"
  init = runs.load_run(workdir, "init").params
  for x, y in zip(jax.tree.leaves(init), jax.tree.leaves(rec.params0)):
    np.testing.assert_array_equal(np.asarray(x), y)


def test_a_resumed_run_tells_its_callbacks_the_first_weights(pretrained, tmp_path):
  """`begin` of a run resumed (here at its end) gets the weights of init/, not the
  checkpoint's, and the standard callbacks give the uninterrupted run's results."""

  class Start(train.RunCallback):
    def begin(self, run):
      self.start, self.params0 = run.start_step, jax.tree.map(np.asarray, run.params0)

  workdir = tmp_path / "copy"
  shutil.copytree(pretrained, workdir)
  start = Start()
  out = train.train(tiny_config(), str(workdir), [*train_callbacks.standard(), start])
  assert out["resumed_from_step"] == 24 and start.start == 24
  with open(os.path.join(pretrained, "results.json")) as f:
    straight = json.load(f)
  assert out["final"] == straight["final"] and out["deviation"] == straight["deviation"]
  init = runs.load_run(pretrained, "init").params
  for x, y in zip(jax.tree.leaves(init), jax.tree.leaves(start.params0)):
    np.testing.assert_array_equal(np.asarray(x), y)


def test_bad_callbacks_are_named(tmp_path):
  class Clash(train.RunCallback):
    def evaluate(self, step, params, state):
      return {"test_loss": 0.0}

  with pytest.raises(TypeError, match=r"callbacks\[1\] \(object\) is neither"):
    train.train(tiny_config(), str(tmp_path / "w"), [Clash(), object()])
  assert not (tmp_path / "w").exists()   # refused before the folder is made
  with pytest.raises(ValueError, match=r"Clash.evaluate returned keys the trainer writes: "
                                       r"\['test_loss'\]"):
    train.train(tiny_config(num_steps=4), str(tmp_path / "w"), [Clash()])


def test_the_steps_cache_can_be_inspected_and_cleared():
  from transjax import functional, optim, weights  # pylint: disable=import-outside-toplevel
  config = tiny_config()
  graphdef, params, state = functional.split(weights.build_from_config(config, 10))
  args = (graphdef, config, 10, optim.trainable_mask(config, params),
          optim.trainable_mask(config, state))
  first = train.jitted_steps(*args)
  assert 1 <= len(train.STEPS_CACHE) <= train.STEPS_CACHE_SIZE
  assert train.jitted_steps(*args) is first
  train.STEPS_CACHE.clear()
  assert len(train.STEPS_CACHE) == 0 and not train.STEPS_CACHE.keys()
  assert train.jitted_steps(*args) is not first and len(train.STEPS_CACHE) == 1
