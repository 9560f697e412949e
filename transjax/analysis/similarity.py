"""How far a dataset sits from a pretrained network's source data, read off its BatchNorm.

Each BatchNorm layer of a pretrained network stores the running mean and variance of its
input channels over the source data (ImageNet, for ImageNet weights). Passing target images
through the network in training mode gives the same statistics for the target; the gap
between the two, layer by layer, measures how unlike the source the target looks to this
network, without training anything and without the source data (the observation behind
AdaBN, Li et al. 2016).

    d = batchnorm_distance(model, images)      # {"mean": 0.83, "layers": {"stem/bn": ...}}

Per channel the distance is the 2-Wasserstein distance between the Gaussians N(mu_t, s_t^2)
(target) and N(mu_s, s_s^2) (source), in units of the source's standard deviation:
sqrt(((mu_t - mu_s)^2 + (s_t - s_s)^2) / s_s^2); a layer's value is the mean over its channels
and `mean` the mean over layers. Zero when the target's statistics equal the stored ones;
smaller is more similar.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from transjax import params as params_lib
from transjax.analysis.batchnorm import batchnorm_layers


def stored_statistics(model: nnx.Module) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{layer: (running mean, running var)} of each BatchNorm of `model`, in float64."""
  return {name: (np.asarray(bn.mean[...], np.float64), np.asarray(bn.var[...], np.float64))
          for name, bn in batchnorm_layers(model)}


def target_statistics(model: nnx.Module, images: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{layer: (mean, var)} of each BatchNorm's input over `images` (one batch, train mode).

  Runs a copy of `model` with BatchNorm momentum 0, so its running statistics become the
  batch's; `model` itself is left unchanged.
  """
  probe = nnx.clone(model, arrays=True)   # fresh buffers: the statistics update in place
  layers = batchnorm_layers(probe)
  if not layers:
    raise ValueError(f"{type(model).__name__} has no BatchNorm layer to compare statistics of.")
  for _, bn in layers:
    bn.momentum = 0.0
  probe(jnp.asarray(images), train=True)
  return stored_statistics(probe)


def batchnorm_distance(model: nnx.Module, images: Any, *, skip_prefix: str = "") -> dict[str, Any]:
  """{"mean": float, "layers": {layer: float}}: the target's BatchNorm statistics against the
  ones `model` stores (see the module docstring). Layers under `skip_prefix` (e.g. a new,
  untrained head) are left out."""
  stored = stored_statistics(model)
  measured = target_statistics(model, images)
  per_layer = {}
  for name, (mu_s, var_s) in stored.items():
    if skip_prefix and params_lib.under(name, skip_prefix):
      continue
    mu_t, var_t = measured[name]
    sd_s, sd_t = np.sqrt(np.maximum(var_s, 0.0)), np.sqrt(np.maximum(var_t, 0.0))
    w2 = ((mu_t - mu_s) ** 2 + (sd_t - sd_s) ** 2) / np.maximum(var_s, 1e-12)
    per_layer[name] = float(np.mean(np.sqrt(w2)))
  return {"mean": float(np.mean(list(per_layer.values()))), "layers": per_layer}
