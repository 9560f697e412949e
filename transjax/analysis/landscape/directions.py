"""Filter-normalised random directions (Li et al. 2018), restricted to a mask.

Restricting the directions to one layer (`layer_mask`) gives the per-layer landscapes of
the paper's Fig 5, the other layers held fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from transjax import params as params_lib
from transjax.analysis.subset import resolve_mask


def filter_normalize(direction: Any, params: Any, mask: Any = None, *,
                     include_bias_bn: bool = False) -> Any:
  """Rescales each output filter of `direction` to the norm of the same filter of `params`.

  Conv kernels (HWIO) and dense kernels (in, out): the filter / neuron is the last axis.
  Leaves with ndim <= 1 (biases, BatchNorm scale/shift) become zero, or with
  `include_bias_bn` are rescaled as whole vectors. Leaves outside `mask` become zero.
  """
  mask = resolve_mask(params, mask)

  def one(d, w, m):
    if not m:
      return jnp.zeros_like(w)
    d = jnp.asarray(d, w.dtype)
    if w.ndim <= 1:
      if not include_bias_bn:
        return jnp.zeros_like(w)
      return d * jnp.linalg.norm(w) / (jnp.linalg.norm(d) + 1e-10)
    axes = tuple(range(w.ndim - 1))
    w_norm = jnp.sqrt(jnp.sum(jnp.square(w), axis=axes, keepdims=True))
    d_norm = jnp.sqrt(jnp.sum(jnp.square(d), axis=axes, keepdims=True))
    return d * w_norm / (d_norm + 1e-10)

  return jax.tree.map(one, direction, params, mask)


def random_direction(key: jax.Array, params: Any, mask: Any = None, *,
                     include_bias_bn: bool = False) -> Any:
  """A Gaussian direction, filter-normalised to `params`, zero outside `mask`."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  noise = [jax.random.normal(k, jnp.shape(w), jnp.asarray(w).dtype) for k, w in zip(keys, leaves)]
  return filter_normalize(jax.tree.unflatten(treedef, noise), params, mask,
                          include_bias_bn=include_bias_bn)


def orthogonalize(direction: Any, against: Any) -> Any:
  """Gram-Schmidt: `direction` minus its projection on `against` (flattened; zeros stay zero)."""
  d, unravel = ravel_pytree(direction)
  a, _ = ravel_pytree(against)
  return unravel(d - jnp.vdot(d, a) / jnp.vdot(a, a) * a)


def random_directions(key: jax.Array, params: Any, num: int = 2, mask: Any = None, *,
                      include_bias_bn: bool = False, orthogonal: bool = False) -> list[Any]:
  """`num` filter-normalised directions; with `orthogonal`, later ones are orthogonalised
  (Gram-Schmidt over the masked, flattened direction) against the earlier ones."""
  out = []
  for k in jax.random.split(key, num):
    d = random_direction(k, params, mask, include_bias_bn=include_bias_bn)
    if orthogonal:
      for prev in out:
        d = orthogonalize(d, prev)
    out.append(d)
  return out


def layer_mask(params: Any, layer: str | Sequence[str] | None) -> Any:
  """`params.mask_for` with the empty-mask check (UnknownLayerError lists valid layers)."""
  return resolve_mask(params, params_lib.mask_for(params, layer))
