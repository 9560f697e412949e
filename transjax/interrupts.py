"""SIGTERM and SIGINT: a run stops at a safe point, with one line saying how to resume.

    with interrupts.handled():         # cli.run_or_exit, around every binary's work
      ...
      with interrupts.deferred():      # training: a signal waits for the end of a step
        for step in ...:
          if interrupts.pending():     # checkpoint at this step, then
            raise interrupts.Interrupted(interrupts.pending(), "checkpointed at step 37")

A cluster scheduler sends SIGTERM before it kills; Ctrl-C is SIGINT. The first signal
raises `Interrupted` at once where nothing is being written (the stack unwinds, so run
folders' locks are released and open files closed), and only sets a flag inside a
`deferred` block, which the training loop checks between steps: there the state is whole,
so it writes a checkpoint at the current step and raises. A second signal exits at once
(no checkpoint; the kernel drops the lock's flock and the next run takes it over). The exit
status is the shell's convention for a signal, 128 + its number (130 for Ctrl-C, 143 for
SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
  """A run stopped by a signal.

  A BaseException like KeyboardInterrupt: handlers that isolate one failing part of a job
  (`except Exception` around each experiment of reproduce) must not swallow it.
  """

  def __init__(self, signum: int, where: str = ""):
    super().__init__(signum, where)
    self.signum = signum
    self.where = where

  @property
  def exit_status(self) -> int:
    return 128 + self.signum

  def __str__(self) -> str:
    return f"{signal.Signals(self.signum).name}{': ' + self.where if self.where else ''}"


_state = {"signum": None, "deferring": 0, "installed": 0}


def pending() -> int | None:
  """The number of the signal received (and not yet acted on), else None."""
  return _state["signum"]


def _handler(signum: int, frame) -> None:
  del frame
  if _state["signum"] is not None:
    print(f"interrupted: a second {signal.Signals(signum).name}: stopped at once, without a "
          "checkpoint; run the same command again to resume from the last one.",
          file=sys.stderr, flush=True)
    os._exit(128 + signum)  # pylint: disable=protected-access
  _state["signum"] = signum
  if not _state["deferring"]:
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
  """Installs the SIGTERM / SIGINT handlers for the body (main thread only; re-entrant)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {}
  if not _state["installed"]:
    _state["signum"] = None
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
  _state["installed"] += 1
  try:
    yield
  finally:
    _state["installed"] -= 1
    for s, h in previous.items():
      signal.signal(s, h)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
  """A first signal inside the body only sets `pending()`; the body acts on it. One still
  pending when the body ends is raised then."""
  _state["deferring"] += 1
  try:
    yield
  finally:
    _state["deferring"] -= 1
  signum = _state["signum"]
  if signum is not None and not _state["deferring"]:
    raise Interrupted(signum)
