"""The BatchNorm mode of an analysis: which statistics normalise the function it measures.

A network with BatchNorm is two functions of its parameters: with batch statistics (what
SGD optimises, train=True) and with the stored running statistics (train=False). The two
agree only where the running statistics fit the data. They need not: at random
initialisation the running statistics are (0, 1), so BatchNorm is the identity; a network
pretrained on ImageNet at 224 px carries those statistics into 64 px CIFAR images, where
eval-mode BatchNorm amplifies some channels 50-fold. An analysis on running statistics
then measures a network nobody trained. Every instrument (Hessian, landscapes, gradient
measurements) therefore takes `bn_mode`:

  "batch"         batch statistics of the analysed batch, as in training: the loss SGD sees,
                  the statistics moving with the parameters (a landscape point, an HVP
                  direction differentiates through them). The analogue of measuring during
                  training in train mode (Santurkar et al. 2018's gradient predictiveness:
                  the paper's Fig 6, 7, 11).
  "recalibrated"  the running statistics replaced by those of the analysed data at the
                  analysed parameters (one pass in train mode, each batch's statistics
                  averaged with equal weight, as `torch.optim.swa_utils.update_bn` does),
                  then held fixed. The analogue of the paper's PyTorch `model.eval()` on a
                  network whose statistics were updated while it was fine-tuned on the
                  target, which PyHessian (Fig 3) and the loss-landscape code (Fig 5, 10,
                  12-13) evaluate. At the analysed parameters its loss equals batch mode's.
  "running"       the stored running statistics, unchanged (the behaviour before bn_mode;
                  kept as an option, and what a network without BatchNorm gets anyway).

    loss_fn, state = prepare(loss_fn, params, state, batch, "recalibrated")
    op = HessianOperator(loss_fn, params, state, batch)     # or bn_mode= on the instrument

The prepared `loss_fn` keeps the `loss_fn(params, state, batch, train)` signature; its
`train=False` evaluates in the chosen mode (batch mode ignores `train` and returns the
given state), so the instruments need no second code path. Recalibration needs the
model's graph: `transjax.functional.make_loss_fn` records it as `loss_fn.graphdef`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from transjax import functional
from transjax import params as params_lib

MODES = ("batch", "recalibrated", "running")


def check_mode(mode: str) -> str:
  """`mode` if it is one of MODES; else one clear ValueError naming them."""
  if mode not in MODES:
    raise ValueError(f"bn_mode must be one of {MODES}, got {mode!r}.")
  return mode


def batchnorm_layers(model: nnx.Module) -> list[tuple[str, nnx.BatchNorm]]:
  """(name, module) of every BatchNorm of `model`, names as the parameter paths use them."""
  return [(params_lib.path_str(path), m) for path, m in nnx.iter_modules(model)
          if isinstance(m, nnx.BatchNorm)]


def has_statistics(state: Any) -> bool:
  """Whether a model's non-parameter state holds anything (in transjax models: BatchNorm
  statistics). Without it every mode gives the same function."""
  return bool(jax.tree.leaves(state))


@functools.lru_cache(maxsize=32)
def batch_statistics_loss(loss_fn: Callable) -> Callable:
  """`loss_fn` whose every call uses batch statistics and returns the given state; the
  same object for the same `loss_fn`, so what an instrument compiles per loss function is
  compiled once."""

  def batch_loss(params, state, batch, train: bool = False):
    del train
    loss, aux = loss_fn(params, state, batch, True)
    return loss, {**aux, "state": state}

  batch_loss.graphdef = getattr(loss_fn, "graphdef", None)
  return batch_loss


def recalibrate(loss_fn: Callable, params: Any, state: Any, batches: Any) -> Any:
  """The state with every BatchNorm's running statistics replaced by the data's.

  `batches`: one batch dict or a sequence of them. One forward pass per batch in train
  mode; with batch i (from 1) the momentum is (i - 1) / i, so the result is the equal-weight
  average of the batches' statistics (for one batch: exactly its statistics, the biased
  variance BatchNorm normalises with). Other state (none in transjax models) is what train
  mode leaves. `loss_fn` must carry its model's graph (`make_loss_fn` sets
  `loss_fn.graphdef`).
  """
  graphdef = getattr(loss_fn, "graphdef", None)
  if graphdef is None:
    raise ValueError(
        "bn_mode='recalibrated' needs the model's graph to reset its BatchNorm statistics; "
        "pass a loss from transjax.functional.make_loss_fn(graphdef), or use "
        "bn_mode='batch' or 'running'.")
  return recalibrated_state(graphdef, params, state, batches)


def recalibrated_state(graphdef: nnx.GraphDef, params: Any, state: Any, batches: Any) -> Any:
  """`recalibrate` for a model given as (graphdef, params, state)."""
  batches = [batches] if functional.is_one_batch(batches) else list(batches)
  step = _recalibration_step(graphdef)
  for i, batch in enumerate(batches, start=1):
    state = step(params, state, functional.as_batch(batch)["image"], jnp.float32((i - 1) / i))
  return state


@functools.lru_cache(maxsize=16)
def _recalibration_step(graphdef):

  @jax.jit
  def step(params, state, images, momentum):
    model = functional.merge(graphdef, params, state)
    takes_train = functional.accepts_keyword(model, "train")
    for _, bn in batchnorm_layers(model):
      bn.momentum = momentum
      if not takes_train:  # a model of one's own: its BatchNorms in train mode directly
        bn.use_running_average = False
    model(images, **({"train": True} if takes_train else {}))
    return nnx.state(model, nnx.Not(nnx.Param))

  return step


def prepare(loss_fn: Callable, params: Any, state: Any, batches: Any,
            mode: str) -> tuple[Callable, Any]:
  """(loss_fn, state) whose `loss_fn(params, state, batch, False)` is evaluated in `mode`.

  "running": unchanged. "recalibrated": the same loss, `state` recalibrated on `batches`
  at `params` (`recalibrate`). "batch": the batch-statistics loss, `state` unchanged.
  A model without BatchNorm gives the same function in every mode.
  """
  check_mode(mode)
  if mode == "running":
    return loss_fn, state
  if mode == "batch":
    return batch_statistics_loss(loss_fn), state
  return loss_fn, recalibrate(loss_fn, params, state, batches)


def statistics_mismatch(loss_fn: Callable, params: Any, state: Any,
                        batch: Mapping[str, Any]) -> dict[str, float]:
  """The loss and accuracy on `batch` with running and with batch statistics: how far
  apart the two functions are at `params` (0 for a model without BatchNorm)."""
  running = loss_fn(params, state, batch, False)
  batched = batch_statistics_loss(loss_fn)(params, state, batch, False)
  return {"running_loss": float(running[0]), "batch_loss": float(batched[0]),
          "running_accuracy": float(running[1]["accuracy"]),
          "batch_accuracy": float(batched[1]["accuracy"])}

