"""Orbax checkpoints of a run folder: save / restore / latest, and the starting weights.

Layout under a run's workdir:
  checkpoints/<step>/   the train state (params, BatchNorm state, optimiser state, step)
  init/                 the weights training started from (for ||W - W0|| and `--center=init`)
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def _abstract(tree: Any) -> Any:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class CheckpointStore:
  """A run's checkpoints: `save(step, tree)`, `restore(step, like)`, `latest_step()`.

  Use as a context manager so pending asynchronous saves finish.
  """

  def __init__(self, workdir: str, *, max_to_keep: int | None = 3, keep_period: int | None = None):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, keep_period=keep_period or None, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def __enter__(self) -> "CheckpointStore":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def save(self, step: int, tree: Any, *, force: bool = True) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(tree), force=force)
    self._manager.wait_until_finished()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def restore(self, step: int, like: Any) -> Any:
    """Restores `step` into the structure, shapes and dtypes of `like`."""
    return self._manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))


def checkpoint_steps(workdir: str) -> list[int]:
  """Steps with a finished checkpoint in a run folder (empty when there is none)."""
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def save_tree(path: str, tree: Any) -> None:
  """Saves one pytree (e.g. the initial weights) to `path`, replacing what is there."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.abspath(path), tree, force=True)


def restore_tree(path: str, like: Any) -> Any:
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(os.path.abspath(path), _abstract(like))

