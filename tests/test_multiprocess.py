"""Training and the instruments as several JAX processes (`transjax.distributed`), against
one process: real processes on the loopback interface (`experiments/launch_local.py`),
gloo collectives, simulated CPU devices.

The same file is the worker: `python tests/test_multiprocess.py <task> <outdir>` runs one
task in one process of a launched run, and process 0 writes what it measured to
<outdir>/<task>.json (or .npz). Each launch is skipped, with the reason, when the loopback
coordinator cannot start here.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = str(pathlib.Path(__file__).resolve())
LAUNCH_TIMEOUT_S = 240


# ----------------------------------------------------------------------------- worker


def _tiny_training_config(**overrides):
  sys.path.insert(0, str(ROOT / "tests"))
  from train_helpers import tiny_config  # pylint: disable=import-outside-toplevel
  # Four devices split a 32-example batch; no augmentation, so the batches (and the
  # numbers) do not depend on how the run is split.
  return tiny_config(**{"num_steps": 8, "log_every": 4, "eval_every": 4,
                        "checkpoint_every": 4, **overrides})


class _SignalAt:
  """A training callback that sends process 1 alone `signum` after `step` steps (printing
  `announce` and the time first, when given)."""

  def __init__(self, step: int, signum: int, announce: str | None = None):
    self.step, self.signum, self.announce = step, signum, announce

  def should_run(self, step: int) -> bool:
    return step == self.step

  def __call__(self, step, params, state):
    import jax  # pylint: disable=import-outside-toplevel
    if jax.process_index() == 1:
      if self.announce:
        print(f"{self.announce} {time.time()}", flush=True)
      os.kill(os.getpid(), self.signum)
    return {}


def _worker_train(outdir: str, kill: bool = False, term: bool = False) -> None:
  from transjax import cli, train, train_callbacks  # pylint: disable=import-outside-toplevel
  config = _tiny_training_config()
  signals = ([_SignalAt(2, signal.SIGKILL, "KILL_AT")] if kill
             else [_SignalAt(3, signal.SIGTERM)] if term else [])
  callbacks = train_callbacks.standard() + signals
  # As the binaries run it: a signal ends in one line and status 128 + signal.
  cli.run_or_exit(train.train, config, os.path.join(outdir, "run"), callbacks)


def _worker_mismatch(outdir: str) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  from transjax import train  # pylint: disable=import-outside-toplevel
  config = _tiny_training_config(**{"optim.lr": 0.05 + 0.01 * jax.process_index()})
  train.train(config, os.path.join(outdir, "run"))


def _tiny_mlp_problem():
  """A 2-layer MLP with the transjax model interface (75 parameters), 32 samples."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from transjax import functional  # pylint: disable=import-outside-toplevel

  class TinyMLP(nnx.Module):

    def __init__(self, rngs):
      self.fc1 = nnx.Linear(8, 6, rngs=rngs)
      self.fc = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x, train=False, taps=None):
      return self.fc(jnp.tanh(self.fc1(x.reshape(x.shape[0], -1))))

  g, p, s = functional.split(TinyMLP(nnx.Rngs(0)))
  rng = np.random.default_rng(0)
  batch = {"image": rng.normal(size=(32, 2, 2, 2)).astype(np.float32),
           "label": rng.integers(0, 3, 32).astype(np.int32)}
  return functional.make_loss_fn(g), p, s, batch


def _worker_instruments(outdir: str) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  from jax.sharding import NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel
  from transjax import distributed, sharding  # pylint: disable=import-outside-toplevel
  from transjax.analysis import hessian, landscape  # pylint: disable=import-outside-toplevel
  loss_fn, p, s, batch = _tiny_mlp_problem()
  mesh = sharding.data_mesh()
  split = NamedSharding(mesh, PartitionSpec("data"))
  rows = distributed.local_rows(split, 32)  # each process holds only its rows
  batch = distributed.global_batch({k: v[rows] for k, v in batch.items()}, split, 32)
  p, s = distributed.replicate(p, mesh), distributed.replicate(s, mesh)
  directions = landscape.random_directions(jax.random.key(1), p, 2)
  grid = landscape.loss_landscape(loss_fn, p, s, batch, directions,
                                  [np.linspace(-1, 1, 5)] * 2, chunk_size=8)
  op = hessian.HessianOperator(loss_fn, p, s, batch)
  top = hessian.lanczos_top_k(op, k=3)
  trace = hessian.hutchinson_trace(op, num_probes=8, block_size=4)
  if distributed.is_writer():
    np.savez(os.path.join(outdir, "instruments.npz"), losses=grid.losses,
             top=np.asarray(top.eigenvalues), trace=trace.trace)


def _worker(task: str, outdir: str) -> None:
  sys.path.insert(0, str(ROOT))
  from transjax import distributed  # pylint: disable=import-outside-toplevel
  distributed.initialize()
  with distributed.exit_at_once_on_failure():
    {"train": lambda: _worker_train(outdir),
     "train_kill": lambda: _worker_train(outdir, kill=True),
     "train_term": lambda: _worker_train(outdir, term=True),
     "mismatch": lambda: _worker_mismatch(outdir),
     "instruments": lambda: _worker_instruments(outdir)}[task]()


# ----------------------------------------------------------------------------- launches


def _launch(task: str, outdir, num_processes: int, devices: int,
            timeout: float = LAUNCH_TIMEOUT_S) -> tuple[int, str, float]:
  """(exit status, output, seconds) of `task` as `num_processes` x `devices`."""
  return _launch_command([WORKER, task, str(outdir)], num_processes, devices, timeout)


def _launch_command(args: list[str], num_processes: int, devices: int,
                    timeout: float = LAUNCH_TIMEOUT_S) -> tuple[int, str, float]:
  """(exit status, output, seconds) of `python <args>` as `num_processes` x `devices`."""
  # Compilation dominates these small runs (as in conftest.py for the tests themselves).
  env = dict(os.environ, PYTHONPATH=str(ROOT), TRANSJAX_INIT_TIMEOUT="30",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  env.pop("XLA_FLAGS", None)  # the launcher sets the device count
  start = time.monotonic()
  out = subprocess.run(
      [sys.executable, "-m", "experiments.launch_local", f"--num_processes={num_processes}",
       f"--devices_per_process={devices}", f"--timeout={timeout}", "--",
       sys.executable, *args],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 30)
  text = out.stdout + out.stderr
  if out.returncode and ("cannot listen on" in text or "could not reach the coordinator"
                         in text):
    pytest.skip(f"the loopback coordinator cannot start here: {text.strip()[-300:]}")
  return out.returncode, text, time.monotonic() - start


def _ok(status_output_seconds):
  status, text, _ = status_output_seconds
  assert status == 0, text[-3000:]


def _checkpoint(workdir, step: int) -> dict:
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  with ocp.StandardCheckpointer() as c:
    return c.restore(os.path.join(workdir, "checkpoints", str(step), "default"))


def _metrics(workdir) -> list[dict]:
  lines = pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines if line.strip()]
  return [r for r in records if set(r) != {"step"}]  # not the test callbacks' empty records


def _assert_trees_close(a, b, rtol=2e-5, atol=2e-6):
  import jax  # pylint: disable=import-outside-toplevel
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y),
                                                       rtol=rtol, atol=atol), a, b)


def _assert_metrics_close(got, want):
  assert [r["step"] for r in got] == [r["step"] for r in want]
  for g, w in zip(got, want):
    for key in ("train_loss", "train_error", "test_loss", "test_error", "deviation_sum"):
      if key in w:
        np.testing.assert_allclose(g[key], w[key], rtol=2e-5, atol=2e-6, err_msg=key)


def test_training_two_processes_equals_one_and_resumes_in_another_layout(tmp_path):
  one, two, other = tmp_path / "one", tmp_path / "two", tmp_path / "other"
  for d in (one, two, other):
    d.mkdir()
  _ok(_launch("train", one, 1, 1))
  _ok(_launch("train", two, 2, 2))
  _assert_trees_close(_checkpoint(two / "run", 8), _checkpoint(one / "run", 8))
  _assert_metrics_close(_metrics(two / "run"), _metrics(one / "run"))
  # Only process 0 wrote the run folder's files; both wrote the checkpoints.
  names = sorted(p.name for p in (two / "run").iterdir())
  assert {"config.json", "metrics.jsonl", "results.json", "training_curves.png",
          "checkpoints", "init"} <= set(names), names
  assert not [n for n in names if n.startswith(".write_test") or n.endswith(".tmp")], names
  # Step 4 written by 2 x 2 processes, resumed in 2 x 1: the same end as one process.
  shutil.copytree(two / "run", other / "run")
  shutil.rmtree(other / "run" / "checkpoints" / "8")
  status, text, _ = _launch("train", other, 2, 1)
  assert status == 0, text[-3000:]
  assert json.loads((other / "run" / "results.json").read_text())["resumed_from_step"] == 4
  _assert_trees_close(_checkpoint(other / "run", 8), _checkpoint(one / "run", 8))
  _assert_metrics_close(_metrics(other / "run"), _metrics(one / "run"))


def test_a_signal_to_one_process_stops_all_at_one_step_and_resumes(tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  for d in (one, two):
    d.mkdir()
  _ok(_launch("train", one, 1, 1))
  status, text, _ = _launch("train_term", two, 2, 2)
  assert status == 143, text[-3000:]
  assert text.count("interrupted: SIGTERM: checkpoint written at step 3") == 2, text[-3000:]
  assert sorted(os.listdir(two / "run" / "checkpoints")) == ["3"]
  _ok(_launch("train", two, 2, 2))  # resumed: the end of an uninterrupted run
  _assert_trees_close(_checkpoint(two / "run", 8), _checkpoint(one / "run", 8))
  _assert_metrics_close(_metrics(two / "run"), _metrics(one / "run"))


def test_hessian_and_landscape_two_processes_equal_one(tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  for d in (one, two):
    d.mkdir()
  _ok(_launch("instruments", one, 1, 1))
  _ok(_launch("instruments", two, 2, 2))
  a, b = np.load(two / "instruments.npz"), np.load(one / "instruments.npz")
  np.testing.assert_allclose(a["top"], b["top"], rtol=1e-4)
  np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-5)
  np.testing.assert_allclose(a["trace"], b["trace"], rtol=1e-4)


def test_landscape_binary_two_processes_equals_one(tmp_path):
  """The binary the issue saw fail (np.asarray of a cross-process array), end to end,
  against its own `run` called in this (single) process."""
  sys.path.insert(0, str(ROOT))
  from configs import landscape as landscape_config  # pylint: disable=import-outside-toplevel
  from experiments import landscape as landscape_binary  # pylint: disable=import-outside-toplevel
  from transjax import train  # pylint: disable=import-outside-toplevel
  run_dir = str(tmp_path / "run")
  train.train(_tiny_training_config(num_steps=4), run_dir)
  config = landscape_config.get_config("smoke")
  config.checkpoints, config.resolution = run_dir, 5
  one = landscape_binary.run(config, str(tmp_path / "one"))
  status, text, _ = _launch_command(
      ["-m", "experiments.landscape", "--config=configs/landscape.py:smoke",
       f"--config.checkpoints={run_dir}", "--config.resolution=5",
       f"--workdir={tmp_path / 'two'}"], 2, 2)
  assert status == 0, text[-3000:]
  assert text.count("centre loss") == 1, text[-2000:]  # printed by process 0 only
  two = json.loads((tmp_path / "two" / "results.json").read_text())
  np.testing.assert_allclose(np.asarray(two["losses"], float),
                             np.asarray(one["losses"], float), rtol=1e-5)


def test_a_killed_worker_stops_the_run_within_seconds(tmp_path):
  status, text, seconds = _launch("train_kill", tmp_path, 2, 2)
  ended = time.time()
  assert status == 137, text[-3000:]
  killed_at = float(text.split("KILL_AT ")[1].split()[0])
  assert ended - killed_at < 10, ended - killed_at  # measured here: about 1 s
  last = text.strip().splitlines()[-1]
  assert last.startswith("launch_local: process 1 of 2 was killed by SIGKILL"), last
  # From the kill: the launcher stops the other process at once (here the whole launch,
  # start-up and compilation included, is measured).
  assert seconds < 60, (seconds, text[-2000:])
  assert not _still_running(str(tmp_path)), "a worker was left behind"


def _still_running(marker: str) -> list[str]:
  """Command lines of live processes that mention `marker` (read from /proc)."""
  found = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      args = pathlib.Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
      continue
    if marker.encode() in args and int(pid) != os.getpid():
      found.append(args.decode(errors="replace"))
  return found


def test_the_launcher_timeout_stops_every_process(tmp_path):
  marker = str(tmp_path / "sleeper")
  start = time.monotonic()
  out = subprocess.run(
      [sys.executable, "-m", "experiments.launch_local", "--num_processes=2",
       "--devices_per_process=0", "--timeout=2", "--", sys.executable, "-c",
       "import time, sys; time.sleep(120)", marker],
      cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert out.returncode == 124, out.stderr
  assert out.stderr.strip().splitlines()[-1].startswith(
      "launch_local: the run passed --timeout=2 s; stopped all 2 processes."), out.stderr
  assert time.monotonic() - start < 20
  assert not _still_running(marker)


def test_configs_that_differ_between_processes_are_one_line(tmp_path):
  status, text, _ = _launch("mismatch", tmp_path, 2, 1)
  assert status != 0
  assert "differs from process 0's" in text, text[-2000:]
  assert not (tmp_path / "run" / "checkpoints").exists()


# ----------------------------------------------------------------------------- one process


def test_role_from_environment_and_bad_roles():
  from transjax import distributed  # pylint: disable=import-outside-toplevel
  env = {distributed.ENV_COORDINATOR: "127.0.0.1:1234", distributed.ENV_NUM_PROCESSES: "2",
         distributed.ENV_PROCESS_ID: "1"}
  role = distributed.resolve_role(environ=env)
  assert (role.num_processes, role.process_id, role.coordinator) == (2, 1, "127.0.0.1:1234")
  assert not distributed.resolve_role(environ={}).multi or os.environ.get("SLURM_JOB_ID")
  with pytest.raises(distributed.DistributedError, match="outside 0..1"):
    distributed.resolve_role(environ={**env, distributed.ENV_PROCESS_ID: "2"})
  with pytest.raises(distributed.DistributedError, match="TRANSJAX_PROCESS_ID not given"):
    distributed.resolve_role(environ={k: v for k, v in env.items()
                                      if k != distributed.ENV_PROCESS_ID})
  with pytest.raises(distributed.DistributedError, match="not host:port"):
    distributed.resolve_role("localhost", 2, 0)


def test_an_unreachable_coordinator_is_one_line_within_the_timeout():
  code = ("import sys; sys.path.insert(0, %r)\n"
          "from transjax import distributed\n"
          "try:\n  distributed.initialize(timeout_s=2)\n"
          "except distributed.DistributedError as e:\n  print('ERROR', e)\n") % str(ROOT)
  import socket  # pylint: disable=import-outside-toplevel
  with socket.socket() as s:  # a port nobody listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, TRANSJAX_COORDINATOR=f"127.0.0.1:{port}",
             TRANSJAX_NUM_PROCESSES="2", TRANSJAX_PROCESS_ID="1")
  start = time.monotonic()
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, timeout=60)
  lines = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
  assert len(lines) == 1 and "could not reach the coordinator" in lines[0], out.stdout
  assert time.monotonic() - start < 30


def test_a_slurm_job_of_several_tasks_is_detected(monkeypatch):
  from transjax import distributed  # pylint: disable=import-outside-toplevel
  for name, value in {"SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": "node[1-4]",
                      "SLURM_NTASKS": "4", "SLURM_PROCID": "2", "SLURM_LOCALID": "0"}.items():
    monkeypatch.setenv(name, value)
  role = distributed.resolve_role(environ={})
  assert (role.num_processes, role.source) == (4, "cluster:slurm"), role
  monkeypatch.setenv("SLURM_NTASKS", "1")  # one task: a plain single process
  assert not distributed.resolve_role(environ={}).multi


def test_a_coordinator_port_in_use_is_one_line():
  import socket  # pylint: disable=import-outside-toplevel
  from transjax import distributed  # pylint: disable=import-outside-toplevel
  with socket.create_server(("127.0.0.1", 0)) as busy:
    port = busy.getsockname()[1]
    role = distributed.Role(2, 0, f"127.0.0.1:{port}", "flags")
    with pytest.raises(distributed.DistributedError, match="cannot listen on 127.0.0.1:"):
      distributed.initialize(role, timeout_s=2)


def test_a_batch_the_processes_cannot_share_is_refused():
  from transjax import distributed  # pylint: disable=import-outside-toplevel
  distributed.check_divides(32, num_processes=4)
  with pytest.raises(distributed.DistributedError, match="cannot be split over 3 processes"):
    distributed.check_divides(32, num_processes=3)


if __name__ == "__main__":
  _worker(sys.argv[1], sys.argv[2])
