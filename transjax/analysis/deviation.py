"""Deviation of the weights from where training started: ||W - W0||_F / sqrt(n).

The paper (Section 4.1, Table 1 and Fig 2) bounds generalisation by the distance the
weights travel from the pretrained (or random) starting point, scaled by the number of
training examples n. This module computes that quantity per layer, for the last layer
and summed over layers.

Conventions (the paper sums over *weight* layers):

* a layer is a conv or dense layer: its kernel and its bias together
  (`params.weight_layer_names`); the norm is taken over the concatenation of both;
* BatchNorm scale/shift are not weight layers and are excluded from `per_layer` and
  `sum` (they only rescale; the paper's sum is over the conv/fc weights);
* `last_layer` is the classifier head `fc`: for a linear head its kernel+bias, for the
  paper's MLP head the whole head (both dense layers and its BatchNorm) as one vector;
* `sum` is the sum of the `per_layer` values (a sum of norms, not the norm of the sum).

Everything is `jnp` on static pytree paths, so `deviation` can be called inside a
jitted function and costs one pass over the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transjax import params as params_lib

HEAD_NAME = "fc"


def _grouped(params: Any, params0: Any, mask: Any | None) -> dict[str, list[tuple[str, Any, Any]]]:
  """layer -> [(path, leaf, leaf0)] for every leaf, restricted to the mask."""
  leaves = params_lib.named_leaves(params)
  leaves0 = params_lib.named_leaves(params0)
  paths, paths0 = [p for p, _ in leaves], [p for p, _ in leaves0]
  if paths != paths0:
    diff = next((a, b) for a, b in zip(paths + [None], paths0 + [None]) if a != b)
    raise ValueError(
        "params and params0 have different structures (first difference: "
        f"{diff[0]!r} vs {diff[1]!r}).")
  if mask is None:
    keep = [True] * len(leaves)
  else:
    keep = [bool(m) for m in jax.tree.leaves(mask)]
    if len(keep) != len(leaves):
      raise ValueError("mask does not have the structure of params.")
    if not any(keep):
      raise ValueError("The mask selects no parameter; deviation would be empty.")
  groups: dict[str, list[tuple[str, Any, Any]]] = {}
  for (path, w), (_, w0), k in zip(leaves, leaves0, keep):
    if k:
      groups.setdefault(params_lib.layer_of(path), []).append((path, w, w0))
  return groups


def _sq_dist(items) -> jax.Array:
  return sum(jnp.sum(jnp.square(jnp.asarray(w, jnp.float32) - jnp.asarray(w0, jnp.float32)))
             for _, w, w0 in items)


def deviation(params: Any, params0: Any, n: int | jax.Array,
              mask: Any | None = None) -> dict[str, Any]:
  """||W - W0||_F / sqrt(n) per weight layer, for the head, and summed over layers.

  Args:
    params: current parameters (an nnx.State or any pytree with transjax path names).
    params0: the parameters training started from (same structure).
    n: number of training examples.
    mask: optional boolean pytree; only masked leaves count (a layer whose kernel is
      unmasked is left out of `per_layer`).

  Returns:
    {"per_layer": {layer: scalar}, "last_layer": scalar (0.0 when the head is masked
    out or absent), "sum": scalar}; all jnp scalars (float32), so jit-friendly.

  Raises:
    ValueError: the trees differ in structure, or the mask selects nothing.
  """
  groups = _grouped(params, params0, mask)
  scale = 1.0 / jnp.sqrt(jnp.asarray(n, jnp.float32))
  per_layer: dict[str, jax.Array] = {}
  for layer, items in groups.items():
    is_weight_layer = any(p.endswith("/kernel") and np.ndim(w) >= 2 for p, w, _ in items)
    if is_weight_layer:
      per_layer[layer] = jnp.sqrt(_sq_dist(items)) * scale
  head_items = [it for layer, items in groups.items()
                if layer == HEAD_NAME or layer.startswith(HEAD_NAME + "/") for it in items]
  last = jnp.sqrt(_sq_dist(head_items)) * scale if head_items else jnp.zeros((), jnp.float32)
  total = sum(per_layer.values()) if per_layer else jnp.zeros((), jnp.float32)
  return {"per_layer": per_layer, "last_layer": last, "sum": total}


def to_floats(result: Mapping[str, Any]) -> dict[str, Any]:
  """`deviation`'s output with Python floats (for JSON / metrics logging)."""
  return {"per_layer": {k: float(v) for k, v in result["per_layer"].items()},
          "last_layer": float(result["last_layer"]), "sum": float(result["sum"])}
