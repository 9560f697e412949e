r"""Runs a command as N processes of one JAX job on this machine, to try the multi-host path
(`transjax.distributed`) without a cluster:

    python -m experiments.launch_local --num_processes=2 --devices_per_process=2 -- \
        python -m experiments.pretrain --config=configs/lenet_mnist.py:smoke --workdir=/tmp/r

Each process gets TRANSJAX_COORDINATOR=127.0.0.1:<a free port>, TRANSJAX_NUM_PROCESSES and
TRANSJAX_PROCESS_ID, and (with --devices_per_process) that many simulated CPU devices.
The coordinator listens on the loopback interface only. Output lines are prefixed with
the process id ("[p1] ..."). Fail-fast: when a process exits with an error (or is
killed), the others are killed at once (they could not finish a collective without it)
and the launcher prints one line and exits with that process's status; --timeout and
Ctrl-C send SIGTERM (training checkpoints at the current step), then SIGKILL after
GRACE_S seconds. No process is left behind: each worker runs in its own process group,
which is killed on every way out.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

from transjax import cli

_FLAGS = cli.BinaryFlags(lambda: dict(
    num_processes=flags.DEFINE_integer(
        "num_processes", 2, "How many processes (JAX 'hosts') to start.", lower_bound=1),
    devices_per_process=flags.DEFINE_integer(
        "devices_per_process", 2, "Simulated CPU devices per process "
        "(--xla_force_host_platform_device_count, JAX_PLATFORMS=cpu); 0 leaves the devices "
        "and platform as they are.", lower_bound=0),
    timeout=flags.DEFINE_float(
        "timeout", 0.0, "Seconds after which every process is stopped and the launcher fails "
        "(0: no limit).", lower_bound=0.0),
    init_timeout=flags.DEFINE_integer(
        "init_timeout", 60, "Seconds a process waits for the others to join "
        "(TRANSJAX_INIT_TIMEOUT).", lower_bound=1)))

# Seconds between SIGTERM and SIGKILL when stopping the other processes: long enough for a
# clean exit, short enough that a stopped run is over within seconds.
GRACE_S = 3.0


def free_port() -> int:
  """A TCP port free on 127.0.0.1 now (the OS picks it)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def worker_env(base: dict[str, str], port: int, num_processes: int, process_id: int,
               devices: int, init_timeout: int) -> dict[str, str]:
  env = dict(base)
  env.update(TRANSJAX_COORDINATOR=f"127.0.0.1:{port}",
             TRANSJAX_NUM_PROCESSES=str(num_processes), TRANSJAX_PROCESS_ID=str(process_id),
             TRANSJAX_INIT_TIMEOUT=str(init_timeout), PYTHONUNBUFFERED="1")
  if devices:
    flags_ = re.sub(r"--xla_force_host_platform_device_count=\S+", "",
                    env.get("XLA_FLAGS", "")).strip()
    env["XLA_FLAGS"] = f"{flags_} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
  return env


def _pump(stream, prefix: str, out) -> None:
  for line in iter(stream.readline, b""):
    out.write(prefix + line.decode("utf-8", "replace"))
    out.flush()
  stream.close()


def _describe(code: int) -> str:
  if code < 0:
    try:
      return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
      return f"was killed by signal {-code}"
  return f"exited with status {code}"


def _stop(procs: list[subprocess.Popen], grace: float = GRACE_S) -> None:
  """SIGTERM to every live worker's process group, SIGKILL after `grace` seconds (at once
  when `grace` is 0)."""
  steps = ((signal.SIGTERM, grace),) if grace > 0 else ()
  for sig, wait in steps + ((signal.SIGKILL, 5.0),):
    live = [p for p in procs if p.poll() is None]
    for p in live:
      try:
        os.killpg(p.pid, sig)
      except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(p.poll() is None for p in live):
      time.sleep(0.05)


def launch(command: list[str], num_processes: int, devices_per_process: int = 2,
           timeout: float = 0.0, init_timeout: int = 60, out=None) -> int:
  """Runs `command` as `num_processes` processes; returns the run's exit status (0 when
  every process succeeded; else the first failure's, 124 on timeout)."""
  out = out or sys.stdout
  port = free_port()
  procs: list[subprocess.Popen] = []
  pumps = []
  status = 0
  previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

  def on_signal(signum, frame):  # the launcher stopped: so is everything it started
    del frame
    raise KeyboardInterrupt(signum)

  for s in previous:
    signal.signal(s, on_signal)
  start = time.monotonic()
  try:
    for i in range(num_processes):
      p = subprocess.Popen(command, env=worker_env(os.environ, port, num_processes, i,
                                                   devices_per_process, init_timeout),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, start_new_session=True)
      procs.append(p)
      t = threading.Thread(target=_pump, args=(p.stdout, f"[p{i}] ", out), daemon=True)
      t.start()
      pumps.append(t)
    while True:
      codes = [p.poll() for p in procs]
      failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
      if failed:
        i, code = failed[0]
        others = sum(c is None for c in codes)
        # A worker that stopped on SIGTERM/SIGINT (status 128 + n) checkpointed with the
        # others, which are finishing too: they get the grace. Any other failure: SIGKILL
        # at once, as the others can no longer finish a collective without it.
        interrupted = code in (128 + signal.SIGTERM, 128 + signal.SIGINT)
        _stop(procs, grace=GRACE_S if interrupted else 0)
        for t in pumps:
          t.join(timeout=1.0)
        print(f"launch_local: process {i} of {num_processes} {_describe(code)} after "
              f"{time.monotonic() - start:.1f} s; stopped the other {others} running "
              "process(es).", file=sys.stderr, flush=True)
        status = code if code > 0 else 128 - code
        break
      if all(c == 0 for c in codes):
        break
      if timeout and time.monotonic() - start > timeout:
        _stop(procs)
        for t in pumps:
          t.join(timeout=1.0)
        print(f"launch_local: the run passed --timeout={timeout:g} s; stopped all "
              f"{num_processes} processes.", file=sys.stderr, flush=True)
        status = 124
        break
      time.sleep(0.05)
  except KeyboardInterrupt as e:
    _stop(procs)
    signum = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
    print(f"launch_local: stopped by {signal.Signals(signum).name}; stopped all "
          f"{num_processes} processes.", file=sys.stderr, flush=True)
    status = 128 + int(signum)
  finally:
    _stop(procs)
    for s, handler in previous.items():
      signal.signal(s, handler)
  for t in pumps:
    t.join(timeout=1.0)
  return status


_HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")


def parse_flags(argv: list[str]) -> list[str]:
  """The launcher's own flags are those before `--`; what follows is the command, passed
  on untouched (its own --help included). --help exits 0; a bad flag is one line."""
  split = argv.index("--") if "--" in argv else len(argv)
  own, command = argv[:split], argv[split + 1:]
  if any(a.split("=", 1)[0] in _HELP_FLAGS for a in own[1:]):
    try:
      flags.FLAGS(own)  # absl prints the help and exits with 1
    except SystemExit:
      pass
    raise SystemExit(0)
  try:
    rest = flags.FLAGS(own)
  except flags.Error as e:
    print(f"error: {e} (--help lists the flags)", file=sys.stderr)
    raise SystemExit(2) from None
  return rest + command


def main(argv: list[str]) -> None:
  command = argv[1:]
  if not command:
    print("error: give the command to run after --, e.g. launch_local --num_processes=2 "
          "-- python -m experiments.pretrain ... (--help lists the flags)", file=sys.stderr)
    sys.exit(2)
  sys.exit(launch(command, **_FLAGS.values()))


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=parse_flags)
