"""A grid's finished points on disk, so a killed run starts again where it stopped."""

from __future__ import annotations

import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from transjax import distributed


def _fingerprint(params, state, batch, directions, coeffs) -> str:
  """A hash of everything a grid's values depend on but the loss function itself."""
  h = hashlib.sha256()
  for tree in (params, state, batch, list(directions), np.asarray(coeffs)):
    h.update(str(jax.tree.structure(tree)).encode())
    for leaf in jax.tree.leaves(tree):
      if jnp.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
      a = np.ascontiguousarray(distributed.to_numpy(leaf))  # a batch split over processes
      h.update(f"{a.shape}{a.dtype}".encode())
      h.update(a.tobytes())
  return h.hexdigest()


class _PartialGrid:
  """The losses of a grid's first points, saved after every chunk to `path` (.npz), so a
  killed run starts again where it stopped. A file made for another grid (other
  parameters, directions, data or coefficients) is ignored and overwritten."""

  def __init__(self, path: str, fingerprint: str):
    self.path, self.fingerprint = path, fingerprint

  def load(self, out: np.ndarray) -> int:
    """Fills out[:done] from the file; returns done (0 without a matching file)."""
    if not os.path.exists(self.path):
      return 0
    try:
      with np.load(self.path) as f:
        if str(f["fingerprint"]) != self.fingerprint or f["losses"].shape[0] > out.shape[0]:
          logging.warning("landscape: %s holds another grid's points; starting again",
                          self.path)
          return 0
        done = int(f["losses"].shape[0])
        out[:done] = f["losses"]
    except (OSError, KeyError, ValueError) as e:
      logging.warning("landscape: could not read %s (%s); starting again", self.path, e)
      return 0
    return done

  def save(self, losses: np.ndarray) -> None:
    if not distributed.is_writer():  # every process holds the same losses; one file
      return
    tmp = self.path + ".tmp.npz"
    np.savez(tmp, fingerprint=np.asarray(self.fingerprint), losses=losses)
    os.replace(tmp, self.path)
