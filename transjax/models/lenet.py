"""LeNet-5 (LeCun et al. 1998) with the parts the paper measures by name.

conv1 (the paper's psi1): 6 filters 5x5; 2x2 max-pool; conv2 (psi2): 16 filters 5x5;
2x2 max-pool; fc1 120, fc2 84, then the head `fc` (the paper's W). ReLU and max-pooling,
as in the PyTorch LeNet used by the paper's digit experiments, instead of the original
scaled tanh and trainable subsampling. For 28x28 inputs conv1 pads by 2, which is the
original design's 32x32 input with the digit centred; any other size is used unpadded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from transjax.models.conv import conv_general_dilated
from transjax.models.heads import apply_head, make_head
from transjax.models.taps import tap


def _max_of_four_slices(x: jax.Array) -> jax.Array:
  top = jnp.maximum(x[:, 0::2, 0::2, :], x[:, 0::2, 1::2, :])
  bottom = jnp.maximum(x[:, 1::2, 0::2, :], x[:, 1::2, 1::2, :])
  return jnp.maximum(top, bottom)


@jax.custom_jvp
def _max_pool_2x2(x: jax.Array) -> jax.Array:
  return _max_of_four_slices(x)


@_max_pool_2x2.defjvp
def _max_pool_2x2_jvp(primals, tangents):
  # Under differentiation the reshaped max, with reduce_max's derivative (the tangent
  # averaged over the window's maxima): its gradient is one masked broadcast, where the
  # four strided slices' is four interior pads (LeNet's training step at batch 64:
  # 5.1-6.5 ms against 12-17 ms, 2-core Xeon); without it the slices' faster forward.
  # The count is kept >= 1: with jax_disable_most_optimizations XLA recomputed the
  # shifted conv1 feeding the pool with different rounding, so a window could have no
  # element equal to its max (0/0 = NaN in reduce_max's own rule).
  (x,), (t,) = primals, tangents
  n, h, w, c = x.shape
  xr = x.reshape(n, h // 2, 2, w // 2, 2, c)
  y = jnp.max(xr, axis=(2, 4))
  at_max = (xr == y[:, :, None, :, None, :]).astype(x.dtype)
  count = jnp.maximum(jnp.sum(at_max, axis=(2, 4)), 1.0)
  tr = t.reshape(n, h // 2, 2, w // 2, 2, c)
  return y, jnp.sum(tr * at_max, axis=(2, 4)) / count


def relu_max_pool_2x2(x: jax.Array) -> jax.Array:
  """`max_pool(relu(x), 2x2, stride 2)` (VALID) as relu of the max of four strided slices.

  The same values; the same gradient wherever the window's maximum is unique (ties need
  equal pre-activations). Pooling before the ReLU quarters its work, and XLA:CPU fuses the
  slices into one loop: forward 3x faster than reduce_window (256 x 28 x 28 x 6 float32,
  2-core Xeon). The derivatives are the reshaped max's (`_max_pool_2x2_jvp`).
  """
  h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
  return jax.nn.relu(_max_pool_2x2(x[:, :h, :w, :]))


class LeNet(nnx.Module):
  """LeNet-5 for (B, H, W, C) inputs; `input_size` and `in_channels` are configurable."""

  head_name = "fc"

  def __init__(self, num_classes: int = 10, *, in_channels: int = 1, input_size: int = 28,
               head: str = "linear", rngs: nnx.Rngs):
    if input_size < 12:
      raise ValueError(f"LeNet needs inputs of at least 12x12 pixels, got {input_size}.")
    conv1_pad = 2 if input_size == 28 else 0
    self.conv1 = nnx.Conv(in_channels, 6, (5, 5), padding=conv1_pad,
                          conv_general_dilated=conv_general_dilated, rngs=rngs)
    size = (input_size + 2 * conv1_pad - 4) // 2
    self.conv2 = nnx.Conv(6, 16, (5, 5), padding=0, conv_general_dilated=conv_general_dilated,
                          rngs=rngs)
    size = (size - 4) // 2
    if size < 1:
      raise ValueError(f"LeNet input {input_size}x{input_size} is too small for two 5x5 convs.")
    self.fc1 = nnx.Linear(16 * size * size, 120, rngs=rngs)
    self.fc2 = nnx.Linear(120, 84, rngs=rngs)
    self.fc = make_head(head, 84, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, train: bool = False, taps=None,
               frozen_features: bool = False) -> jax.Array:
    del frozen_features  # no BatchNorm below the head
    x = relu_max_pool_2x2(self.conv1(tap(x, "conv1", taps)))
    x = relu_max_pool_2x2(self.conv2(tap(x, "conv2", taps)))
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(self.fc1(tap(x, "fc1", taps)))
    x = jax.nn.relu(self.fc2(tap(x, "fc2", taps)))
    return apply_head(self.fc, tap(x, "fc", taps), train)
