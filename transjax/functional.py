"""The functional core: a model as `(graphdef, params, state)` and the ONE pure loss.

    graphdef, params, state = split(model)   # params: nnx.Param; state: BatchNorm stats
    loss_fn = make_loss_fn(graphdef)
    loss, aux = loss_fn(params, state, batch, train)

`batch` is a mapping with "image" (B, H, W, C) float32 and "label" (B,) int32, and
optionally "weight" (B,) float32 (0 for padding examples, so a ragged last batch can be
padded to a compiled shape) and "taps" (see `transjax.models.taps`); an `(images, labels)`
pair is read as that mapping (`as_batch`). A model of one's own is any `nnx.Module`
called as `model(images)`, with `train` and `taps` keywords only if it has them; a loss of
one's own, `loss(params, batch) -> scalar`, becomes a `LossFn` with `loss_from(loss)`
(docs/own_model.md). With train=True BatchNorm uses batch
statistics and `aux["state"]` holds the updated running statistics; with train=False it
uses the running statistics, so the loss is a deterministic function of `params`. The
analyses (Hessians, landscapes, gradient measurements) call it with train=False and choose
which statistics that means with their `bn_mode` (`transjax.analysis.batchnorm`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

Batch = Mapping[str, Any]
LossFn = Callable[[Any, Any, Batch, bool], tuple[jax.Array, dict[str, Any]]]


def split(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
  """Splits a model into its graph, trainable parameters and the rest (BatchNorm stats)."""
  return nnx.split(model, nnx.Param, ...)


def merge(graphdef: nnx.GraphDef, params: nnx.State, state: nnx.State) -> nnx.Module:
  """Rebuilds a model; `copy=True`, because the default shares state and breaks BatchNorm
  under jit/grad."""
  return nnx.merge(graphdef, params, state, copy=True)


def as_batch(batch: Any) -> Batch:
  """A batch mapping as it is; an `(images, labels)` pair as {"image", "label"}."""
  if isinstance(batch, Mapping):
    return batch
  if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(
      hasattr(x, "shape") for x in batch):
    return {"image": batch[0], "label": batch[1]}
  raise TypeError(f"a batch is a dict with 'image' and 'label' or an (images, labels) pair "
                  f"of arrays, got {type(batch).__name__}.")


def is_one_batch(batches: Any) -> bool:
  """Whether `batches` is one batch (a mapping or an (images, labels) pair of arrays), not
  a sequence of batches."""
  return isinstance(batches, Mapping) or (
      isinstance(batches, (tuple, list)) and len(batches) == 2
      and all(hasattr(x, "shape") for x in batches))


def batch_size(batch: Any) -> int:
  """The number of examples in a batch (either form)."""
  return int(jnp.shape(as_batch(batch)["label"])[0])


def loss_from(loss: Callable[[Any, Batch], Any]) -> LossFn:
  """A `LossFn` from a loss of one's own, `loss(params, batch) -> scalar` or
  `-> (scalar, aux dict)`: the state passes through unchanged (no BatchNorm statistics),
  `train` is ignored, and the batch reaches `loss` as a mapping (see `as_batch`).

  The instruments then work on it as on a transjax model's loss, except what needs the
  model's graph: BatchNorm recalibration (`bn_mode="recalibrated"`) and activation taps.
  """

  def loss_fn(params, state, batch, train: bool):
    del train
    out = loss(params, as_batch(batch))
    value, aux = out if isinstance(out, tuple) else (out, {})
    return value, {**aux, "state": state}

  return loss_fn


def accepts_keyword(model: nnx.Module, name: str) -> bool:
  """Whether the model's __call__ takes the keyword `name` (or **kwargs)."""
  params = inspect.signature(type(model).__call__).parameters
  return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                               for p in params.values())


def _check_takes_frozen_features(model: nnx.Module) -> None:
  params = inspect.signature(type(model).__call__).parameters
  if "frozen_features" not in params and not any(
      p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
    raise TypeError(
        f"{type(model).__name__}.__call__ has no frozen_features argument, which `fixed` "
        "mode passes so that BatchNorm below the head uses its running statistics. Add "
        "`frozen_features: bool = False` (a model without BatchNorm can ignore it).")


def make_apply_fn(graphdef: nnx.GraphDef, *, frozen_features: bool = False):
  """Returns `apply(params, state, images, train, taps=None) -> (logits, new_state)`.

  With `frozen_features` (training a head on a fixed feature extractor), BatchNorm below
  the head uses its running statistics in train mode too, so the features are the same
  function of the input in training and evaluation; the head's own BatchNorm still trains.
  """

  def apply(params, state, images, train: bool, taps=None):
    model = merge(graphdef, params, state)
    # A model of one's own need take only the images: `train` and `taps` are passed where
    # its __call__ has them.
    kwargs = {}
    if accepts_keyword(model, "train"):
      kwargs["train"] = train
    if taps is not None:
      if not accepts_keyword(model, "taps"):
        raise TypeError(f"{type(model).__name__}.__call__ has no taps argument, which the "
                        "gradient measurements at layer inputs need (see transjax.models.taps).")
      kwargs["taps"] = taps
    elif accepts_keyword(model, "taps"):
      kwargs["taps"] = None
    if frozen_features:  # only then: a model of one's own need not know the keyword
      _check_takes_frozen_features(model)
      kwargs["frozen_features"] = True
    logits = model(images, **kwargs)
    new_state = nnx.state(model, nnx.Not(nnx.Param)) if train else state
    return logits, new_state

  return apply


def make_loss_fn(graphdef: nnx.GraphDef, *, frozen_features: bool = False) -> LossFn:
  """Returns the pure `loss_fn(params, state, batch, train) -> (loss, aux)`.

  `frozen_features`: see `make_apply_fn` (the training loop sets it in `fixed` mode).
  The same (graphdef, frozen_features) give the same function object, so what is
  compiled per loss function (e.g. the gradient-variation callback's path evaluation) is
  shared by the runs of one model in a process.

  loss: mean softmax cross-entropy over the batch (weighted by batch["weight"] if given).
  aux: "accuracy" (mean), "num_correct" and "loss_sum" (for exact dataset averages over
  ragged batches), "logits", and "state" (new BatchNorm statistics in train mode, the
  given state otherwise).
  """
  try:
    hash(graphdef)
  except TypeError:  # a model of one's own with unhashable static attributes: no sharing
    return _loss_fn.__wrapped__(graphdef, bool(frozen_features))
  return _loss_fn(graphdef, bool(frozen_features))


@functools.lru_cache(maxsize=16)
def _loss_fn(graphdef: nnx.GraphDef, frozen_features: bool) -> LossFn:
  apply = make_apply_fn(graphdef, frozen_features=frozen_features)

  def loss_fn(params, state, batch: Batch, train: bool):
    batch = as_batch(batch)
    logits, new_state = apply(params, state, batch["image"], train, batch.get("taps"))
    labels = batch["label"]
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    weight = batch.get("weight")
    if weight is None:
      weight = jnp.ones_like(losses)
    count = jnp.maximum(weight.sum(), 1.0)
    loss_sum = (losses * weight).sum()
    aux = {
        "accuracy": (correct * weight).sum() / count,
        "num_correct": (correct * weight).sum(),
        "loss_sum": loss_sum,
        "logits": logits,
        "state": new_state,
    }
    return loss_sum / count, aux

  loss_fn.graphdef = graphdef   # what transjax.analysis.batchnorm recalibrates with
  return loss_fn
