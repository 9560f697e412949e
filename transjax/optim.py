"""What trains and how: the frozen-part mask, SGD with momentum, the train-state layout.

`fixed` mode trains only the head `fc` (and its BatchNorm state); `scratch` and
`finetune` train everything. The mask goes into `optax.multi_transform`, so freezing is
not a second code path. `train_state_like` is the layout of a checkpoint, which restoring
a run's weights needs as well as training.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from transjax import params as params_lib

HEAD = "fc"


def trainable_mask(config, tree) -> Any:
  """True where `tree` (parameters or BatchNorm state) trains: all of it, or in `fixed`
  mode only the head."""
  flat = [config.mode != "fixed" or path == HEAD or path.startswith(HEAD + "/")
          for path, _ in params_lib.named_leaves(tree)]
  return jax.tree.unflatten(jax.tree.structure(tree), flat)


def make_optimizer(config, num_steps: int, mask: Any) -> optax.GradientTransformation:
  """SGD with momentum and (PyTorch-style, coupled) weight decay on the trainable part."""
  o = config.optim
  if o.schedule == "step" and o.decay_at:
    boundaries = {int(f * num_steps): o.decay_factor for f in sorted(o.decay_at)}
    lr = optax.piecewise_constant_schedule(o.lr, boundaries)
  else:
    lr = optax.constant_schedule(o.lr)
  sgd = optax.chain(optax.add_decayed_weights(o.weight_decay),
                    optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov))
  labels = jax.tree.map(lambda m: "train" if m else "frozen", mask)
  return optax.multi_transform({"train": sgd, "frozen": optax.set_to_zero()}, labels)


def train_state_like(params, state, config) -> dict[str, Any]:
  mask = trainable_mask(config, params)
  opt_state = make_optimizer(config, 1, mask).init(params)
  return {"step": jnp.zeros((), jnp.int32), "params": params, "state": state,
          "opt_state": opt_state, "nonfinite_step": jnp.full((), -1, jnp.int32)}
