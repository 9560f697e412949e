"""Orbax checkpoints of a run folder: save / restore / latest, and the starting weights.

Layout under a run's workdir:
  checkpoints/<step>/   the train state (params, BatchNorm state, optimiser state, step)
  init/                 the weights training started from (for ||W - W0|| and `--center=init`)
  damaged_checkpoints/<step>/   a step that could not be read, set aside (never deleted)

A step that cannot be read (a truncated array file, an empty folder left by a kill) is set
aside when an older step can be read, and the run resumes from that one
(`CheckpointStore.restore_newest_readable`); when no step can be read nothing is moved and
`UnreadableCheckpointError` says what to do (a systematic failure, such as a changed model,
must not make every checkpoint vanish).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

DAMAGED_DIR = "damaged_checkpoints"


class UnreadableCheckpointError(ValueError):
  """No checkpoint of a run can be read (the message names each step and why)."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (the message names the step, folder and cause)."""


# How TensorStore and the OS say that a write found no room.
_FULL_DISK_MARKERS = ("RESOURCE_EXHAUSTED", "No space left", "Disk quota exceeded",
                      "File too large")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
  """Keeps what Orbax's worker threads print while writing (asyncio tracebacks, its error
  log lines) off the terminal: a failure reaches the caller as one exception instead.

  With --debug / TRANSJAX_DEBUG=1 nothing is hidden.
  """
  if os.environ.get("TRANSJAX_DEBUG", "").lower() in ("1", "true", "yes") or _debug_flag():
    yield
    return
  buffer, saved = io.StringIO(), sys.stderr
  sys.stderr = buffer
  try:
    yield
  finally:
    sys.stderr = saved
  if buffer.getvalue():  # reached only when the block succeeded
    logging.debug("checkpoint writer output: %s", buffer.getvalue())


class _MainThreadOnly(io.TextIOBase):
  """sys.stderr for the main thread alone: after a failed write Orbax's worker threads go on
  printing asyncio tracebacks (`Event loop is closed`) until the process ends."""

  def __init__(self, stream):
    super().__init__()
    self.stream = stream

  def write(self, text: str) -> int:
    if threading.current_thread() is threading.main_thread():
      return self.stream.write(text)
    return len(text)

  def flush(self) -> None:
    self.stream.flush()

  def fileno(self) -> int:
    return self.stream.fileno()


def _silence_worker_threads() -> None:
  """Installs `_MainThreadOnly` (once, and not with --debug)."""
  if not isinstance(sys.stderr, _MainThreadOnly) and not (
      os.environ.get("TRANSJAX_DEBUG", "").lower() in ("1", "true", "yes") or _debug_flag()):
    sys.stderr = _MainThreadOnly(sys.stderr)


def _debug_flag() -> bool:
  try:
    from absl import flags  # pylint: disable=import-outside-toplevel
    return bool(flags.FLAGS.is_parsed() and "debug" in flags.FLAGS and flags.FLAGS.debug)
  except Exception:  # pylint: disable=broad-except
    return False


def reason(error: BaseException) -> str:
  """The first line of an Orbax / TensorStore error, which can run to pages."""
  causes = [error]
  while causes[-1].__cause__ is not None and len(causes) < 5:
    causes.append(causes[-1].__cause__)
  for e in reversed(causes):  # the innermost cause names the file and the byte range
    text = " ".join(str(e).split())
    if text:
      return (text[:300] + "...") if len(text) > 300 else text
  return type(error).__name__


def set_aside(directory: str, step: int) -> str:
  """Moves `directory/<step>` to `<run>/damaged_checkpoints/<step>[-n]`; returns the new path."""
  target_root = os.path.join(os.path.dirname(directory), DAMAGED_DIR)
  os.makedirs(target_root, exist_ok=True)
  target, n = os.path.join(target_root, str(step)), 1
  while os.path.exists(target):  # an earlier damaged copy of the same step stays too
    n += 1
    target = os.path.join(target_root, f"{step}-{n}")
  shutil.move(os.path.join(directory, str(step)), target)
  return target


def _abstract(tree: Any) -> Any:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class CheckpointStore:
  """A run's checkpoints: `save(step, tree)`, `restore(step, like)`, `latest_step()`.

  Use as a context manager so pending asynchronous saves finish.
  """

  def __init__(self, workdir: str, *, max_to_keep: int | None = 3, keep_period: int | None = None):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self._options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, keep_period=keep_period or None, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=self._options)

  def _reopen(self) -> None:
    """A fresh manager: after a failed restore Orbax's keeps the failed step's idea of the
    layout (an empty step folder makes it expect several items in every later step)."""
    with contextlib.suppress(Exception), _quiet():
      self._manager.close()
    self._manager = ocp.CheckpointManager(self.directory, options=self._options)

  def __enter__(self) -> "CheckpointStore":
    return self

  def __exit__(self, exc_type, *exc) -> None:
    if exc_type is None:
      self.close()
      return
    # Already failing (a full disk, a signal): the manager's own errors would hide the cause.
    with contextlib.suppress(Exception), _quiet():
      self.close()

  def close(self) -> None:
    with _quiet():
      self._manager.wait_until_finished()
      self._manager.close()

  def save(self, step: int, tree: Any, *, force: bool = True) -> None:
    """Writes `step` and waits for it.

    Raises:
      CheckpointWriteError: the write failed (a full disk, a quota, a vanished folder); one
        line naming the step, the folder and the cause. The step is not left half-written
        as a step (Orbax writes into a temporary folder and renames it when complete).
    """
    try:
      with _quiet():
        self._manager.save(step, args=ocp.args.StandardSave(tree), force=force)
        self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except  (Orbax raises bare Exception)
      previous = [s for s in self.all_steps() if s < step]
      raise write_error(e, f"checkpoint step {step} to {self.directory}",
                        f"resumes from step {previous[-1]}" if previous
                        else "starts from the beginning") from None

  def delete(self, step: int) -> None:
    with _quiet():
      self._manager.delete(step)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def restore(self, step: int, like: Any) -> Any:
    """Restores `step` into the structure, shapes and dtypes of `like`."""
    with _quiet():  # a damaged file makes Orbax's reader threads print tracebacks
      return self._manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))

  def restore_newest_readable(self, like: Any) -> tuple[int | None, Any]:
    """(step, tree) of the newest step that reads back; (None, None) when there is none.

    Newer steps that cannot be read are set aside (`set_aside`) with one notice each, once
    an older step has been read.

    Raises:
      UnreadableCheckpointError: there are steps and none of them can be read (nothing moved).
    """
    failures = []
    for step in sorted(self.all_steps(), reverse=True):
      try:
        tree = self.restore(step, like)
      except Exception as e:  # pylint: disable=broad-except  (Orbax raises bare Exception)
        folder = os.path.join(self.directory, str(step))
        empty = os.path.isdir(folder) and not os.listdir(folder)
        failures.append((step, "its folder is empty" if empty else reason(e)))
        self._reopen()
        continue
      for bad, why in failures:
        if jax.process_index() != 0:  # several processes: process 0 moves the folder
          continue
        moved = set_aside(self.directory, bad)
        logging.warning("notice: checkpoint step %d of %s cannot be read (%s); moved it to %s "
                        "and resuming from step %d.", bad, os.path.dirname(self.directory),
                        why, moved, step)
      if failures:
        self._reopen()
      return step, tree
    if failures:
      shown = "; ".join(f"step {s}: {r}" for s, r in failures[:3])
      raise UnreadableCheckpointError(
          f"No checkpoint in {self.directory} can be read ({shown}). Nothing was moved. If "
          "the files are damaged, move the checkpoints folder aside to train from the start; "
          "if the code or config changed, run with the ones that wrote them.")
    return None, None


def checkpoint_steps(workdir: str) -> list[int]:
  """Steps with a finished checkpoint in a run folder (empty when there is none)."""
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def write_error(error: BaseException, what: str, resume: str) -> CheckpointWriteError:
  """The one-line error of a failed write of `what`; `resume`: what a rerun does."""
  _silence_worker_threads()  # the run ends with this error; its writer threads do not yet
  text, full_text, cause_of = reason(error), [], error
  while cause_of is not None and len(full_text) < 5:  # the errno text ends the long message
    full_text.append(str(cause_of))
    cause_of = cause_of.__cause__
  everything = " ".join(full_text)
  code = getattr(error, "errno", None)
  if "File too large" in everything or code == errno.EFBIG:
    cause = "a file-size limit was reached"
  elif any(m in everything for m in _FULL_DISK_MARKERS) or code in (errno.ENOSPC,
                                                                      errno.EDQUOT):
    cause = "the disk is full"
  else:
    cause = "the write failed"
  return CheckpointWriteError(f"cannot write {what}: {cause} ({text}). Free space (or use "
                              f"another --workdir) and run the same command again: it "
                              f"{resume}.")


def save_tree(path: str, tree: Any) -> None:
  """Saves one pytree (e.g. the initial weights) to `path`, replacing what is there.

  Raises:
    CheckpointWriteError: the write failed (one line, as `CheckpointStore.save`).
  """
  try:
    with _quiet(), ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(os.path.abspath(path), tree, force=True)
  except Exception as e:  # pylint: disable=broad-except  (Orbax raises bare Exception)
    raise write_error(e, os.path.abspath(path), "starts from the beginning") from None


def restore_tree(path: str, like: Any) -> Any:
  """Restores the pytree saved at `path` into the structure of `like`.

  Raises:
    UnreadableCheckpointError: the files are missing or damaged (one line naming `path`).
  """
  try:
    with _quiet(), ocp.StandardCheckpointer() as checkpointer:
      return checkpointer.restore(os.path.abspath(path), _abstract(like))
  except Exception as e:  # pylint: disable=broad-except  (Orbax raises bare Exception)
    raise UnreadableCheckpointError(f"{os.path.abspath(path)} cannot be read: {reason(e)}") from e

