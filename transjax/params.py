"""Naming and selecting parameters: layer names, masks, counts.

A parameter's path is its pytree path joined by "/" (e.g. "layer3/0/conv2/kernel"); a
layer is a path without its last part ("layer3/0/conv2"). Layer names may also be written
with dots, torchvision style ("layer3.0.conv2"). Restricting training or an analysis to
some layers is a boolean mask pytree with the structure of `params`, never a second code
path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import jax
import numpy as np


class UnknownLayerError(ValueError):
  """A layer name that matches no parameter; the message lists the valid names."""


def _key_str(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def path_str(path: Sequence[Any]) -> str:
  """Joins a pytree key path as "a/b/c" (dropping the `.value` of nnx Variables)."""
  return "/".join(_key_str(k) for k in path
                  if not isinstance(k, jax.tree_util.GetAttrKey) or k.name != "value")


def named_leaves(tree: Any) -> list[tuple[str, Any]]:
  """(path, leaf) for every leaf, in pytree order."""
  return [(path_str(p), leaf) for p, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def layer_of(path: str) -> str:
  """"layer1/0/conv1/kernel" -> "layer1/0/conv1"."""
  return path.rsplit("/", 1)[0] if "/" in path else path


def layer_names(params: Any) -> list[str]:
  """The distinct layer names of a parameter tree, in pytree order."""
  names: list[str] = []
  for path, _ in named_leaves(params):
    layer = layer_of(path)
    if layer not in names:
      names.append(layer)
  return names


def weight_layer_names(params: Any) -> list[str]:
  """Layers that own a conv or dense kernel (not BatchNorm), in pytree (sorted) order."""
  return [layer_of(p) for p, leaf in named_leaves(params)
          if p.endswith("/kernel") and np.ndim(leaf) >= 2]


def normalize_name(name: str) -> str:
  return name.replace(".", "/").strip("/")


def under(path: str, prefix: str) -> bool:
  """Whether the '/'-joined `path` is `prefix` or inside it ("fc/kernel" is under "fc",
  "fc1/kernel" is not)."""
  return path == prefix or path.startswith(prefix + "/")


def mask_for(params: Any, layers: Iterable[str] | None) -> Any:
  """Boolean pytree: True for parameters under any of `layers` (None or "all": all).

  Raises:
    UnknownLayerError: a name matches no parameter (the message lists valid layers).
  """
  if layers is None or (isinstance(layers, str) and layers == "all"):
    return jax.tree.map(lambda _: True, params)
  if isinstance(layers, str):
    layers = [layers]
  prefixes = [normalize_name(n) for n in layers]
  paths = [p for p, _ in named_leaves(params)]
  for name, prefix in zip(layers, prefixes):
    if not any(under(p, prefix) for p in paths):
      raise UnknownLayerError(
          f"No parameter matches layer {name!r}. Valid layers: {', '.join(layer_names(params))}")
  flat = [any(under(p, pre) for pre in prefixes) for p in paths]
  return jax.tree.unflatten(jax.tree.structure(params), flat)


def count(tree: Any, mask: Any | None = None) -> int:
  """Number of scalars in `tree` (where `mask` is True, when given)."""
  leaves = jax.tree.leaves(tree)
  if mask is None:
    return int(sum(np.size(x) for x in leaves))
  return int(sum(np.size(x) for x, m in zip(leaves, jax.tree.leaves(mask)) if m))
