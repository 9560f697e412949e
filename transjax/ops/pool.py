"""LeNet's pooling: `relu(max_pool(x, 2x2, stride 2))`, faster on CPU.

With the switch on, on CPU (`transjax.ops.switch`), the max of four strided slices, with
the reshaped max's derivative (`_max_pool_2x2_jvp`); otherwise `nnx.max_pool` (a
`reduce_window`) and its own derivative. Values are the same; gradients are the same
wherever a window's maximum is unique.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from transjax.ops import switch


def window_max(a, b, c, d):
  return jnp.maximum(jnp.maximum(a, b), jnp.maximum(c, d))


@jax.custom_jvp
def _max_pool_2x2(x: jax.Array) -> jax.Array:
  return window_max(x[:, 0::2, 0::2, :], x[:, 0::2, 1::2, :], x[:, 1::2, 0::2, :],
                    x[:, 1::2, 1::2, :])


@_max_pool_2x2.defjvp
def _max_pool_2x2_jvp(primals, tangents):
  # Under differentiation the reshaped max, with reduce_max's derivative (the tangent
  # averaged over the window's maxima): its gradient is one masked broadcast, where the
  # four strided slices' is four interior pads (LeNet's training step took about twice
  # as long with them: docs/analysis.md, "Measurements behind the code"); without it
  # the slices' faster forward.
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
  """`max_pool(relu(x), 2x2, stride 2)` (VALID); on CPU as relu of the max of four strided
  slices.

  The same values; the same gradient wherever the window's maximum is unique (ties need
  equal pre-activations). Pooling before the ReLU quarters its work, and XLA:CPU fuses the
  slices into one loop, a faster forward than reduce_window (docs/analysis.md,
  "Measurements behind the code"). The derivatives are the reshaped max's
  (`_max_pool_2x2_jvp`).
  """
  if not switch.active():
    return jax.nn.relu(nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID"))
  h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
  return jax.nn.relu(_max_pool_2x2(x[:, :h, :w, :]))
