"""Issue 29: damaged run files, full disks, signals, bad config files and instrument inputs.

Every case runs the real binary on the smoke preset and asserts the one-line message, the
exit status, what is left in the run folder and, where a run goes on, that it ends with
the same numbers as an uninterrupted run. One uninterrupted run (trained in this process)
is the reference and the source of every damaged copy; independent commands of a test run
concurrently to keep the file fast on 2 cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.test_reliability import _assert_one_line_user_error, _env, _run_all, _snapshot
from transjax import config as config_lib
from transjax import results as results_lib
from transjax import train, train_callbacks, workdir_lock
from transjax.analysis import validate

SMOKE = "--config=configs/lenet_mnist.py:smoke"
# 300 steps (a few seconds): long enough to be stopped in the middle.
LONG_FIELDS = {"num_steps": 300, "eval_every": 100, "checkpoint_every": 100}
LONG = [SMOKE] + [f"--config.{k}={v}" for k, v in LONG_FIELDS.items()]


def _smoke_config():
  from configs import lenet_mnist  # pylint: disable=import-outside-toplevel
  return lenet_mnist.get_config("smoke")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
  """An uninterrupted smoke run (checkpoints 20, 40, 60), trained in this process."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  train.train(_smoke_config(), str(workdir), train_callbacks.standard())
  return workdir


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory) -> pathlib.Path:
  """The uninterrupted run of `LONG` (what a stopped and resumed one must equal)."""
  workdir = tmp_path_factory.mktemp("long_reference") / "run"
  config = _smoke_config()
  config.update(LONG_FIELDS)
  train.train(config, str(workdir), train_callbacks.standard())
  return workdir


def _records(workdir: pathlib.Path) -> list[dict]:
  """metrics.jsonl without the one field that depends on the clock."""
  return [{k: v for k, v in json.loads(line).items() if k != "steps_per_sec"}
          for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _same_numbers(run: pathlib.Path, reference: pathlib.Path) -> None:
  assert _records(run) == _records(reference)
  ours, theirs = (json.loads((d / "results.json").read_text()) for d in (run, reference))
  assert ours["final"] == theirs["final"] and ours["deviation"] == theirs["deviation"]


def _steps(workdir: pathlib.Path, folder: str = "checkpoints") -> list[str]:
  return sorted(os.listdir(workdir / folder), key=lambda s: (len(s), s))


def _notices(stderr: str) -> list[str]:
  return [line.split("notice: ", 1)[1] for line in stderr.splitlines() if "notice: " in line]


def _no_traceback(proc) -> None:
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


# ------------------------------------------------------------------- damaged run files


def _largest_file(folder: pathlib.Path) -> pathlib.Path:
  return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _damage(reference: pathlib.Path, tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
  """Copies of the reference run, each damaged as a kill or a failing disk leaves one."""
  cases = {name: tmp_path / name for name in
           ("truncated", "empty_step", "torn_line", "none_readable", "bad_middle_line")}
  for d in cases.values():
    shutil.copytree(reference, d)
  # An array file of the last step cut short (a disk that lost the tail of a write).
  victim = _largest_file(cases["truncated"] / "checkpoints" / "60")
  victim.write_bytes(victim.read_bytes()[:10])
  # The last step's folder emptied (a kill while the folder was being filled).
  shutil.rmtree(cases["empty_step"] / "checkpoints" / "60")
  (cases["empty_step"] / "checkpoints" / "60").mkdir()
  # A kill while the last evaluation record was being written: before its checkpoint.
  torn = cases["torn_line"]
  shutil.rmtree(torn / "checkpoints" / "60")
  (torn / "results.json").unlink()
  lines = (torn / "metrics.jsonl").read_text().splitlines(keepends=True)
  (torn / "metrics.jsonl").write_text("".join(lines[:-1]) + lines[-1][:30])
  # Every step unreadable: nothing may be moved (a changed model would look the same).
  for step in ("20", "40", "60"):
    shutil.rmtree(cases["none_readable"] / "checkpoints" / step)
    (cases["none_readable"] / "checkpoints" / step).mkdir()
  # A broken line before the last is damage, not a kill: refused, naming the line.
  middle = cases["bad_middle_line"]
  lines = (middle / "metrics.jsonl").read_text().splitlines(keepends=True)
  lines[2] = lines[2][:20] + "\n"
  (middle / "metrics.jsonl").write_text("".join(lines))
  shutil.rmtree(middle / "checkpoints" / "60")
  return cases


def test_damaged_run_files_are_set_aside_and_the_run_resumes_with_the_same_numbers(
    reference, tmp_path, caplog):
  cases = _damage(reference, tmp_path)
  before = {name: _snapshot(d / "checkpoints") for name, d in cases.items()}
  # The two that must fail run as the real binary (their one line); the three that resume
  # run in this process (their steps are compiled once), their notices read from the log.
  procs = _run_all({name: ["experiments.pretrain", SMOKE, f"--workdir={cases[name]}"]
                    for name in ("none_readable", "bad_middle_line")})
  for name in ("truncated", "empty_step", "torn_line"):
    caplog.clear()
    with caplog.at_level("WARNING"):
      train.train(_smoke_config(), str(cases[name]), train_callbacks.standard())
    notices = _notices(caplog.text)
    _same_numbers(cases[name], reference)
    if name == "torn_line":
      assert any("metrics.jsonl line 7 is incomplete" in n for n in notices), notices
      continue
    notices = [n for n in notices if "checkpoint step 60" in n]
    assert len(notices) == 1 and "moved it to" in notices[0] and \
        "resuming from step 40" in notices[0], caplog.text[-3000:]
    assert _steps(cases[name]) == ["20", "40", "60"]
    assert _steps(cases[name], "damaged_checkpoints") == ["60"]
    if name == "empty_step":
      assert "its folder is empty" in notices[0]

  line = _assert_one_line_user_error(procs["none_readable"], "UnreadableCheckpointError",
                                     "No checkpoint in", "Nothing was moved")
  assert "\\n" not in line and "\\'" not in line
  assert _snapshot(cases["none_readable"] / "checkpoints") == before["none_readable"]
  assert not (cases["none_readable"] / "damaged_checkpoints").exists()
  _assert_one_line_user_error(procs["bad_middle_line"], "metrics.jsonl line 3",
                              "is not a JSON record")
  assert _snapshot(cases["bad_middle_line"] / "checkpoints") == before["bad_middle_line"]
  for d in cases.values():
    assert not (d / workdir_lock.LOCK_NAME).exists()


def test_a_moved_workdir_resumes(tmp_path):
  """Paths inside the held workdir are stored relative, so a copy elsewhere resumes."""
  from configs import lenet_mnist_to_usps  # pylint: disable=import-outside-toplevel
  old, new = tmp_path / "old", tmp_path / "elsewhere" / "new"

  def configs(root):
    ft = lenet_mnist_to_usps.get_config("smoke")
    ft.init_from = str(root / "src")
    return _smoke_config(), ft

  with workdir_lock.hold(str(old)):
    src, ft = configs(old)
    train.train(src, str(old / "src"))
    first = train.train(ft, str(old / "ft"))
  assert json.loads((old / "ft" / "config.json").read_text())["init_from"] == "../src"
  shutil.copytree(old, new)
  shutil.rmtree(old)  # nothing may still point at the old place
  with workdir_lock.hold(str(new)):
    src, ft = configs(new)
    again = train.train(ft, str(new / "ft"))
  assert again["final"] == first["final"] and again["resumed_from_step"] == first["steps"]
  # A "./" path the user typed is relative to the cwd, not the folder: stored absolute.
  stored = results_lib.portable({"data_dir": "./data", "init_from": "imagenet:x"}, str(new))
  assert stored == {"data_dir": os.path.abspath("data"), "init_from": "imagenet:x"}
  assert results_lib.resolved(stored, str(new)) == stored


# --------------------------------------------------------------------------- full disk


def test_a_full_disk_ends_in_one_line_and_a_rerun_resumes(reference, tmp_path):
  """A file-size limit makes every write past it fail as a full disk does (EFBIG instead of
  ENOSPC, through the same TensorStore path); Orbax's thread output stays off the
  terminal."""
  workdir = tmp_path / "run"
  args = [sys.executable, "-m", "experiments.pretrain", SMOKE, f"--workdir={workdir}"]
  # Between the initial weights' largest file and a checkpoint's (with the optimiser's
  # state, twice the size): the first fit, the second does not. (`ulimit -f` counts KiB;
  # forking this multithreaded process to set it directly could deadlock.)
  sizes = [max(p.stat().st_size for p in (reference / d).rglob("*") if p.is_file())
           for d in ("init", "checkpoints/20")]
  limited = ["bash", "-c", f"ulimit -f {sum(sizes) // 2048} && exec \"$@\"", "bash", *args]
  proc = subprocess.run(limited, cwd=ROOT, env=_env(), capture_output=True, text=True,
                        timeout=300)
  if proc.returncode == 0:
    pytest.skip("the checkpoint's files fit under the size limit on this system")
  line = _assert_one_line_user_error(proc, "CheckpointWriteError", "cannot write",
                                     "run the same command again")
  assert "Orbax" not in proc.stderr and len(proc.stderr.splitlines()) < 12, proc.stderr[-3000:]
  assert line.count("error:") == 1
  assert not (workdir / workdir_lock.LOCK_NAME).exists()
  # With room again (in this process: faster).
  train.train(_smoke_config(), str(workdir), train_callbacks.standard())
  _same_numbers(workdir, reference)


# ----------------------------------------------------------------------------- signals


def _start_training(workdir: pathlib.Path) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", "experiments.pretrain", *LONG,
                           f"--workdir={workdir}"], cwd=ROOT, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc: subprocess.Popen, step: int) -> list[str]:
  """Reads the process's stderr until its progress line passes `step`."""
  seen = []
  deadline = time.time() + 240
  while time.time() < deadline:
    line = proc.stderr.readline()
    if not line:
      break
    seen.append(line)
    if f"step {step}/" in line:
      return seen
  raise AssertionError("".join(seen)[-3000:])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_releases_the_lock_and_a_rerun_ends_the_same(
    long_reference, tmp_path, caplog, signum):
  stopped = tmp_path / "stopped"
  proc = _start_training(stopped)
  try:
    _wait_for_step(proc, 120)
    proc.send_signal(signum)
    rest = proc.stderr.read()
    proc.wait(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 128 + signum, rest[-3000:]
  assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest[-3000:]
  lines = [line for line in rest.splitlines() if line.startswith("interrupted:")]
  assert len(lines) == 1 and signal.Signals(signum).name in lines[0], rest[-3000:]
  assert "checkpoint written at step" in lines[0] and "run the same command again" in lines[0]
  step = int(lines[0].split("checkpoint written at step ")[1].split()[0])
  assert str(step) in _steps(stopped)
  assert not (stopped / workdir_lock.LOCK_NAME).exists()
  assert not (stopped / "results.json").exists()
  if signum == signal.SIGINT:
    return  # the same path as SIGTERM from here on; resumed once, below
  config = _smoke_config()
  config.update(LONG_FIELDS)
  with caplog.at_level("INFO"):  # run again (in this process: its steps are compiled)
    train.train(config, str(stopped), train_callbacks.standard())
  assert f"from step {step} of 300" in caplog.text
  _same_numbers(stopped, long_reference)
  # The signal's extra checkpoint goes once the next scheduled one is written.
  assert _steps(stopped) == _steps(long_reference)
  assert not (stopped / "interrupted_interval.json").exists()


def test_a_second_signal_exits_at_once(tmp_path):
  workdir = tmp_path / "run"
  proc = _start_training(workdir)
  try:
    _wait_for_step(proc, 120)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    proc.wait(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode in (128 + signal.SIGTERM, 128 + signal.SIGINT), rest[-3000:]
  assert "Traceback" not in rest, rest[-3000:]
  assert len([line for line in rest.splitlines() if line.startswith("interrupted:")]) == 1


# ----------------------------------------------------------------- config files, inputs


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
  path.write_text(text)
  return path


def test_config_files_that_do_not_load_end_in_one_line_naming_file_and_line(tmp_path):
  files = {
      "syntax": _write(tmp_path / "syntax.py", "import ml_collections\n\ndef get_config(arg=None):"
                       "\n  c = ml_collections.ConfigDict(\n  return c\n"),
      "import": _write(tmp_path / "imports.py",
                       "from transjax.config import training_defaultz\n"),
      "no_get": _write(tmp_path / "no_get.py", "X = 1\n"),
      "raises": _write(tmp_path / "raises.py", "def get_config(arg=None):\n"
                       "  raise RuntimeError('no such preset here')\n"),
      "typo": _write(tmp_path / "typo.py", "from configs.landscape import get_config as base\n\n"
                     "def get_config(arg=None):\n  c = base(arg)\n  c.resolutoin = 5\n"
                     "  return c\n"),
      "train_typo": _write(tmp_path / "train_typo.py", "from configs.lenet_mnist import "
                           "get_config as base\n\ndef get_config(arg=None):\n  c = base(arg)\n"
                           "  c.optim.momentun = 0.5\n  return c\n"),
  }
  out = tmp_path / "out"
  commands = {
      "syntax": ["experiments.pretrain", f"--config={files['syntax']}"],
      "import": ["experiments.paper_minima", f"--config={files['import']}"],
      "no_get": ["experiments.hessian", f"--config={files['no_get']}"],
      "raises": ["experiments.gradient_stats", f"--config={files['raises']}:smoke"],
      "typo": ["experiments.landscape", f"--config={files['typo']}:smoke"],
      "train_typo": ["experiments.pretrain", f"--config={files['train_typo']}:smoke"],
      "override": ["experiments.hessian", "--config=configs/hessian.py:smoke",
                   "--config.top_kk=3"],
      "paper_override": ["experiments.paper_minima", "--config=configs/paper_minima.py:smoke",
                         "--config.resolutoin=3"],
  }
  procs = _run_all({name: args + [f"--workdir={out}"] for name, args in commands.items()})
  _assert_one_line_user_error(procs["syntax"], f"config file {files['syntax']} line 4",
                              "SyntaxError", "was never closed")
  _assert_one_line_user_error(procs["import"], f"config file {files['import']} line 1",
                              "ImportError", "training_defaultz",
                              "did you mean 'training_defaults'?")
  _assert_one_line_user_error(procs["no_get"], str(files["no_get"]), "defines no get_config")
  _assert_one_line_user_error(procs["raises"], f"config file {files['raises']} line 2",
                              "(in get_config)", "RuntimeError: no such preset here")
  _assert_one_line_user_error(procs["typo"], f"config file {files['typo']} line 5",
                              "unknown field 'resolutoin'", "did you mean 'resolution'?")
  _assert_one_line_user_error(procs["train_typo"], f"config file {files['train_typo']} line 5",
                              "unknown field 'optim.momentun'", "'optim.momentum'")
  _assert_one_line_user_error(procs["override"], "unknown config field 'top_kk'",
                              "--config.top_kk", "did you mean --config.top_k?")
  _assert_one_line_user_error(procs["paper_override"], "did you mean --config.resolution?")
  for proc in procs.values():  # rendered cleanly: no escaped quotes or newlines
    line = next(l for l in proc.stderr.splitlines() if l.startswith("error:"))
    assert "\\n" not in line and "\\'" not in line and '\\"' not in line, line
  assert not out.exists()


def test_instrument_arguments_are_refused_before_any_work(reference, tmp_path):
  """Three through the real binaries (the one line, no folder made), the rest of the kinds
  on the validation those binaries call first."""
  run = f"--config.checkpoints={reference}"
  commands = {
      "resolution": ["experiments.landscape", "--config=configs/landscape.py:smoke", run,
                     "--config.resolution=1"],
      "top_k": ["experiments.hessian", "--config=configs/hessian.py:smoke", run,
                "--config.layers=fc", "--config.top_k=851"],
      "protocol": ["experiments.gradient_variation",
                   "--config=configs/gradient_variation.py:smoke", run,
                   "--config.protocols=gradient,sideways"],
  }
  out = {name: tmp_path / name for name in commands}
  procs = _run_all({name: args + [f"--workdir={out[name]}"] for name, args in commands.items()})
  _assert_one_line_user_error(procs["resolution"], "config.resolution = 1", "at least 2")
  _assert_one_line_user_error(procs["top_k"], "config.top_k = 851", "at most 850",
                              "selected layers")
  _assert_one_line_user_error(procs["protocol"], "config.protocols")
  for name, d in out.items():
    assert not d.exists(), name

  from configs import gradient_variation, hessian, landscape  # pylint: disable=import-outside-toplevel
  cases = [
      (landscape, validate.landscape, {"resolution": 0}, "config.resolution = 0"),
      (landscape, validate.landscape, {"eta": 0.0}, "config.eta = 0.0"),
      (landscape, validate.landscape, {"eta": float("nan")}, "config.eta = nan"),
      (landscape, validate.landscape, {"dims": 3}, "config.dims = 3"),
      (hessian, validate.hessian, {"top_k": 5, "max_steps": 3}, "config.top_k = 5"),
      (hessian, validate.hessian, {"trace_probes": 1}, "config.trace_probes = 1"),
      (hessian, validate.hessian, {"tol": -1.0}, "config.tol = -1.0"),
      (gradient_variation, validate.gradient_variation, {"lr": 0.0}, "config.lr = 0.0"),
      (gradient_variation, validate.gradient_variation, {"num_steps": 0},
       "config.num_steps = 0"),
      (gradient_variation, validate.gradient_variation, {"steps": "0,x"}, "config.steps"),
  ]
  for module, check, fields, message in cases:
    config = module.get_config("smoke")
    config.update(fields)
    with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
      check(config)
    check(module.get_config("smoke"))  # the preset itself passes
  config = hessian.get_config("smoke")
  config.max_steps = 10**6
  with pytest.raises(config_lib.ConfigError, match="at most 61706"):
    validate.hessian_for_run(config, str(reference), None)


# ------------------------------------------------------------- weights, names and images


def test_weights_with_a_checksum_in_their_name_are_verified_before_use(tmp_path):
  import hashlib  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from transjax.weights import state_dict as pretrained  # pylint: disable=import-outside-toplevel
  plain = tmp_path / "plain.npz"
  np.savez(plain, **{"fc.weight": np.ones((2, 3), np.float32)})
  digest = hashlib.sha256(plain.read_bytes()).hexdigest()
  good = tmp_path / f"net-{digest[:8]}.npz"
  shutil.copy(plain, good)
  assert set(pretrained.read_state_dict(good)) == {"fc.weight"}
  damaged = tmp_path / f"net-{digest[:8]}.npz"
  data = bytearray(good.read_bytes())
  data[len(data) // 2:len(data) // 2 + 8] = bytes(8)  # partly zeroed
  damaged.write_bytes(bytes(data))
  with pytest.raises(pretrained.WeightsChecksumError, match=f"the name says {digest[:8]}"):
    pretrained.read_state_dict(damaged)


def test_a_pickle_in_a_pth_is_one_line_without_advice_to_run_it(tmp_path):
  torch = pytest.importorskip("torch")
  from transjax.weights import state_dict as pretrained  # pylint: disable=import-outside-toplevel
  path = tmp_path / "weights.pth"
  torch.save({"w": torch.zeros(2), "extra": pathlib.PurePosixPath("x")}, path)
  with pytest.raises(ValueError, match="pickled Python objects") as e:
    pretrained.read_state_dict(path)
  assert "weights_only=False" not in str(e.value) and "\n" not in str(e.value)


def test_an_imagenet_name_typo_is_refused_by_the_config_check():
  config = _smoke_config()
  config.mode, config.init_from = "finetune", "imagenet:efficientnet_lit0"
  with pytest.raises(ValueError, match="did you mean imagenet:efficientnet_lite0"):
    config_lib.validate(config)


def test_a_decompression_bomb_in_a_folder_dataset_names_the_file(tmp_path):
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from transjax.data import folder  # pylint: disable=import-outside-toplevel
  for name in ("a", "b"):
    (tmp_path / name).mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name / "0.png")
  Image.new("1", (20000, 20000)).save(tmp_path / "a" / "bomb.png")  # 400M pixels, 50 kB
  with pytest.raises(folder.FolderError, match="bomb.png is refused as a possible "
                     "decompression bomb"):
    folder.load_split(tmp_path, "all", (28, 28))
