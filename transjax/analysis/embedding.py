"""Weights of many checkpoints embedded in 2-D (the paper's Fig 4).

Each checkpoint's parameters are flattened into one vector; the pairwise Euclidean
distances are computed in JAX with the Gram trick (||a||^2 + ||b||^2 - 2 a.b, clamped at
0, blocked so a block of rows at a time is in memory) and embedded by t-SNE on the
precomputed distances (scikit-learn, `init="random"`, seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transjax import params as params_lib


class ArchitectureMismatchError(ValueError):
  """Checkpoints whose parameters differ in names or shapes."""


def flatten_weights(runs: Sequence[Any], names: Sequence[str] | None = None,
                    mask: Any = None) -> np.ndarray:
  """(num_runs, dim) float32 matrix of flattened parameters (masked leaves only, if given).

  Raises:
    ArchitectureMismatchError: two runs differ; names both runs and the first differing
      parameter (name or shape).
  """
  if not runs:
    raise ValueError("No checkpoints to embed.")
  names = list(names) if names is not None else [f"run {i}" for i in range(len(runs))]
  ref = [(p, np.shape(x)) for p, x in params_lib.named_leaves(runs[0])]
  for name, run in zip(names[1:], runs[1:]):
    cur = [(p, np.shape(x)) for p, x in params_lib.named_leaves(run)]
    if cur != ref:
      first = next(((a, b) for a, b in zip(ref + [None] * len(cur), cur + [None] * len(ref))
                    if a != b), (None, None))
      def fmt(x):
        return "nothing" if x is None else f"{x[0]} {tuple(x[1])}"
      raise ArchitectureMismatchError(
          f"Checkpoints of different architectures cannot share one embedding: {names[0]!r} "
          f"and {name!r} differ first at parameter {fmt(first[0])} vs {fmt(first[1])}.")
  keep = None if mask is None else [bool(m) for m in jax.tree.leaves(mask)]
  rows = []
  for run in runs:
    leaves = jax.tree.leaves(run)
    if keep is not None:
      leaves = [x for x, k in zip(leaves, keep) if k]
    rows.append(np.concatenate([np.asarray(x, np.float32).ravel() for x in leaves]))
  return np.stack(rows)


@jax.jit
def _gram_block(a, b, a_sq, b_sq):
  return jnp.sqrt(jnp.maximum(a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T), 0.0))


def pairwise_distances(x: Any, block_size: int = 256) -> np.ndarray:
  """Euclidean distances between the rows of x (Gram trick, clamped at 0, zero diagonal).

  Rows are processed `block_size` at a time.
  """
  x = jnp.asarray(x)
  sq = jnp.sum(jnp.square(x), axis=1)
  n = x.shape[0]
  out = np.zeros((n, n), np.float64)
  for lo in range(0, n, block_size):
    hi = min(n, lo + block_size)
    out[lo:hi] = np.asarray(_gram_block(x[lo:hi], x, sq[lo:hi], sq))
  np.fill_diagonal(out, 0.0)
  return 0.5 * (out + out.T)


def tsne(distances: np.ndarray, *, seed: int = 0, perplexity: float = 30.0,
         max_iter: int = 1000) -> np.ndarray:
  """2-D t-SNE of a precomputed distance matrix; perplexity clipped below n (sklearn needs
  perplexity < n). Deterministic for a fixed seed."""
  from sklearn.manifold import TSNE  # pylint: disable=import-outside-toplevel
  n = distances.shape[0]
  if n < 2:
    raise ValueError(f"t-SNE needs at least 2 checkpoints, got {n}.")
  perplexity = float(min(perplexity, n - 1))
  kwargs = dict(n_components=2, metric="precomputed", init="random", random_state=seed,
                perplexity=perplexity)
  try:
    model = TSNE(max_iter=max_iter, **kwargs)
  except TypeError:  # scikit-learn < 1.5 calls it n_iter
    model = TSNE(n_iter=max_iter, **kwargs)
  return model.fit_transform(np.asarray(distances, np.float64))


def embed_weights(runs: Sequence[Any], names: Sequence[str] | None = None, *, seed: int = 0,
                  perplexity: float = 30.0, mask: Any = None) -> dict[str, Any]:
  """Flatten, pairwise distances, t-SNE: {"names", "distances", "embedding"}."""
  names = list(names) if names is not None else [f"run {i}" for i in range(len(runs))]
  x = flatten_weights(runs, names, mask)
  dist = pairwise_distances(x)
  emb = tsne(dist, seed=seed, perplexity=perplexity)
  return {"names": names, "distances": dist, "embedding": emb,
          "perplexity": float(min(perplexity, len(runs) - 1))}
