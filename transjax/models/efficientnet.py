"""EfficientNet-Lite0..4 (Tan & Le 2019; TensorFlow's `efficientnet_lite_builder`), in NHWC.

EfficientNet-Lite is EfficientNet for mobile accelerators: ReLU6 instead of swish, no
squeeze-and-excitation, and the stem (32 channels) and head (1280 channels) kept fixed
when the width multiplier scales the network, as are the repeats of the first and last
stage. Lite0 is the B0 block table unscaled (16 MBConv blocks, 4,652,008 parameters with
a 1000-class head). Conventions of the TensorFlow original, which the ImageNet weights of
`transjax.weights.efficientnet_pytorch` need:

- TF "SAME" padding: a stride-2 conv on an even input pads one pixel more at the bottom
  and right than at the top and left (not torch's symmetric padding);
- BatchNorm eps 1e-3, momentum 0.99 (TF's values; in torch terms momentum 0.01);
- inputs scaled as (x - 127) / 128 for x in [0, 255], which on transjax's [0, 1] pixel
  scale is mean 127/255 and std 128/255 (`transjax.weights.named.INPUT_MEAN`, `INPUT_STD`);
- convs without bias, each followed by BatchNorm; ReLU6 after the stem, the expansion,
  the depthwise conv and the head conv, none after the projection; the residual is
  added where a block keeps its stride 1 and its channel count.

Not included: stochastic depth ("drop connect") of the original training recipe. The
loss must be a deterministic function of the parameters (see `transjax.functional`),
and transfer from the pretrained weights does not need it.

Layer names (parameter paths), chosen so that one block or one layer is one path prefix:

    stem/conv, stem/bn
    blocks/<i>/expand/conv, blocks/<i>/expand/bn       (absent in blocks of expand ratio 1)
    blocks/<i>/depthwise/conv, blocks/<i>/depthwise/bn
    blocks/<i>/project/conv, blocks/<i>/project/bn
    head_conv/conv, head_conv/bn
    fc                                                   (the classifier head, `head_name`)

Activation taps (`transjax.models.taps`): "stem", "blocks.<i>" (each block's input),
"head_conv" and "fc".
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from transjax import ops
from transjax.models.heads import FeaturesAndHead, make_head
from transjax.models.taps import tap

BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
TOTAL_STRIDE = 32
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# TF's conv_kernel_initializer: N(0, 2 / fan_out), fan_out = kh * kw * out_channels, not
# truncated. For a depthwise kernel TF's out_channels is the multiplier (1), which is
# Flax's fan_in of the (kh, kw, 1, C) HWIO kernel.
_conv_init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_depthwise_init = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")


@dataclasses.dataclass(frozen=True)
class Stage:
  """One row of the B0 block table."""
  kernel: int
  stride: int
  expand_ratio: int
  channels: int
  repeats: int


# EfficientNet-B0's table (efficientnet_builder.py, _DEFAULT_BLOCKS_ARGS), input 32 channels.
B0_STAGES = (
    Stage(3, 1, 1, 16, 1),
    Stage(3, 2, 6, 24, 2),
    Stage(5, 2, 6, 40, 2),
    Stage(3, 2, 6, 80, 3),
    Stage(5, 1, 6, 112, 3),
    Stage(5, 2, 6, 192, 4),
    Stage(3, 1, 6, 320, 1),
)

# name: (width multiplier, depth multiplier, native resolution); efficientnet_lite_builder.
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
    "efficientnet_lite3": (1.2, 1.4, 280),
    "efficientnet_lite4": (1.4, 1.8, 300),
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
  """TF's round_filters: scale, round to a multiple of 8, never more than 10% down."""
  if width == 1.0:
    return channels
  scaled = channels * width
  rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * scaled:
    rounded += divisor
  return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
  return int(math.ceil(depth * repeats))


def block_table(width: float, depth: float) -> list[tuple[int, int, int, int, int]]:
  """(kernel, stride, expand ratio, in channels, out channels) per block, Lite scaling."""
  blocks = []
  in_ch = STEM_CHANNELS
  last = len(B0_STAGES) - 1
  for i, stage in enumerate(B0_STAGES):
    out_ch = round_filters(stage.channels, width)
    # Lite keeps the first and last stage's repeats fixed (fix_head_stem).
    repeats = stage.repeats if i in (0, last) else round_repeats(stage.repeats, depth)
    for j in range(repeats):
      blocks.append((stage.kernel, stage.stride if j == 0 else 1, stage.expand_ratio,
                     in_ch, out_ch))
      in_ch = out_ch
  return blocks


class ConvBN(nnx.Module):
  """A bias-free conv (TF "SAME" padding) and its BatchNorm: the `conv` / `bn` pair."""

  def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, *,
               depthwise: bool = False, rngs: nnx.Rngs):
    self.conv = ops.Conv(in_ch, out_ch, (kernel, kernel), strides=(stride, stride),
                         padding="SAME", use_bias=False,
                         feature_group_count=in_ch if depthwise else 1,
                         kernel_init=_depthwise_init if depthwise else _conv_init, rngs=rngs)
    self.bn = ops.BatchNorm(out_ch, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, rngs=rngs)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.bn(self.conv(x), use_running_average=not train)


class MBConv(nnx.Module):
  """Inverted bottleneck: 1x1 expand, kxk depthwise (strided), 1x1 project, residual."""

  def __init__(self, kernel: int, stride: int, expand_ratio: int, in_ch: int, out_ch: int,
               *, rngs: nnx.Rngs):
    hidden = in_ch * expand_ratio
    self.expand = ConvBN(in_ch, hidden, 1, rngs=rngs) if expand_ratio != 1 else None
    self.depthwise = ConvBN(hidden, hidden, kernel, stride, depthwise=True, rngs=rngs)
    self.project = ConvBN(hidden, out_ch, 1, rngs=rngs)
    self.residual = stride == 1 and in_ch == out_ch

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    y = x if self.expand is None else jax.nn.relu6(self.expand(x, train))
    y = jax.nn.relu6(self.depthwise(y, train))
    y = self.project(y, train)
    return x + y if self.residual else y


class EfficientNetLite(FeaturesAndHead):
  """EfficientNet-Lite on (B, H, W, C) inputs scaled as (x - 127) / 128.

  Args:
    num_classes: size of the head's output.
    width: channel multiplier (1.0 for Lite0).
    depth: repeat multiplier (1.0 for Lite0).
    in_channels: 1 for grey, 3 for RGB.
    input_size: side of the square input; at least the total stride, 32.
    head: "linear" or "mlp" (see `transjax.models.heads`).
  """

  head_name = "fc"

  def __init__(self, num_classes: int, *, width: float = 1.0, depth: float = 1.0,
               in_channels: int = 3, input_size: int = 224, head: str = "linear",
               rngs: nnx.Rngs):
    if input_size < TOTAL_STRIDE:
      raise ValueError(
          f"EfficientNet-Lite needs inputs of at least {TOTAL_STRIDE}x{TOTAL_STRIDE} pixels "
          f"(its total stride is {TOTAL_STRIDE}), got {input_size}x{input_size}.")
    self.stem = ConvBN(in_channels, STEM_CHANNELS, 3, 2, rngs=rngs)
    table = block_table(width, depth)
    self.blocks = nnx.List([MBConv(*row, rngs=rngs) for row in table])
    self.head_conv = ConvBN(table[-1][-1], HEAD_CHANNELS, 1, rngs=rngs)
    self.num_features = HEAD_CHANNELS
    self.fc = make_head(head, HEAD_CHANNELS, num_classes, rngs=rngs)

  def features(self, x: jax.Array, train: bool = False, taps=None) -> jax.Array:
    """Globally average-pooled features (B, 1280) before the head."""
    x = jax.nn.relu6(self.stem(tap(x, "stem", taps), train))
    for i, block in enumerate(self.blocks):
      x = block(tap(x, f"blocks.{i}", taps), train)
    x = jax.nn.relu6(self.head_conv(tap(x, "head_conv", taps), train))
    return jnp.mean(x, axis=(1, 2))


def build(name: str, num_classes: int, *, in_channels: int = 3, input_size: int = 224,
          head: str = "linear", rngs: nnx.Rngs) -> EfficientNetLite:
  """Builds an EfficientNet-Lite by name ("efficientnet_lite0" ... "efficientnet_lite4")."""
  if name not in LITE_VARIANTS:
    raise ValueError(f"Unknown EfficientNet {name!r}; choose one of {tuple(LITE_VARIANTS)}.")
  width, depth, _ = LITE_VARIANTS[name]
  return EfficientNetLite(num_classes, width=width, depth=depth, in_channels=in_channels,
                          input_size=input_size, head=head, rngs=rngs)
