"""The analysed subset of the parameters: a mask, the masked leaves, the loss on them.

Every analysis (Hessians, landscapes, gradient analyses) restricts itself to a layer or
block the same way: a boolean mask over the parameter pytree picks the analysed leaves as
a flat dict `{path: array}`, and the loss is taken as a function of that dict alone, the
other leaves held at their values (train=False: BatchNorm uses its running statistics).

    sub = partition(params, "conv2")                 # {"conv2/kernel": ..., "conv2/bias": ...}
    f = restricted_loss(loss_fn, params, state, batch)
    loss = f(sub)                                    # == loss_fn(params, state, batch, False)[0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax

from transjax import params as params_lib


def resolve_mask(params: Any, mask: Any = None) -> Any:
  """A boolean mask pytree from None (all), layer name(s) or a mask; checks it selects something.

  Raises:
    params_lib.UnknownLayerError: a layer name that does not exist (lists the valid ones).
    ValueError: the mask has the wrong structure or selects no parameter.
  """
  if mask is None or isinstance(mask, str) or (
      isinstance(mask, Sequence) and all(isinstance(m, str) for m in mask)):
    mask = params_lib.mask_for(params, mask)
  flat = jax.tree.leaves(mask)
  n_leaves = len(jax.tree.leaves(params))
  if len(flat) != n_leaves:
    raise ValueError(f"The mask has {len(flat)} leaves but params have {n_leaves}; build it "
                     "with transjax.params.mask_for(params, layers).")
  if not any(bool(m) for m in flat):
    raise ValueError("The mask selects no parameter (every leaf is False). Valid layers: "
                     + ", ".join(params_lib.layer_names(params)))
  return mask


def partition(params: Any, mask: Any = None) -> dict[str, jax.Array]:
  """The masked leaves of `params` as a dict {path: array} (the analysed sub-vector)."""
  mask = resolve_mask(params, mask)
  return {path: leaf for (path, leaf), m in zip(params_lib.named_leaves(params),
                                                jax.tree.leaves(mask)) if m}


def combine(sub: Mapping[str, jax.Array], params: Any) -> Any:
  """`params` with the leaves named in `sub` replaced (inverse of `partition`)."""
  named = params_lib.named_leaves(params)
  leaves = [sub[path] if path in sub else leaf for path, leaf in named]
  return jax.tree.unflatten(jax.tree.structure(params), leaves)


def restricted_loss(loss_fn: Callable, params: Any, state: Any,
                    batch: Mapping[str, Any]) -> Callable[[Mapping[str, jax.Array]], jax.Array]:
  """`f(sub) -> loss` on `batch` with train=False, the leaves outside `sub` fixed at `params`.

  Safe to build inside a traced function (params, state and batch may be tracers).
  """

  def f(sub):
    return loss_fn(combine(sub, params), state, batch, False)[0]

  return f
