"""One writer per run folder: a lock that a second process meets before it writes anything.

    with workdir_lock.hold(workdir):      # WorkdirLockedError if another process holds it
      ...                                  # write config.json, metrics.jsonl, checkpoints

    @workdir_lock.locked()                 # the same around a function's `workdir` argument
    def run(config, workdir): ...

The lock is `fcntl.flock` on `<workdir>/.transjax.lock`. The kernel drops a flock when its
process dies, `kill -9` included, so a killed run can never leave a lock that blocks: a
lock file nobody holds is stale by definition and the next run takes it over (and says
so). An O_CREAT|O_EXCL lock file would need a guess instead (is that pid still alive, and
is it still the same program, and on which host?). The file's JSON ({pid, host, started,
command}) only serves the message a refused process prints.

Nested folders are locked separately (reproduce holds `<workdir>`, each experiment
`<workdir>/<name>`, each training run its own folder), and the locks are re-entrant per
process: a process that already holds a folder enters it again at once. On a multi-host
JAX job only process 0 locks; the others write the same folder by design.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import functools
import inspect
import json
import os
import socket
import sys
import threading
from typing import Any, Callable, Iterator

from absl import logging

LOCK_NAME = ".transjax.lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class WorkdirLockedError(RuntimeError):
  """Another live process holds the run folder."""


class LockUnavailableError(PermissionError):
  """The run folder (or its lock file) cannot be created or written."""


_mutex = threading.Lock()
_held: dict[str, list[Any]] = {}  # real path -> [fd, depth, created the folder]


def _key(workdir: str) -> str:
  return os.path.realpath(os.path.abspath(os.path.expanduser(workdir)))


def _is_secondary_host() -> bool:
  """True in processes 1..n of a multi-host JAX job (jax already imported and initialised)."""
  jax = sys.modules.get("jax")
  try:
    return bool(jax and jax.distributed.is_initialized() and jax.process_index() != 0)
  except Exception:  # pylint: disable=broad-except
    return False


def _read_holder(fd: int) -> dict[str, Any]:
  try:
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    holder = json.loads(text) if text.strip() else {}
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}


def describe_holder(holder: dict[str, Any]) -> str:
  """"pid 123 on host h, started 2026-...Z (python -m experiments.pretrain ...)"."""
  if not holder:
    return "a process that is still writing its details"
  text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started " \
         f"{holder.get('started', '?')}"
  if holder.get("command"):
    text += f" ({holder['command']})"
  return text


def _pid_alive(pid: Any) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, ValueError, TypeError, OverflowError):
    return True
  return True


def _acquire(path: str) -> int:
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise LockUnavailableError(f"Cannot write to workdir {path}: cannot create it "
                               f"({e.strerror or e}); choose a writable --workdir.") from None
  lock_path = os.path.join(path, LOCK_NAME)
  for _ in range(20):
    try:
      fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise LockUnavailableError(f"Cannot write to workdir {path}: {e.strerror or e}; choose "
                                 "a writable --workdir.") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in _NO_LOCKS:  # a file system without locks must not stop every run
        logging.warning("%s: the file system does not support locks (%s); running without "
                        "the one-writer check.", path, e.strerror or e)
        return fd
      holder = _read_holder(fd)
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise LockUnavailableError(f"Cannot lock workdir {path}: {e.strerror or e}.") from None
      raise WorkdirLockedError(
          f"{path} is in use by another run: {describe_holder(holder)}. Wait for it to "
          "finish (or stop it), or use another --workdir. Nothing in the folder was "
          "changed.") from None
    try:  # the holder before us may have removed the file between our open and flock
      same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
    except FileNotFoundError:
      same = False
    if not same:
      os.close(fd)
      continue
    previous = _read_holder(fd)
    if previous and previous.get("pid") != os.getpid():
      dead = (" (that process is gone)" if previous.get("host") == socket.gethostname()
              and not _pid_alive(previous.get("pid")) else "")
      logging.warning("%s: taking over the stale lock of %s%s.", path,
                      describe_holder(previous), dead)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "command": " ".join([os.path.basename(sys.executable)] + sys.argv)[:300]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    return fd
  raise LockUnavailableError(f"Cannot lock workdir {path}: its lock file keeps changing.")


def acquire(workdir: str) -> str:
  """Takes (or re-enters) the lock of `workdir`, creating the folder; returns its real path.

  Raises:
    WorkdirLockedError: another live process holds it (the message names pid, host, start).
    LockUnavailableError: the folder cannot be created or written.
  """
  if not workdir:
    raise LockUnavailableError("--workdir is empty; give a folder for the run's outputs.")
  path = _key(workdir)
  if _is_secondary_host():
    return path
  with _mutex:
    if path in _held:
      _held[path][1] += 1
      return path
    created = not os.path.isdir(path)
    _held[path] = [_acquire(path), 1, created]
  return path


def release(workdir: str) -> None:
  """Leaves the lock of `workdir`; the outermost release removes the lock file (and the
  folder, when this lock created it and nothing was written into it)."""
  path = _key(workdir)
  with _mutex:
    entry = _held.get(path)
    if entry is None:
      return
    entry[1] -= 1
    if entry[1] > 0:
      return
    del _held[path]
    fd = entry[0]
    with contextlib.suppress(OSError):
      os.remove(os.path.join(path, LOCK_NAME))  # still holding it: nobody else can be inside
    os.close(fd)
    if entry[2]:
      with contextlib.suppress(OSError):
        os.rmdir(path)  # only succeeds when empty


def outermost_held(path: str) -> str | None:
  """The outermost folder this process holds that contains `path` (or is it); else None.

  That is the workdir the user named (reproduce's, an experiment's or a run's), the folder
  whose copy or move must carry every path that points inside it.
  """
  target = _key(path)
  with _mutex:
    inside = [held for held in _held if target == held or target.startswith(held + os.sep)]
  return min(inside, key=len) if inside else None


def holds(workdir: str) -> bool:
  """Whether this process holds `workdir`'s lock."""
  return _key(workdir) in _held


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[str]:
  """Holds `workdir`'s lock for the body (re-entrant); yields the folder's real path."""
  path = acquire(workdir)
  try:
    yield path
  finally:
    if not _is_secondary_host():
      release(path)


def locked(arg: str = "workdir") -> Callable:
  """Decorator: holds the lock of the function's `arg` argument while it runs."""

  def decorate(fn: Callable) -> Callable:
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      workdir = signature.bind_partial(*args, **kwargs).arguments.get(arg)
      if not workdir:  # let the function report a missing workdir its own way
        return fn(*args, **kwargs)
      with hold(os.fspath(workdir)):
        return fn(*args, **kwargs)

    return wrapper

  return decorate
