"""ResNet-18 / ResNet-50 with torchvision's architecture, names and initialisation, in NHWC.

torchvision's ResNet "v1.5": the bottleneck strides on its 3x3 conv2, convs have no bias,
BatchNorm uses momentum 0.1 (0.9 in Flax terms) and eps 1e-5, convs are initialised
Kaiming-normal (fan_out, ReLU gain) and BatchNorm with scale 1 and bias 0. Attribute names
follow torchvision so `transjax.weights.torchvision_resnet` maps a state dict one to one:

    conv1, bn1, layer1..layer4 (nnx.List of blocks), fc
    block: conv1, bn1, conv2, bn2[, conv3, bn3][, downsample.conv, downsample.bn]

torchvision's `layer3.0.downsample.0` / `.1` are `layer3/0/downsample/conv` / `bn` here.
Paddings are explicit (torch's symmetric padding), never "SAME", which pads strided convs
asymmetrically and would not reproduce torchvision's outputs.

For inputs under 64 pixels `build` picks a CIFAR-style stem (3x3 stride-1 conv1 and no
max-pool); such a model cannot take torchvision's 7x7 conv1 weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from transjax import ops
from transjax.models.heads import BN_EPSILON, BN_MOMENTUM, FeaturesAndHead, make_head
from transjax.models.taps import tap

# torch.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"): N(0, 2 / fan_out),
# not truncated; for an HWIO kernel fan_out = H * W * O.
conv_kernel_init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")

SMALL_INPUT_THRESHOLD = 64


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, *, rngs: nnx.Rngs) -> nnx.Conv:
  pad = kernel // 2
  return ops.Conv(in_ch, out_ch, (kernel, kernel), strides=(stride, stride),
                  padding=((pad, pad), (pad, pad)), use_bias=False,
                  kernel_init=conv_kernel_init, rngs=rngs)


def _bn(features: int, *, zero_scale: bool = False, rngs: nnx.Rngs) -> nnx.BatchNorm:
  scale_init = nnx.initializers.zeros if zero_scale else nnx.initializers.ones
  return nnx.BatchNorm(features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                       scale_init=scale_init, rngs=rngs)


class Downsample(nnx.Module):
  """1x1 strided conv + BatchNorm on the shortcut (torchvision's `downsample.0` / `.1`)."""

  def __init__(self, in_ch: int, out_ch: int, stride: int, *, rngs: nnx.Rngs):
    self.conv = _conv(in_ch, out_ch, 1, stride, rngs=rngs)
    self.bn = _bn(out_ch, rngs=rngs)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.bn(self.conv(x), use_running_average=not train)


class BasicBlock(nnx.Module):
  """Two 3x3 convs (ResNet-18/34); the first one strides."""

  expansion = 1

  def __init__(self, in_ch: int, planes: int, stride: int = 1, *,
               zero_init_residual: bool = False, rngs: nnx.Rngs):
    out_ch = planes * self.expansion
    self.conv1 = _conv(in_ch, planes, 3, stride, rngs=rngs)
    self.bn1 = _bn(planes, rngs=rngs)
    self.conv2 = _conv(planes, planes, 3, 1, rngs=rngs)
    self.bn2 = _bn(planes, zero_scale=zero_init_residual, rngs=rngs)
    self.downsample = (Downsample(in_ch, out_ch, stride, rngs=rngs)
                       if stride != 1 or in_ch != out_ch else None)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    ura = not train
    y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ura))
    y = self.bn2(self.conv2(y), use_running_average=ura)
    shortcut = x if self.downsample is None else self.downsample(x, train)
    return jax.nn.relu(y + shortcut)


class Bottleneck(nnx.Module):
  """1x1 reduce, 3x3 (strided: v1.5), 1x1 expand by 4 (ResNet-50)."""

  expansion = 4

  def __init__(self, in_ch: int, planes: int, stride: int = 1, *,
               zero_init_residual: bool = False, rngs: nnx.Rngs):
    out_ch = planes * self.expansion
    self.conv1 = _conv(in_ch, planes, 1, 1, rngs=rngs)
    self.bn1 = _bn(planes, rngs=rngs)
    self.conv2 = _conv(planes, planes, 3, stride, rngs=rngs)
    self.bn2 = _bn(planes, rngs=rngs)
    self.conv3 = _conv(planes, out_ch, 1, 1, rngs=rngs)
    self.bn3 = _bn(out_ch, zero_scale=zero_init_residual, rngs=rngs)
    self.downsample = (Downsample(in_ch, out_ch, stride, rngs=rngs)
                       if stride != 1 or in_ch != out_ch else None)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    ura = not train
    y = jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ura))
    y = jax.nn.relu(self.bn2(self.conv2(y), use_running_average=ura))
    y = self.bn3(self.conv3(y), use_running_average=ura)
    shortcut = x if self.downsample is None else self.downsample(x, train)
    return jax.nn.relu(y + shortcut)


class ResNet(FeaturesAndHead):
  """A torchvision-style ResNet on (B, H, W, C) inputs.

  Args:
    stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
    block: `BasicBlock` or `Bottleneck`.
    num_classes: size of the head's output.
    in_channels: 1 for grey, 3 for RGB.
    width: channels of the stem and the first stage (64 in torchvision); stage i has
      `width * 2**i` planes.
    small_input: 3x3 stride-1 stem without max-pool (CIFAR style) instead of torchvision's
      7x7/2 conv + 3x3/2 max-pool.
    head: "linear" or "mlp" (see `transjax.models.heads`).
    zero_init_residual: zero the last BatchNorm scale of each block (off, as torchvision).
  """

  head_name = "fc"

  def __init__(self, stage_sizes: Sequence[int], block: type[nnx.Module], num_classes: int,
               *, in_channels: int = 3, width: int = 64, small_input: bool = False,
               head: str = "linear", zero_init_residual: bool = False, rngs: nnx.Rngs):
    self.small_input = small_input
    if small_input:
      self.conv1 = _conv(in_channels, width, 3, 1, rngs=rngs)
    else:
      self.conv1 = _conv(in_channels, width, 7, 2, rngs=rngs)
    self.bn1 = _bn(width, rngs=rngs)
    in_ch = width
    for i, num_blocks in enumerate(stage_sizes):
      planes = width * 2**i
      blocks = []
      for j in range(num_blocks):
        stride = 2 if (i > 0 and j == 0) else 1
        blocks.append(block(in_ch, planes, stride, zero_init_residual=zero_init_residual,
                            rngs=rngs))
        in_ch = planes * block.expansion
      setattr(self, f"layer{i + 1}", nnx.List(blocks))
    self.num_stages = len(stage_sizes)
    self.num_features = in_ch
    self.fc = make_head(head, in_ch, num_classes, rngs=rngs)

  def stages(self) -> list[nnx.List]:
    return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

  def features(self, x: jax.Array, train: bool = False, taps=None) -> jax.Array:
    """Globally average-pooled features (B, num_features) before the head."""
    x = self.conv1(tap(x, "conv1", taps))
    x = jax.nn.relu(self.bn1(x, use_running_average=not train))
    if not self.small_input:
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, stage in enumerate(self.stages()):
      for j, blk in enumerate(stage):
        x = blk(tap(x, f"layer{i + 1}.{j}", taps), train)
    return jnp.mean(x, axis=(1, 2))


CONFIGS = {
    # name: (stage_sizes, block, width)
    "resnet18": ((2, 2, 2, 2), BasicBlock, 64),
    "resnet50": ((3, 4, 6, 3), Bottleneck, 64),
    "resnet_tiny": ((1, 1, 1, 1), BasicBlock, 16),
}


def build(name: str, num_classes: int, *, in_channels: int = 3, input_size: int = 224,
          head: str = "linear", rngs: nnx.Rngs) -> ResNet:
  """Builds a ResNet by name; inputs under 64 pixels get the small-image stem."""
  if name not in CONFIGS:
    raise ValueError(f"Unknown ResNet {name!r}; choose one of {tuple(CONFIGS)}.")
  stage_sizes, block, width = CONFIGS[name]
  return ResNet(stage_sizes, block, num_classes, in_channels=in_channels, width=width,
                small_input=input_size < SMALL_INPUT_THRESHOLD, head=head, rngs=rngs)


def ResNet18(num_classes: int = 1000, **kwargs) -> ResNet:  # pylint: disable=invalid-name
  return ResNet((2, 2, 2, 2), BasicBlock, num_classes, **kwargs)


def ResNet50(num_classes: int = 1000, **kwargs) -> ResNet:  # pylint: disable=invalid-name
  return ResNet((3, 4, 6, 3), Bottleneck, num_classes, **kwargs)
