"""Classifier heads: a linear layer, and the paper's fixed-feature classifier.

Appendix A: "the downstream classifier is a two-layer ReLU network with Batch-Norm and
Leaky-ReLU non-linearity. The number of hidden unit is 512."
"""

from __future__ import annotations

import jax
from flax import nnx

from transjax.models.taps import tap

# torchvision's BatchNorm2d(momentum=0.1) updates running = 0.9 running + 0.1 batch;
# in Flax terms that is momentum 0.9. eps 1e-5 as torchvision.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

HEAD_KINDS = ("linear", "mlp")


class MLPHead(nnx.Module):
  """Linear(in, hidden) -> BatchNorm -> LeakyReLU -> Linear(hidden, classes)."""

  def __init__(self, in_features: int, num_classes: int, *, hidden: int = 512,
               negative_slope: float = 0.01, rngs: nnx.Rngs):
    self.fc1 = nnx.Linear(in_features, hidden, rngs=rngs)
    self.bn = nnx.BatchNorm(hidden, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, rngs=rngs)
    self.fc2 = nnx.Linear(hidden, num_classes, rngs=rngs)
    self.negative_slope = negative_slope

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = self.bn(self.fc1(x), use_running_average=not train)
    return self.fc2(jax.nn.leaky_relu(x, self.negative_slope))


def make_head(kind: str, in_features: int, num_classes: int, *, rngs: nnx.Rngs) -> nnx.Module:
  """Builds a head by name: "linear" (nnx.Linear) or "mlp" (`MLPHead`, 512 hidden units)."""
  if kind == "linear":
    return nnx.Linear(in_features, num_classes, rngs=rngs)
  if kind == "mlp":
    return MLPHead(in_features, num_classes, rngs=rngs)
  raise ValueError(f"Unknown head {kind!r}; choose one of {HEAD_KINDS}.")


def apply_head(head: nnx.Module, x: jax.Array, train: bool) -> jax.Array:
  """Calls a head made by `make_head` (only `MLPHead` takes the train flag)."""
  if isinstance(head, MLPHead):
    return head(x, train)
  return head(x)


class FeaturesAndHead(nnx.Module):
  """A model made of `features(x, train, taps)` (pooled features) and the head `self.fc`.

  Subclasses (ResNet, EfficientNet) define `features`; this gives them the one call
  signature every transjax model has.
  """

  def __call__(self, x: jax.Array, train: bool = False, taps=None,
               frozen_features: bool = False) -> jax.Array:
    """Logits; with `frozen_features` the BatchNorms below the head use their running
    statistics even when `train` (a fixed feature extractor: see functional.make_loss_fn)."""
    feats = self.features(x, train and not frozen_features, taps)
    return apply_head(self.fc, tap(feats, "fc", taps), train)
