"""LeNet-5 (LeCun et al. 1998) with the parts the paper measures by name.

conv1 (the paper's psi1): 6 filters 5x5; 2x2 max-pool; conv2 (psi2): 16 filters 5x5;
2x2 max-pool; fc1 120, fc2 84, then the head `fc` (the paper's W). ReLU and max-pooling,
as in the PyTorch LeNet used by the paper's digit experiments, instead of the original
scaled tanh and trainable subsampling. For 28x28 inputs conv1 pads by 2, which is the
original design's 32x32 input with the digit centred; any other size is used unpadded.
Each conv -> pool block is `ops.conv_relu_pool` (relu(max_pool(conv(x)))), which a
landscape grid computes with the convolution's output laid out for the pool.
"""

from __future__ import annotations

import jax
from flax import nnx

from transjax import ops
from transjax.models.heads import apply_head, make_head
from transjax.models.taps import tap


class LeNet(nnx.Module):
  """LeNet-5 for (B, H, W, C) inputs; `input_size` and `in_channels` are configurable."""

  head_name = "fc"

  def __init__(self, num_classes: int = 10, *, in_channels: int = 1, input_size: int = 28,
               head: str = "linear", rngs: nnx.Rngs):
    if input_size < 12:
      raise ValueError(f"LeNet needs inputs of at least 12x12 pixels, got {input_size}.")
    conv1_pad = 2 if input_size == 28 else 0
    self.conv1 = ops.Conv(in_channels, 6, (5, 5), padding=conv1_pad, rngs=rngs)
    size = (input_size + 2 * conv1_pad - 4) // 2
    self.conv2 = ops.Conv(6, 16, (5, 5), padding=0, rngs=rngs)
    size = (size - 4) // 2
    if size < 1:
      raise ValueError(f"LeNet input {input_size}x{input_size} is too small for two 5x5 convs.")
    self.fc1 = nnx.Linear(16 * size * size, 120, rngs=rngs)
    self.fc2 = nnx.Linear(120, 84, rngs=rngs)
    self.fc = make_head(head, 84, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, train: bool = False, taps=None,
               frozen_features: bool = False) -> jax.Array:
    del frozen_features  # no BatchNorm below the head
    x = ops.conv_relu_pool(self.conv1, tap(x, "conv1", taps))
    x = ops.conv_relu_pool(self.conv2, tap(x, "conv2", taps))
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(self.fc1(tap(x, "fc1", taps)))
    x = jax.nn.relu(self.fc2(tap(x, "fc2", taps)))
    return apply_head(self.fc, tap(x, "fc", taps), train)
