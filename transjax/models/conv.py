"""The convolution every transjax model uses: `lax.conv_general_dilated`, batched better on CPU.

Under `jax.vmap` with both the input and the kernel batched (a loss-landscape grid: one set
of weights per grid point, each applied to that point's own activations), JAX's batching
rule turns the convolution into one grouped convolution (feature_group_count = batch size).
XLA:CPU runs grouped convolutions several times slower per group than ordinary ones, so
on CPU this convolution batches that case as a loop of ordinary convolutions (`lax.map`).
Every other case, and every other backend, uses JAX's own rule: a batched kernel with a
shared input becomes one convolution with more output channels, a batched input with a
shared kernel folds into the batch axis.

The value and derivatives are those of `lax.conv_general_dilated`: the primal is wrapped
in `jax.custom_batching.custom_vmap`, and a `jax.custom_jvp` around it gives the plain
convolution's (linear, transposable) tangent, so gradients, forward-over-reverse HVPs and
per-example gradients are unchanged.
"""

from __future__ import annotations

import functools

import jax
from jax import lax
from jax.custom_derivatives import SymbolicZero


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding,
                         **kwargs) -> jax.Array:
  """`lax.conv_general_dilated` (same arguments) with the CPU batching described above."""
  conv = functools.partial(lax.conv_general_dilated, window_strides=window_strides,
                           padding=padding, **kwargs)

  @jax.custom_jvp
  @jax.custom_batching.custom_vmap
  def primal(lhs, rhs):
    return conv(lhs, rhs)

  @primal.def_vmap
  def _batched(axis_size, in_batched, lhs, rhs):
    del axis_size
    lhs_batched, rhs_batched = in_batched
    if lhs_batched and rhs_batched and jax.default_backend() == "cpu":
      return lax.map(lambda pair: conv(*pair), (lhs, rhs)), True
    axes = (0 if lhs_batched else None, 0 if rhs_batched else None)
    return jax.vmap(conv, in_axes=axes)(lhs, rhs), True

  @functools.partial(primal.defjvp, symbolic_zeros=True)
  def _jvp(primals, tangents):
    lhs, rhs = primals
    lhs_dot, rhs_dot = tangents
    # Symbolic zeros (no tangent: the input images under a parameter gradient) skip their
    # term instead of convolving zeros.
    terms = [conv(lhs_dot, rhs)] if not isinstance(lhs_dot, SymbolicZero) else []
    if not isinstance(rhs_dot, SymbolicZero):
      terms.append(conv(lhs, rhs_dot))
    return primal(lhs, rhs), sum(terms[1:], terms[0])

  return primal(lhs, rhs)
