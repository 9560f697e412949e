"""The model a training config names, built fresh: the shape every loaded weight must fit.

    model = build_from_config(config, num_classes)   # config.model, seeded by config.seed
    n = param_count(config, num_classes)             # from shapes alone
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
from flax import nnx

from transjax import functional
from transjax.models import build_model


def build_from_config(config: ml_collections.ConfigDict, num_classes: int) -> nnx.Module:
  m = config.model
  model = build_model(m.name, num_classes, in_channels=m.in_channels, input_size=m.input_size,
                      head=m.head, seed=config.seed)
  if m.get("bn_momentum", 0.0):
    for _, module in nnx.iter_modules(model):
      if isinstance(module, nnx.BatchNorm):
        module.momentum = float(m.bn_momentum)
  return model


def param_count(config: ml_collections.ConfigDict, num_classes: int) -> int:
  """The number of trainable parameters `build_from_config` gives, from shapes alone (no
  weights are initialised)."""
  model = nnx.eval_shape(lambda: build_from_config(config, num_classes))
  _, params, _ = functional.split(model)
  return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(params)))
