"""How far a dataset sits from a pretrained network's source data, read off its BatchNorm.

Each BatchNorm layer of a pretrained network stores the running mean and variance of its
input channels over the source data (ImageNet, for ImageNet weights). Passing target images
through the network in training mode gives the same statistics for the target; the gap
between the two, layer by layer, measures how unlike the source the target looks to this
network, without training anything and without the source data (the observation behind
AdaBN, Li et al. 2016).

    d = batchnorm_distance(model, images)      # {"mean": 0.83, "layers": {"stem/bn": ...}}
    k = kernel_complexity(head_features(model, images), labels)     # sees the labels too

Per channel the distance is the 2-Wasserstein distance between the Gaussians N(mu_t, s_t^2)
(target) and N(mu_s, s_s^2) (source), in units of the source's standard deviation:
sqrt(((mu_t - mu_s)^2 + (s_t - s_s)^2) / s_s^2); a layer's value is the mean over its channels
and `mean` the mean over layers. Zero when the target's statistics equal the stored ones;
smaller is more similar.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from flax import nnx

from theory import gram
from transjax import functional
from transjax import params as params_lib
from transjax.analysis.batchnorm import batchnorm_layers, recalibrated_state
from transjax.models import taps as taps_lib


def stored_statistics(model: nnx.Module) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{layer: (running mean, running var)} of each BatchNorm of `model`, in float64."""
  return {name: (np.asarray(bn.mean[...], np.float64), np.asarray(bn.var[...], np.float64))
          for name, bn in batchnorm_layers(model)}


def target_statistics(model: nnx.Module, images: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{layer: (mean, var)} of each BatchNorm's input over `images` (one batch, train mode).

  The statistics are the batch's, recalibrated as the instruments' bn_mode="recalibrated"
  does (`batchnorm.recalibrated_state`); `model` itself is left unchanged.
  """
  if not batchnorm_layers(model):
    raise ValueError(f"{type(model).__name__} has no BatchNorm layer to compare statistics of.")
  graphdef, params, state = functional.split(model)
  state = recalibrated_state(graphdef, params, state, {"image": jnp.asarray(images)})
  return stored_statistics(functional.merge(graphdef, params, state))


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


# --------------------------------------------------------------------------------------
# A similarity that sees labels: the theory's kernel complexity of the target on the
# pretrained features.


def head_features(model: nnx.Module, images: Any, *, batch_statistics: bool = True,
                  batch_size: int = 256) -> np.ndarray:
  """The features the head of `model` reads (its "fc" tap) for `images`, float64.

  `batch_statistics` (default): BatchNorm normalises each chunk of `batch_size` images with
  its own statistics, as the first fine-tuning steps see the network (a copy runs in train
  mode; `model` is unchanged); else the stored running statistics.
  """
  graphdef, state = nnx.split(model)   # merged anew inside `run`: `model` is not changed

  @jax.jit
  def run(state, x):
    m = nnx.merge(graphdef, state)
    values = taps_lib.TapValues()
    m(x, train=batch_statistics, taps=values)
    if "fc" not in values:
      raise ValueError(f"{type(model).__name__} has no 'fc' tap (the head's input); "
                       "tap the head's input as transjax.models do.")
    return values["fc"].reshape(x.shape[0], -1)

  images = np.asarray(images)
  parts = [np.asarray(run(state, jnp.asarray(images[i:i + batch_size])), np.float64)
           for i in range(0, len(images), batch_size)]
  return np.concatenate(parts)


KERNEL_RIDGE = 1e-3


def kernel_complexity(features: Any, labels: Any, *, ridge: float = KERNEL_RIDGE) -> float:
  """sqrt(2 tr(Y^T (H + lam I)^-1 Y) / (n C)): Theorem 2's fine-tuning deviation and Arora et
  al. (2019)'s generalisation bound of the target on the pretrained features.

  H is the theory's infinite-width ReLU Gram matrix (`theory.gram.gram_inf_sym`) of the
  features normalised to the unit sphere, Y the one-hot labels (n x C); dividing by C makes
  targets with different class counts comparable. Smaller: the labels are a smoother
  function of the pretrained representation, so fine-tuning moves the weights less (the
  paper's "more similar"); unlike `batchnorm_distance` it sees the labels. H is singular
  where two samples have parallel features (duplicates) and ill-conditioned where they
  nearly do, so a ridge lam = ridge * mean(diag H) (1e-3: H's diagonal is 1/2 on the sphere)
  bounds its condition number by about 1/ridge * n without changing well-separated samples'
  terms.
  """
  x = np.asarray(features, np.float64).reshape(len(labels), -1)
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  if not np.all(np.isfinite(x)) or np.any(norms == 0):
    raise ValueError("kernel_complexity: features must be finite and nonzero.")
  h = gram.gram_inf_sym(x / norms)
  labels = np.asarray(labels).astype(int)
  classes = np.unique(labels)
  y = (labels[:, None] == classes[None, :]).astype(np.float64)
  lam = ridge * float(np.mean(np.diag(h)))
  a = scipy.linalg.solve(h + lam * np.eye(len(h)), y, assume_a="pos")
  return float(np.sqrt(2.0 * np.sum(y * a) / (len(labels) * len(classes))))
