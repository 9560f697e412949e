"""Several processes, one run: JAX's multi-process runtime (`jax.distributed`).

One process per host (or, to try the path on one machine, several local processes on the
loopback interface: `experiments/launch_local.py`). Every process runs the same program on
the same config; the 1-D 'data' mesh (`transjax.sharding`) spans the devices of all of
them, parameters are replicated, and each process feeds only its own rows of a global
batch (`global_batch`, `local_rows`).

How a process learns its role, first match wins (JAX's own conventions):
  1. explicit arguments (a binary's flags), then the environment variables
     TRANSJAX_COORDINATOR (host:port of process 0), TRANSJAX_NUM_PROCESSES and
     TRANSJAX_PROCESS_ID;
  2. a cluster JAX detects itself (Slurm, Open MPI, Kubernetes, Cloud TPU) with more than
     one process;
  3. otherwise a single process: nothing is initialised.

Who writes what: process 0 (`is_writer()`) writes the run folder's own files (config,
metrics, results, figures, progress lines); every process writes its shards of the Orbax
checkpoints and reads them back.

A run that cannot start says so in one line (`DistributedError`) before any work: a
coordinator that does not answer within the timeout, a process id out of range, configs
that differ between processes (`check_same_config`), a global batch the processes cannot
share evenly (`check_divides`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from transjax import sharding

ENV_COORDINATOR = "TRANSJAX_COORDINATOR"
ENV_NUM_PROCESSES = "TRANSJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "TRANSJAX_PROCESS_ID"
ENV_TIMEOUT = "TRANSJAX_INIT_TIMEOUT"

# Seconds a process waits for the others at start. JAX's default (300 s) is long enough to
# look like a hang when the coordinator address is wrong.
DEFAULT_TIMEOUT_S = 60
# Seconds the coordination service waits for a silent process before it declares it dead
# (JAX's default is 100); the local launcher ends the rest sooner when a worker exits.
HEARTBEAT_TIMEOUT_S = 20


class DistributedError(ValueError):
  """The processes of a run cannot agree or connect (one line: what, and what to do).

  A ValueError, so the binaries report it as the one line of a user error."""


@dataclasses.dataclass(frozen=True)
class Role:
  """Where this process stands in the run; `source` says how that was learnt."""
  num_processes: int = 1
  process_id: int = 0
  coordinator: str | None = None
  source: str = "single"   # "flags", "environment", "cluster:<name>" or "single"

  @property
  def multi(self) -> bool:
    return self.num_processes > 1


def _int(value: Any, name: str) -> int:
  try:
    return int(value)
  except (TypeError, ValueError):
    raise DistributedError(f"{name} = {value!r} is not an integer.") from None


def _detected_cluster() -> tuple[str, int] | None:
  """(name, process count) of a cluster JAX's auto-detection would use, else None."""
  try:
    from jax._src import clusters  # pylint: disable=import-outside-toplevel
    for env in clusters.ClusterEnv._cluster_types:  # pylint: disable=protected-access
      if not env.opt_in_only_method and env.is_env_present():
        return env.name or env.__name__, int(env.get_process_count())
  except Exception:  # pylint: disable=broad-except  (a private API: absent means none)
    return None
  return None


def resolve_role(coordinator: str | None = None, num_processes: int | None = None,
                 process_id: int | None = None,
                 environ: Mapping[str, str] | None = None) -> Role:
  """This process's role: arguments, else TRANSJAX_* variables, else a detected cluster.

  Raises:
    DistributedError: a partial or inconsistent explicit role (one line).
  """
  environ = os.environ if environ is None else environ
  source = "flags"
  if coordinator is None and num_processes is None and process_id is None:
    source = "environment"
    coordinator = environ.get(ENV_COORDINATOR) or None
    num_processes = environ.get(ENV_NUM_PROCESSES) or None
    process_id = environ.get(ENV_PROCESS_ID) or None
  if coordinator is None and num_processes is None and process_id is None:
    cluster = _detected_cluster()
    if cluster is not None and cluster[1] > 1:
      # JAX fills in the address and the id itself (jax.distributed.initialize()).
      return Role(cluster[1], -1, None, f"cluster:{cluster[0]}")
    return Role()
  names = ("coordinator", "num_processes", "process_id") if source == "flags" else \
      (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
  missing = [n for n, v in zip(names, (coordinator, num_processes, process_id)) if v is None]
  n = _int(num_processes, names[1]) if num_processes is not None else None
  if n == 1 and coordinator is None:
    return Role(source=source)
  if missing:
    raise DistributedError(f"{', '.join(missing)} not given: a multi-process run needs "
                           f"all of {', '.join(names)} (or none, to auto-detect).")
  pid = _int(process_id, names[2])
  if n < 1:
    raise DistributedError(f"{names[1]} = {n}: needs at least 1 process.")
  if not 0 <= pid < n:
    raise DistributedError(f"{names[2]} = {pid} is outside 0..{n - 1} ({n} processes).")
  if not re.fullmatch(r"\[?[\w.:-]+\]?:\d+", str(coordinator)):
    raise DistributedError(f"{names[0]} = {coordinator!r} is not host:port.")
  return Role(n, pid, str(coordinator), source)


def initialize(role: Role | None = None, *, timeout_s: int | None = None,
               local_device_ids: Any = None) -> Role:
  """Joins the run `role` describes (`resolve_role()` when None); a single process is a
  no-op. Idempotent: a process already initialised returns its role.

  On CPU the processes exchange data with gloo (XLA:CPU has no collectives of its own
  across processes).

  Raises:
    DistributedError: the coordinator did not answer within `timeout_s` (default
      TRANSJAX_INIT_TIMEOUT or DEFAULT_TIMEOUT_S), or the role is bad (one line).
  """
  if jax.distributed.is_initialized():
    return Role(jax.process_count(), jax.process_index(), None, "initialized")
  role = resolve_role() if role is None else role
  if not role.multi:
    return role
  timeout_s = int(timeout_s or _int(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S), ENV_TIMEOUT))
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only XLA:CPU reads it
  kwargs: dict[str, Any] = dict(initialization_timeout=timeout_s,
                                heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
                                local_device_ids=local_device_ids)
  if role.source.startswith("cluster:"):
    where = f"the coordinator {role.source[8:]} names"
  else:
    host, port = role.coordinator.rsplit(":", 1)
    kwargs.update(coordinator_address=role.coordinator, num_processes=role.num_processes,
                  process_id=role.process_id, cluster_detection_method="deactivate")
    if role.process_id == 0:  # listen where the others were told to connect, nowhere wider
      kwargs["coordinator_bind_address"] = f"{host}:{port}"
    where = f"the coordinator at {role.coordinator}"
  if not role.source.startswith("cluster:"):
    _check_coordinator(role, timeout_s)
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # pylint: disable=broad-except  (XlaRuntimeError, RuntimeError)
    text = " ".join(str(e).split())
    first = text.split(". ")[0][:200]
    who = f"process {role.process_id} of {role.num_processes}" if role.process_id >= 0 \
        else "this process"
    if any(m in text for m in ("DEADLINE_EXCEEDED", "Deadline", "timed out", "UNAVAILABLE")):
      raise DistributedError(
          f"{who} could not reach {where} within {timeout_s} s ({first}). Start every "
          "process (process 0 first is not required), check the address and port, or "
          f"raise {ENV_TIMEOUT}.") from None
    raise DistributedError(f"{who} could not join {where}: {first}") from None
  if jax.process_index() != 0:  # progress lines and notices once, from process 0
    logging.set_verbosity(logging.ERROR)
  return Role(jax.process_count(), jax.process_index(), role.coordinator, role.source)


def barrier(name: str) -> None:
  """Every process waits here for the others (nothing in a single process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _check_coordinator(role: Role, timeout_s: float) -> None:
  """Process 0: the coordinator's port can be bound; the others: it accepts connections
  within `timeout_s`. Checked here because JAX aborts the process (a C++ fatal error and a
  stack dump, not an exception) when it cannot connect.

  Raises:
    DistributedError: one line saying which address failed and what to do.
  """
  host, port = role.coordinator.rsplit(":", 1)
  host, port = host.strip("[]"), int(port)
  who = f"process {role.process_id} of {role.num_processes}"
  if role.process_id == 0:
    try:
      with socket.create_server((host, port)):
        pass
    except OSError as e:
      raise DistributedError(
          f"{who} cannot listen on {role.coordinator} ({e.strerror or e}): the coordinator "
          "address must be this host's, on a free port.") from None
    return
  deadline, last = time.monotonic() + timeout_s, None
  while time.monotonic() < deadline:
    try:
      with socket.create_connection((host, port), timeout=min(2.0, timeout_s)):
        return
    except OSError as e:
      last = e
      time.sleep(0.2)
  raise DistributedError(
      f"{who} could not reach the coordinator at {role.coordinator} within {timeout_s:g} s "
      f"({getattr(last, 'strerror', None) or last}); start process 0 there, check the "
      f"address and port, or raise {ENV_TIMEOUT}.")


def process_index() -> int:
  return jax.process_index()


def process_count() -> int:
  return jax.process_count()


def is_writer() -> bool:
  """True in the process that writes the run folder's own files (process 0)."""
  return jax.process_index() == 0


def fatal_exit(message: str, code: int = 1) -> None:
  """Prints `message` and ends this process at once.

  `os._exit`: a normal exit would wait, in `jax.distributed`'s shutdown, for the other
  processes (up to its 300 s shutdown timeout) when they are still running or blocked in a
  collective this process will never join.
  """
  sys.stdout.flush()
  if message:
    sys.stderr.write(message.rstrip("\n") + "\n")
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


@contextlib.contextmanager
def exit_at_once_on_failure() -> Iterator[None]:
  """In a multi-process run, a failure in the body ends this process at once
  (`fatal_exit`) after its message or traceback is printed, so the launcher or the cluster
  sees the exit and stops the rest instead of every process waiting for shutdown."""
  try:
    yield
  except SystemExit as e:  # a one-line user error, already printed
    if jax.distributed.is_initialized() and e.code not in (0, None):
      fatal_exit("", e.code if isinstance(e.code, int) else 1)
    raise
  except BaseException:  # pylint: disable=broad-except
    if jax.distributed.is_initialized():
      traceback.print_exc()
      fatal_exit(f"process {jax.process_index()} of {jax.process_count()} failed (above).")
    raise


# ------------------------------------------------------------------ arrays across processes


def to_numpy(x: Any) -> np.ndarray:
  """A jax.Array (also one spread over several processes) as one NumPy array, in every
  process; anything else through `np.asarray`.

  `np.asarray` refuses an array some of whose shards live in another process; a replicated
  one is read from a local copy, a split one gathered (`process_allgather`).
  """
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def tree_to_numpy(tree: Any) -> Any:
  return jax.tree.map(to_numpy, tree)


def check_divides(global_batch: int, what: str = "config.batch_size",
                  num_processes: int | None = None) -> None:
  """Raises DistributedError unless the processes (`num_processes`, default: this run's)
  can share `global_batch` rows evenly."""
  n = num_processes or jax.process_count()
  if global_batch % n:
    raise DistributedError(
        f"{what} = {global_batch} cannot be split over {n} processes; use a multiple of "
        f"{n} (a multiple of the {jax.device_count()} devices splits over those too).")


def local_rows(sharding: NamedSharding, global_rows: int) -> slice:
  """The rows of a global batch whose leading axis `sharding` splits that this process's
  devices hold: the only rows it needs to read.

  Computed from the sharding (not assumed from the process id), so any device order of the
  mesh is right; a 1-D mesh that lists each process's devices together gives one slice.
  """
  spans = sorted({(idx[0].start or 0, global_rows if idx[0].stop is None else idx[0].stop)
                  for idx in sharding.addressable_devices_indices_map(
                      (global_rows,)).values()})
  start, stop = spans[0][0], spans[0][1]
  for lo, hi in spans[1:]:
    if lo != stop:
      raise DistributedError(f"this process's devices hold rows {spans} of {global_rows}: "
                             "not one slice; list each process's devices together in the mesh.")
    stop = hi
  return slice(start, stop)


def global_batch(local: Any, sharding: NamedSharding, global_rows: int) -> Any:
  """A pytree of this process's rows (`local_rows`) as global arrays of `global_rows` rows
  split per `sharding`. With one process this is `jax.device_put`."""
  if jax.process_count() == 1:
    return jax.device_put(local, sharding)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(
          sharding, np.asarray(x), (global_rows,) + np.shape(x)[1:]), local)


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """A pytree the same in every process, as arrays replicated over all devices of `mesh`."""
  sharding = NamedSharding(mesh, PartitionSpec())
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
      sharding, np.asarray(x), np.shape(x)), tree)


def for_all_processes(tree: Any) -> Any:
  """A pytree every process holds in full (parameters, directions) as arrays replicated
  over all processes' devices; unchanged in a single process. A jit that mixes them with
  a batch split over processes refuses arrays committed to one local device."""
  if jax.process_count() == 1:
    return tree
  return replicate(tree, sharding.data_mesh())


def split_over_processes(batch: Mapping[str, Any]) -> Mapping[str, Any]:
  """A batch every process holds in full (host arrays) as global arrays whose rows are
  split over all processes' devices, each process keeping only its own rows; unchanged in
  a single process.

  Raises:
    DistributedError: the rows cannot be split evenly over the devices (one line).
  """
  if jax.process_count() == 1:
    return batch
  mesh = sharding.data_mesh()
  n = int(np.shape(batch["label"])[0])
  if n % mesh.devices.size:
    raise DistributedError(
        f"{n} samples cannot be split over the {mesh.devices.size} devices of "
        f"{jax.process_count()} processes; use a multiple of {mesh.devices.size}.")
  split = NamedSharding(mesh, PartitionSpec("data"))
  rows = local_rows(split, n)
  return global_batch({k: np.asarray(v)[rows] for k, v in batch.items()}, split, n)


def agreed_signal(signum: int | None) -> int | None:
  """The signal some process has received (the lowest number when several), the same in
  every process; None when none has. One process: `signum` itself.

  Called once per training step, so that every process stops (and checkpoints) at the same
  step even when the signal reached them at different moments: a checkpoint is written by
  all of them together. Costs one small gather per step, only with several processes.
  """
  if jax.process_count() == 1:
    return signum
  everyone = np.asarray(multihost_utils.process_allgather(
      np.asarray([signum or 0], np.int32))).ravel()
  received = [int(s) for s in everyone if s]
  return min(received) if received else None


# ------------------------------------------------------------------ agreement at start


def config_hash(config: Any) -> str:
  """sha256 of a config's JSON (keys sorted): equal configs, equal hashes."""
  text = json.dumps(config, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()


def check_same_config(config: Any, what: str = "config") -> None:
  """Raises DistributedError in every process when the processes were given different
  configs (one line naming the processes that differ from process 0). A single process
  returns at once."""
  if jax.process_count() == 1:
    return
  digest = np.frombuffer(bytes.fromhex(config_hash(config)), np.uint32)
  everyone = np.asarray(multihost_utils.process_allgather(digest)).reshape(
      jax.process_count(), -1)
  differ = [i for i in range(len(everyone)) if not np.array_equal(everyone[i], everyone[0])]
  if differ:
    raise DistributedError(
        f"the {what} of process(es) {differ} differs from process 0's; every process of a "
        "run must get the same command line and config files.")
