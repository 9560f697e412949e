"""Issue 12: one writer per workdir, one-line user errors (exit 2), notices, cost estimates.

Every case runs the real binary in a subprocess and checks the message, the exit status
and that the folder it was pointed at is unchanged. Independent commands of one test run
concurrently to keep the file short on 2 cores.
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT
from transjax import cli, config as config_lib, progress, workdir_lock
from transjax import results as results_lib

SMOKE = "--config=configs/lenet_mnist.py:smoke"


def _env(extra_path: str | None = None) -> dict[str, str]:
  path = os.pathsep.join(p for p in (extra_path, str(ROOT)) if p)
  env = dict(os.environ, PYTHONPATH=path, JAX_PLATFORMS="cpu")
  env.pop("TRANSJAX_DEBUG", None)
  return env


def _start(args, extra_path: str | None = None) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=_env(extra_path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_all(commands: dict[str, list[str]], extra_path: str | None = None,
             timeout: float = 300) -> dict[str, subprocess.CompletedProcess]:
  """Runs the commands concurrently; returns name -> CompletedProcess."""
  procs = {name: _start(args, extra_path) for name, args in commands.items()}
  out = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=timeout)
    out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
  return out


def _snapshot(path: pathlib.Path) -> dict[str, tuple[int, int]] | None:
  """{relative path: (size, mtime_ns)} of everything under `path`; None if it is absent."""
  if not path.exists():
    return None
  out = {}
  for p in sorted(path.rglob("*")):
    st = p.stat()
    out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns)
  return out


def _assert_one_line_user_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
  """Exit status 2, no traceback, exactly one `error:` line holding every needle."""
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, proc.stderr[-3000:]
  for needle in needles:
    assert needle in errors[0], errors[0]
  return errors[0]


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def _lock_file(workdir: pathlib.Path) -> pathlib.Path:
  return workdir / workdir_lock.LOCK_NAME


# ------------------------------------------------------------------------------ the lock


def test_a_second_training_run_is_refused_and_the_first_ends_clean(tmp_path):
  """Two real processes on one workdir; the first also takes over a stale lock."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  dead = _dead_pid()
  _lock_file(workdir).write_text(json.dumps(
      {"pid": dead, "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}))
  args = ["experiments.pretrain", SMOKE, f"--workdir={workdir}"]
  first = _start(args)
  try:
    deadline = time.time() + 240
    while True:  # until the first holds the lock (its pid is in the lock file)
      assert first.poll() is None, first.communicate()[1][-3000:]
      try:
        if json.loads(_lock_file(workdir).read_text()).get("pid") == first.pid:
          break
      except (OSError, ValueError):
        pass
      assert time.time() < deadline, "the first run never took the lock"
      time.sleep(0.05)
    os.kill(first.pid, signal.SIGSTOP)  # it stays inside the workdir while the second tries
    try:
      before = _snapshot(workdir)
      second = _run_all({"second": args})["second"]
      after = _snapshot(workdir)
    finally:
      os.kill(first.pid, signal.SIGCONT)
    _assert_one_line_user_error(second, "WorkdirLockedError", str(workdir), "in use by another run",
                                f"pid {first.pid}", f"host {socket.gethostname()}", "started")
    assert before == after
    _, stderr = first.communicate(timeout=300)
  finally:
    if first.poll() is None:
      first.kill()
  assert first.returncode == 0, stderr[-3000:]
  assert f"taking over the stale lock of pid {dead}" in stderr
  assert not _lock_file(workdir).exists()  # released on exit
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == len(set(lines))  # nothing written twice
  records = [json.loads(line) for line in lines]
  steps = [r["step"] for r in records]
  assert steps == sorted(steps)
  assert [r["step"] for r in records if "train_loss" in r] == [20, 40, 60]
  assert [r["step"] for r in records if "test_error" in r] == [0, 20, 40, 60]


def test_every_kind_of_writer_refuses_a_held_workdir(tmp_path):
  """Paper experiments, reproduce, analysis and theory binaries all check the lock first."""
  commands = {
      "reproduce": ["experiments.reproduce", "--config=configs/reproduce.py:smoke"],
      "paper_minima": ["experiments.paper_minima", "--config=configs/paper_minima.py:smoke"],
      "hessian": ["experiments.hessian", "--config=configs/hessian.py:smoke",
                  f"--config.checkpoints={tmp_path / 'no_run'}"],
      "verify_theory": ["experiments.verify_theory", "--config=configs/theory.py:smoke"],
  }
  dirs = {name: tmp_path / name for name in commands}
  for d in dirs.values():
    d.mkdir()
    (d / "results.json").write_text("{}")
  with workdir_lock.hold(str(dirs["reproduce"])), workdir_lock.hold(str(dirs["paper_minima"])), \
       workdir_lock.hold(str(dirs["hessian"])), workdir_lock.hold(str(dirs["verify_theory"])):
    before = {name: _snapshot(d) for name, d in dirs.items()}
    procs = _run_all({name: args + [f"--workdir={dirs[name]}"]
                      for name, args in commands.items()})
    after = {name: _snapshot(d) for name, d in dirs.items()}
  for name, proc in procs.items():
    _assert_one_line_user_error(proc, "in use by another run", f"pid {os.getpid()}")
    assert before[name] == after[name], name
    assert not _lock_file(dirs[name]).exists()


def test_a_stale_lock_is_taken_over_and_the_lock_is_reentrant(tmp_path):
  workdir = tmp_path / "w"
  workdir.mkdir()
  dead = _dead_pid()
  _lock_file(workdir).write_text(json.dumps({"pid": dead, "host": socket.gethostname(),
                                             "started": "2026-01-01T00:00:00+00:00"}))
  with workdir_lock.hold(str(workdir)):
    holder = json.loads(_lock_file(workdir).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with workdir_lock.hold(str(workdir)):  # the same process re-enters at once
      with workdir_lock.hold(str(workdir / "inner")):  # nested folders lock separately
        assert _lock_file(workdir / "inner").exists()
      assert not (workdir / "inner").exists()  # it created the folder and left it empty
    assert workdir_lock.holds(str(workdir))
  assert not workdir_lock.holds(str(workdir)) and not _lock_file(workdir).exists()
  assert workdir.is_dir()  # a folder it did not create stays


# ---------------------------------------------------------------------- one-line errors


def test_config_file_and_preset_errors_are_one_line_unless_debug(tmp_path):
  procs = _run_all({
      "missing": ["experiments.pretrain", "--config=configs/nonexistent.py",
                  f"--workdir={tmp_path / 'a'}"],
      "preset": ["experiments.pretrain", "--config=configs/lenet_mnist.py:bogus",
                 f"--workdir={tmp_path / 'b'}"],
      "theory_preset": ["experiments.verify_theory", "--config=configs/theory.py:bogus",
                        f"--workdir={tmp_path / 'c'}"],
      "no_workdir": ["experiments.pretrain", SMOKE],
      "debug": ["experiments.pretrain", "--config=configs/lenet_mnist.py:bogus",
                f"--workdir={tmp_path / 'd'}", "--debug"],
      "help": ["experiments.pretrain", "--help"],
  })
  _assert_one_line_user_error(procs["missing"], "--config=configs/nonexistent.py",
                              "no config file configs/nonexistent.py")
  _assert_one_line_user_error(procs["preset"], "unknown preset 'bogus'",
                              "['full', 'quick', 'smoke']")
  _assert_one_line_user_error(procs["theory_preset"], "unknown theory preset 'bogus'")
  _assert_one_line_user_error(procs["no_workdir"], "--workdir")
  assert "FATAL" not in procs["preset"].stderr
  assert not any((tmp_path / d).exists() for d in "abcd")
  # --debug shows the traceback; --help documents it.
  assert procs["debug"].returncode != 0 and "Traceback" in procs["debug"].stderr
  assert "--[no]debug" in procs["help"].stdout and "TRANSJAX_DEBUG" in procs["help"].stdout


def test_theory_input_errors_are_one_line(tmp_path):
  procs = _run_all({
      "diverges": ["experiments.verify_theory", "--config=configs/theory.py:smoke",
                   "--config.eta=1000", f"--workdir={tmp_path / 'a'}"],
      "singular": ["experiments.verify_theory", "--config=configs/theory.py:smoke",
                   "--config.synthetic.spread=1e-12", f"--workdir={tmp_path / 'b'}"],
  })
  _assert_one_line_user_error(procs["diverges"], "DivergenceError", "eta=1000",
                              "Use a smaller step")
  _assert_one_line_user_error(procs["singular"], "SingularGramError", "is singular")
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_pth_without_pytorch_is_one_line(tmp_path):
  hide = tmp_path / "no_torch" / "torch"
  hide.mkdir(parents=True)
  (hide / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
  weights = tmp_path / "resnet50.pth"
  weights.write_bytes(b"not really")
  workdir = tmp_path / "ft"
  proc = _run_all({"ft": ["experiments.finetune", "--config=configs/lenet_mnist_to_usps.py:smoke",
                          f"--config.init_from={weights}", f"--workdir={workdir}"]},
                  extra_path=str(tmp_path / "no_torch"))["ft"]
  _assert_one_line_user_error(proc, "ImportError", str(weights), "needs PyTorch",
                              "pip install torch")
  assert not workdir.exists()  # a failed start leaves nothing behind


# ------------------------------------------------------------------- notices and costs


def test_silent_conversions_are_announced_and_an_unfinished_folder_is_reused(
    real_data_dir, tmp_path):
  workdir = tmp_path / "cifar_lenet"
  workdir.mkdir()
  old = config_lib.training_defaults()
  old.name = "a start that failed"
  results_lib.write_json(str(workdir / "config.json"), results_lib.to_jsonable(old))
  proc = _run_all({"x": [
      "experiments.pretrain", SMOKE, f"--workdir={workdir}",
      "--config.data.train.name=cifar10", "--config.data.train.split=test",
      "--config.data.train.transforms=('total:200',)", f"--config.data.data_dir={real_data_dir}",
      "--config.num_steps=4", "--config.log_every=2", "--config.eval_every=4",
      "--config.checkpoint_every=4"]})["x"]
  assert proc.returncode == 0, proc.stderr[-3000:]
  notices = [line.split("notice: ", 1)[1] for line in proc.stderr.splitlines()
             if "notice: " in line]
  assert any("data.train cifar10" in n and "32x32 RGB" in n and "28x28 grey" in n
             and "resized" in n and "RGB -> grey" in n for n in notices), notices
  assert any("data.train is cifar10" in n and "data.test is synthetic" in n for n in notices)
  assert any("32x32 RGB but data.test images are 28x28 grey" in n for n in notices)
  assert "never reached a checkpoint" in proc.stderr
  assert json.loads((workdir / "config.json").read_text())["name"] == "lenet_synthetic_smoke"


def test_estimate_is_logged_after_warm_up_and_progress_shows_time_left(caplog):
  now = [0.0]
  eta = progress.Estimate(100_000, "landscape", unit="points", clock=lambda: now[0])
  with caplog.at_level("INFO"):
    now[0] = 10.0
    eta.update(10)             # the first chunk (compilation): the rate starts after it
    assert eta.text() == "ETA unknown"
    now[0] = 11.0
    eta.update(110)            # 100 points in 1 s
  assert "100000 points in all; about 17 min more at the measured 100 points/s" in caplog.text
  assert eta.text() == "ETA 17 min"
  assert progress.format_seconds(6 * 3600) == "6.0 h"


# ---------------------------------------------------------------------- smaller holes


def _idx_gz(path: pathlib.Path, array: np.ndarray, truncate: bool = False) -> None:
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
      int(n).to_bytes(4, "big") for n in array.shape)
  data = gzip.compress(header + array.astype(np.uint8).tobytes())
  path.write_bytes(data[:len(data) // 2] if truncate else data)


def test_smaller_holes_each_end_in_one_line(tmp_path):
  # A folder left by a failed start: config.json but no run.json.
  half = tmp_path / "half_run"
  half.mkdir()
  from configs import lenet_mnist  # pylint: disable=import-outside-toplevel
  results_lib.write_json(str(half / "config.json"),
                         results_lib.to_jsonable(lenet_mnist.get_config("smoke")))
  # A truncated MNIST file (loaded with checksums off) and a CIFAR .npz of pickled objects.
  data = tmp_path / "data"
  (data / "mnist").mkdir(parents=True)
  rng = np.random.default_rng(0)
  _idx_gz(data / "mnist" / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (64, 28, 28)),
          truncate=True)
  _idx_gz(data / "mnist" / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, (64,)))
  (data / "cifar10").mkdir()
  pickled = data / "cifar10" / "cifar10_train.npz"
  np.savez(pickled, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
  out = {name: tmp_path / name for name in ("layers", "half", "trunc", "sha", "npz")}
  mnist = ["--config.data.train.name=mnist", f"--config.data.data_dir={data}"]
  commands = {
      "layers": ["experiments.hessian", "--config=configs/hessian.py:smoke",
                 f"--config.checkpoints={half}", "--config.layers=,"],
      "half": ["experiments.landscape", "--config=configs/landscape.py:smoke",
               f"--config.checkpoints={half}"],
      "trunc": ["experiments.pretrain", SMOKE, *mnist, "--config.data.verify_checksums=False"],
      "sha": ["experiments.pretrain", SMOKE, *mnist],
      "npz": ["experiments.pretrain", SMOKE, "--config.data.train.name=cifar10",
              f"--config.data.data_dir={data}"],
  }
  procs = _run_all({name: args + [f"--workdir={out[name]}"] for name, args in commands.items()})
  _assert_one_line_user_error(procs["layers"], "config.layers = ','", "names no layer")
  _assert_one_line_user_error(procs["half"], str(half), "no run.json")
  _assert_one_line_user_error(procs["trunc"], "train-images-idx3-ubyte.gz",
                              "truncated or corrupt")
  _assert_one_line_user_error(procs["sha"], "Checksum mismatch", "train-images-idx3-ubyte.gz",
                              "--config.data.verify_checksums=False")
  _assert_one_line_user_error(procs["npz"], str(pickled), "cannot be read safely")
  for name, d in out.items():
    assert not d.exists(), f"{name} left {sorted(os.listdir(d))}"
  assert sorted(os.listdir(half)) == ["config.json"]


def test_paper_experiment_values_are_refused_before_any_training(tmp_path):
  """A paper binary and the reproduce job check every experiment's values (the
  experiment's `validate`) before a source or pair is trained."""
  out = {name: tmp_path / name for name in ("minima", "reproduce")}
  commands = {
      "minima": ["experiments.paper_minima", "--config=configs/paper_minima.py:smoke",
                 "--config.top_k=0"],
      "reproduce": ["experiments.reproduce", "--config=configs/reproduce.py:smoke",
                    "--config.experiment_overrides=minima.resolution=2,minma.top_k=3"],
  }
  procs = _run_all({name: args + [f"--workdir={out[name]}"] for name, args in commands.items()})
  _assert_one_line_user_error(procs["minima"], "paper_minima: top_k >= 1")
  _assert_one_line_user_error(procs["reproduce"], "2 experiment config(s) refused",
                              "['minma']", "minima (smoke preset): paper_minima:",
                              "--config.experiment_overrides=<experiment>.<field>=<value>")
  for name, d in out.items():
    assert not d.exists(), f"{name} left {sorted(os.listdir(d))}"


def test_layer_selection_and_config_differences():
  assert cli.layer_selection("") is None
  assert cli.layer_selection("conv1, fc") == ["conv1", "fc"]
  with pytest.raises(ValueError, match="names no layer"):
    cli.layer_selection(" , ")
  old = results_lib.to_jsonable(config_lib.training_defaults())
  del old["data"]["verify_checksums"]  # a folder from before the keys existed still resumes
  del old["model"]["bn_momentum"]
  assert config_lib.config_differences(old, results_lib.to_jsonable(
      config_lib.training_defaults())) == []
  new = config_lib.training_defaults()
  new.optim.lr = 0.5
  assert config_lib.config_differences(old, results_lib.to_jsonable(new)) == [
      "optim.lr: 0.01 -> 0.5"]


def test_commit_is_read_once_per_process(monkeypatch):
  """A commit made while a long run goes on does not relabel the run's results."""
  first = results_lib.git_commit()

  def no_git(*args, **kwargs):
    raise AssertionError("git was asked again")

  monkeypatch.setattr(results_lib.subprocess, "run", no_git)
  assert results_lib.git_commit() == first
  assert results_lib.run_metadata()["git_commit"] == first
