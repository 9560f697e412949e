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
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

# XLA:CPU runs a convolution with one input channel (LeNet's conv1 on grey images) at a
# tenth of its usual rate (~2 against ~21 GFLOP/s for the same 5x5x1x6 conv on 256 MNIST
# images, 2-core Xeon); written as kh*kw shifted multiply-adds it is one fused loop.
SHIFTED_MAX_WINDOW = 49


def _nhwc_hwio(lhs, rhs, dimension_numbers) -> bool:
  want = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  return dimension_numbers is not None and lax.conv_dimension_numbers(
      lhs.shape, rhs.shape, dimension_numbers) == want


def _use_shifted(lhs, rhs, window_strides, padding, kwargs) -> bool:
  """The one-input-channel, stride-1, undilated, ungrouped NHWC/HWIO case, on CPU."""
  if jax.default_backend() != "cpu" or lhs.ndim != 4 or rhs.shape[2] != 1 or lhs.shape[3] != 1:
    return False
  if rhs.shape[0] * rhs.shape[1] > SHIFTED_MAX_WINDOW or tuple(window_strides) != (1, 1):
    return False
  if isinstance(padding, str) and padding != "VALID":
    return False
  if any(kwargs.get(k) not in (None, (1, 1), [1, 1], 1) for k in
         ("lhs_dilation", "rhs_dilation", "feature_group_count", "batch_group_count")):
    return False
  extra = set(kwargs) - {"lhs_dilation", "rhs_dilation", "feature_group_count",
                         "batch_group_count", "dimension_numbers", "precision"}
  return not extra and _nhwc_hwio(lhs, rhs, kwargs.get("dimension_numbers"))


def shifted_conv(lhs: jax.Array, rhs: jax.Array, padding) -> jax.Array:
  """The NHWC x HWIO convolution with one input channel as sum_ij x[., h+i, w+j] * k[i, j]."""
  kh, kw = rhs.shape[0], rhs.shape[1]
  pads = ((0, 0), (0, 0)) if isinstance(padding, str) else tuple(tuple(p) for p in padding)
  x = jnp.pad(lhs, ((0, 0), pads[0], pads[1], (0, 0)))
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      term = x[:, i:i + oh, j:j + ow, :] * rhs[i, j, 0]
      out = term if out is None else out + term
  return out.astype(jnp.result_type(lhs, rhs))


def _patches(lhs: jax.Array, kh: int, kw: int, padding) -> jax.Array:
  pads = ((0, 0), (0, 0)) if isinstance(padding, str) else tuple(tuple(p) for p in padding)
  x = jnp.pad(lhs, ((0, 0), pads[0], pads[1], (0, 0)))
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return jnp.stack([x[:, i:i + oh, j:j + ow, :] for i in range(kh) for j in range(kw)], axis=3)


def shared_input_im2col_conv(lhs: jax.Array, rhs_p: jax.Array, padding) -> jax.Array:
  """One NHWC input, P HWIO kernels (P, kh, kw, C, O) -> (P, N, oh, ow, O) as one matmul
  of the input's patches (N*oh*ow, kh*kw*C) with all kernels side by side."""
  p, kh, kw, c, o = rhs_p.shape
  patches = _patches(lhs, kh, kw, padding)            # (N, oh, ow, kh*kw, C)
  n, oh, ow = patches.shape[:3]
  kernels = jnp.moveaxis(rhs_p.reshape(p, kh * kw * c, o), 0, 1).reshape(kh * kw * c, p * o)
  out = patches.reshape(n * oh * ow, kh * kw * c) @ kernels
  return jnp.moveaxis(out.reshape(n, oh, ow, p, o), 3, 0).astype(jnp.result_type(lhs, rhs_p))


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding,
                         **kwargs) -> jax.Array:
  """`lax.conv_general_dilated` (same arguments) with the CPU batching described above."""
  conv = functools.partial(lax.conv_general_dilated, window_strides=window_strides,
                           padding=padding, **kwargs)
  one_channel = _use_shifted(lhs, rhs, window_strides, padding, kwargs)
  if one_channel:
    conv = functools.partial(shifted_conv, padding=padding)

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
    if one_channel and rhs_batched and not lhs_batched:
      # A grid's first layer: one input, a kernel per point -> one im2col matmul.
      return shared_input_im2col_conv(lhs, rhs, padding), True
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
