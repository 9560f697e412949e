"""Activation taps: where the gradient w.r.t. a layer's input can be read off.

A model calls `tap(x, name, taps)` on the input of each layer it wants measurable. With
`taps=None` (training, landscapes, Hessians) it is the identity. With a dict of zero arrays
it adds them, so `jax.grad` w.r.t. that dict is the gradient w.r.t. each layer's input
activations (the paper's Fig 7d "scale of gradient in different layers"). With a
`TapRecorder` it records each tap's shape, so callers can build the zero arrays with
`jax.eval_shape` and no extra compute. With a `TapValues` it keeps the activations
themselves (e.g. "fc": the features the head reads), inside the function that made it.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax


class TapRecorder(dict):
  """Collects `name -> jax.ShapeDtypeStruct` for every tap point, in call order."""


class TapValues(dict):
  """Collects `name -> activation` for every tap point, in call order."""


def tap(x: jax.Array, name: str, taps: Mapping[str, jax.Array] | None) -> jax.Array:
  """Returns `x`, plus `taps[name]` when given; records the shape into a `TapRecorder`."""
  if taps is None:
    return x
  if isinstance(taps, TapRecorder):
    taps[name] = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return x
  if isinstance(taps, TapValues):
    taps[name] = x
    return x
  if name in taps:
    return x + taps[name]
  return x
