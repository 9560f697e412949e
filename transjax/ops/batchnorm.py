"""`BatchNorm`: `nnx.BatchNorm` whose per-channel sums are matmuls on CPU.

BatchNorm over NHWC activations sums over the rows of the (N*H*W, C) view four times in
a training step: the batch mean and mean of squares in the forward pass, and in the
backward pass the transposes of the per-channel broadcasts (the scale's and bias's
gradients, and the statistics' share of the input gradient). XLA:CPU's own reduction
kernels (the training step turns YNNPACK's off, `transjax.train.CPU_TRAIN_COMPILER_OPTIONS`)
run such column sums slowly, and slower still when the producer is fused into them (the
depthwise convolution's input gradient, a sum of k*k padded terms, recomputed inside each
of the BatchNorm's reductions below it); as a matmul with a ones vector the same sums ran
several times faster, with or without the fused producer (docs/analysis.md,
"Measurements behind the code").

So with the switch on (`transjax.ops.switch`) the sums are written as matmuls with a
ones vector, `rows_sum`, and the per-channel broadcasts as rank-1 matmuls,
`rows_broadcast`, whose transposes JAX writes as `ones @ cotangent`: every row sum of the
step, forward and backward, is a matmul (XLA:CPU runs it as a GEMV, and cannot fuse a
producer into it, so the producer is materialised once by an elementwise loop). The
statistics are taken in one pass (mean and mean of squares, Flax's `use_fast_variance`)
as one matmul of [x, x*x]; scale and shift are broadcast by one matmul too, so the
backward pass sums [g*x, g] in one matmul. Values are Flax's up to the order of float
additions; derivatives, vmap and per-example gradients are JAX's own of these jnp ops.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.custom_derivatives import SymbolicZero

from transjax.ops import switch

_HIGHEST = lax.Precision.HIGHEST


def rows_sum(x2d: jax.Array) -> jax.Array:
  """sum(x2d, axis=0) as `ones @ x2d` (a matmul XLA:CPU runs as a GEMV)."""
  ones = jnp.ones((1, x2d.shape[0]), x2d.dtype)
  return jnp.dot(ones, x2d, precision=_HIGHEST)[0]


def rows_broadcast(v: jax.Array, rows: int) -> jax.Array:
  """v (C,) repeated on `rows` rows as a rank-1 matmul `ones(rows, 1) @ v[None]`: XLA
  turns the product into a broadcast, and JAX transposes it into `ones @ cotangent`, a
  matmul where a broadcast's transpose would be a column reduction."""
  ones = jnp.ones((rows, 1), v.dtype)
  return jnp.dot(ones, v[None, :], precision=_HIGHEST)


def batch_norm(x: jax.Array, mean: jax.Array | None, var: jax.Array | None, scale: jax.Array,
               bias: jax.Array, epsilon: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(y, mean, var): BatchNorm of x (..., C) over all leading axes. With `mean`/`var`
  None the batch statistics are computed (train mode: mean and mean of squares in one
  pass, one `rows_sum` matmul, the variance clipped at 0 as Flax does) and differentiated
  through; otherwise those are used (eval mode)."""
  c = x.shape[-1]
  y, mean, var = _batch_norm(x.reshape(-1, c), mean, var, scale, bias, epsilon)
  return y.reshape(x.shape), mean, var


def _statistics(x2d):
  rows, c = x2d.shape
  sums = rows_sum(jnp.concatenate([x2d, x2d * x2d], axis=1)) / rows
  mean, mean_sq = sums[:c], sums[c:]
  return mean, mean_sq - mean * mean


def _batch_norm(x2d, mean, var, scale, bias, epsilon):
  train = mean is None

  # The primal is the plain formula (XLA fuses its broadcasts into one elementwise
  # loop); the tangent broadcasts the per-channel tangents by one `rows_broadcast`, so the
  # backward pass that JAX transposes from it sums [g*x, g] over the rows in one matmul.
  @jax.custom_jvp
  def norm(x2d, scale, bias, mean, var):
    if train:
      mean, raw = _statistics(x2d)
      var = jnp.maximum(0.0, raw)
    mul = lax.rsqrt(var + epsilon) * scale
    return x2d * mul + (bias - mean * mul), mean, var

  @functools.partial(norm.defjvp, symbolic_zeros=True)
  def _jvp(primals, tangents):
    x2d, scale, bias, mean, var = primals
    x_dot, scale_dot, bias_dot = (None if isinstance(t, SymbolicZero) else t
                                  for t in tangents[:3])
    rows, c = x2d.shape
    zero = jnp.zeros((c,), x2d.dtype)
    if train:
      mean, raw = _statistics(x2d)
      var = jnp.maximum(0.0, raw)
      if x_dot is None:
        mean_dot = var_dot = zero
      else:
        mean_dot = jnp.mean(x_dot, axis=0)
        raw_dot = 2.0 * jnp.mean(x2d * x_dot, axis=0) - 2.0 * mean * mean_dot
        # jnp.maximum(0, raw)'s derivative: 1 above 0, 0 below, 1/2 at 0.
        var_dot = raw_dot * jnp.where(raw > 0, 1.0, jnp.where(raw < 0, 0.0, 0.5)).astype(
            raw.dtype)
    else:  # the given statistics' own tangents, if any
      mean_dot, var_dot = (jnp.zeros_like(p) if isinstance(t, SymbolicZero) else t
                           for p, t in zip((mean, var), tangents[3:]))
    rstd = lax.rsqrt(var + epsilon)
    mul = rstd * scale
    rstd_dot = -0.5 * rstd / (var + epsilon) * var_dot
    mul_dot = rstd_dot * scale + (zero if scale_dot is None else rstd * scale_dot)
    shift_dot = (zero if bias_dot is None else bias_dot) - mean_dot * mul - mean * mul_dot
    # Split, not sliced: the transpose is one concatenation [g*x, g], not two padded copies.
    mul_rows, shift_rows = lax.split(rows_broadcast(jnp.concatenate([mul_dot, shift_dot]),
                                                    rows), [c, c], axis=1)
    y_dot = x2d * mul_rows + shift_rows
    if x_dot is not None:
      y_dot = y_dot + x_dot * mul
    y = x2d * mul + (bias - mean * mul)
    return (y, mean, var), (y_dot, mean_dot, var_dot)

  if train:
    zero = jnp.zeros((x2d.shape[1],), x2d.dtype)
    return norm(x2d, scale, bias, zero, zero)
  return norm(x2d, scale, bias, mean, var)


class BatchNorm(nnx.BatchNorm):
  """`nnx.BatchNorm` (same arguments, parameters and statistics) computed by
  `batch_norm` on CPU with the switch on, for a normalisation over all axes but the last
  one (channels last, no `axis_name`, no mask, `use_fast_variance`); otherwise Flax's."""

  def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
    use_running_average = (self.use_running_average if use_running_average is None
                           else use_running_average)
    plain = (not switch.active() or mask is not None or self.axis_name is not None
             or use_running_average is None or self.axis not in (-1, x.ndim - 1)
             or not self.use_fast_variance or x.ndim < 2
             or self.dtype is not None or self.param_dtype != x.dtype
             or self.scale is None or self.bias is None)
    if plain:
      return super().__call__(x, use_running_average, mask=mask)
    scale, bias = self.scale[...], self.bias[...]
    if use_running_average:
      y, _, _ = batch_norm(x, self.mean[...], self.var[...], scale, bias, self.epsilon)
      return y
    y, mean, var = batch_norm(x, None, None, scale, bias, self.epsilon)
    # As Flax: the running statistics are updated without a gradient.
    stop = lax.stop_gradient if (self.mean._can_update or self.var._can_update) else (
        lambda a: a)
    self.mean[...] = stop(self.momentum * self.mean[...] + (1 - self.momentum) * mean)
    self.var[...] = stop(self.momentum * self.var[...] + (1 - self.momentum) * var)
    return y
