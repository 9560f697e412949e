"""Models by name: `build_model("lenet" | "resnet18" | "resnet50" | "resnet_tiny" |
"efficientnet_lite0" ... "efficientnet_lite4", ...)`.

Every model is an `nnx.Module` called as `model(images_BxHxWxC, train=False, taps=None)`
returning logits, with its classifier head under the attribute `model.head_name` ("fc").
`fixed`-mode training also passes `frozen_features=True` (BatchNorm below the head keeps
its running statistics); a model of one's own needs that argument only for fixed mode.
"""

from __future__ import annotations

from flax import nnx

from transjax.models.heads import HEAD_KINDS, MLPHead, make_head
from transjax.models.lenet import LeNet

EFFICIENTNET_NAMES = tuple(f"efficientnet_lite{i}" for i in range(5))
MODEL_NAMES = ("lenet", "resnet18", "resnet50", "resnet_tiny") + EFFICIENTNET_NAMES


def build_model(name: str, num_classes: int, *, in_channels: int = 3, input_size: int = 32,
                head: str = "linear", seed: int = 0) -> nnx.Module:
  """Builds a freshly initialised model; the same seed gives the same weights.

  Args:
    name: one of `MODEL_NAMES`.
    num_classes: size of the head's output.
    in_channels: 1 for grey, 3 for RGB inputs.
    input_size: side of the square input (LeNet needs it to size fc1; ResNets use it to
      pick the small-image stem for inputs under 64 pixels; EfficientNet-Lite needs at
      least its total stride, 32).
    head: "linear" or "mlp" (the paper's fixed-feature classifier).
    seed: initialisation seed.
  """
  if head not in HEAD_KINDS:
    raise ValueError(f"Unknown head {head!r}; choose one of {HEAD_KINDS}.")
  if num_classes < 1:
    raise ValueError(f"num_classes must be positive, got {num_classes}.")
  rngs = nnx.Rngs(seed)
  if name == "lenet":
    return LeNet(num_classes, in_channels=in_channels, input_size=input_size, head=head,
                 rngs=rngs)
  if name in ("resnet18", "resnet50", "resnet_tiny"):
    from transjax.models import resnet  # pylint: disable=import-outside-toplevel
    return resnet.build(name, num_classes, in_channels=in_channels, input_size=input_size,
                        head=head, rngs=rngs)
  if name in EFFICIENTNET_NAMES:
    from transjax.models import efficientnet  # pylint: disable=import-outside-toplevel
    return efficientnet.build(name, num_classes, in_channels=in_channels,
                              input_size=input_size, head=head, rngs=rngs)
  raise ValueError(f"Unknown model {name!r}; choose one of {MODEL_NAMES}.")


__all__ = ["EFFICIENTNET_NAMES", "HEAD_KINDS", "MLPHead", "MODEL_NAMES", "LeNet", "build_model", "make_head"]
