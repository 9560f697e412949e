"""`lax.conv_general_dilated` with other formulations for the cases XLA:CPU runs slowly.

Used through `transjax.ops.Conv` (every transjax model's convolution). Values and
derivatives are those of `lax.conv_general_dilated` in all cases. With the switch off or
on an accelerator (`transjax.ops.switch`) this is `lax.conv_general_dilated` itself.

**Stride-1 convolutions with few input channels** (LeNet's two): a block-Toeplitz matmul
over kernel rows (`toeplitz_conv`) for the value and both tangent terms. It computes up
to 2.5x the direct FLOPs, but as one matmul whose derivatives are matmuls too, which
XLA:CPU runs at its matmul rate; `lax.conv_general_dilated` runs a one-channel conv at a
tenth of its usual rate and differentiates into transposed convolutions that run at a
fraction of it (a one-channel conv's kernel gradient, the input gradient of a conv with
few input channels). As a matmul the convolution is also materialised once, where XLA
fused earlier shifted forms into every consumer (under differentiation, conv1 was
recomputed inside the pool's derivative). Under vmap with per-point kernels on one
shared one-channel input (a landscape grid's first layer) it is one im2col matmul for all
points (`shared_input_im2col_conv`).

**Depthwise convolutions** (`feature_group_count` = input channels, one filter per
channel, as in MobileNet / EfficientNet blocks). XLA:CPU runs them as grouped
convolutions at well under 1 GFLOP/s, and their gradients slower still. On CPU they are
computed as k*k shifted multiply-adds over the padded input (`depthwise_conv_shifted`),
which XLA fuses into one pass; strides are strided slices. That is plain jax.numpy, so
JAX differentiates and batches it itself: vmap over per-point kernels and per-point
inputs (a landscape grid) is a broadcast multiply, with no grouped convolution at all.

**Batched kernels on batched inputs.** Under `jax.vmap` with both the input and the kernel
batched (a loss-landscape grid: one set of weights per grid point, each applied to that
point's own activations), JAX's batching rule turns the convolution into one grouped
convolution (feature_group_count = batch size). XLA:CPU runs grouped convolutions several
times slower per group than ordinary ones, so on CPU this convolution batches that case
as a loop of ordinary convolutions (`lax.map`), the Toeplitz ones in narrower blocks
(`POINT_BLOCK`: forward only, closer to the direct FLOPs).
Every other case uses JAX's own rule: a batched kernel with a
shared input becomes one convolution with more output channels, a batched input with a
shared kernel folds into the batch axis.

The value and derivatives stay those of `lax.conv_general_dilated`: the primal is wrapped
in `jax.custom_batching.custom_vmap`, and a `jax.custom_jvp` around it gives the plain
convolution's (linear, transposable) tangent, so gradients, forward-over-reverse HVPs and
per-example gradients are unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from transjax.ops import affine, batchnorm, switch

_NHWC = ("NHWC", "HWIO", "NHWC")


def depthwise_conv_shifted(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                           padding: Sequence[tuple[int, int]]) -> jax.Array:
  """A depthwise NHWC convolution as k*k shifted multiply-adds (no convolution op).

  Args:
    lhs: input (N, H, W, C).
    rhs: kernel (kh, kw, 1, C), the HWIO layout of `feature_group_count = C`.
    window_strides: (sh, sw).
    padding: ((top, bottom), (left, right)), non-negative.

  Returns:
    (N, H', W', C), equal to `lax.conv_general_dilated(lhs, rhs, window_strides, padding,
    dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=C)` up to the order
    of the k*k additions.
  """
  kh, kw = rhs.shape[0], rhs.shape[1]
  sh, sw = window_strides
  x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  n, hp, wp, c = x.shape
  out_h, out_w = (hp - kh) // sh + 1, (wp - kw) // sw + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      window = lax.slice(x, (0, i, j, 0), (n, i + (out_h - 1) * sh + 1,
                                           j + (out_w - 1) * sw + 1, c), (1, sh, sw, 1))
      term = window * rhs[i, j, 0]
      out = term if out is None else out + term
  return out


def _depthwise_kernel_term(lhs: jax.Array, rhs_dot: jax.Array, window_strides, padding):
  """`depthwise_conv_shifted(lhs, rhs_dot)` with the k*k kernel taps broadcast over the
  output rows by one rank-1 matmul (`transjax.ops.batchnorm.rows_broadcast`), so that
  its transpose, the kernel gradient, is one matmul `ones @ [window_t * g]_t` where the
  broadcasts' own transposes are k*k column reductions, which XLA:CPU's kernels run
  slowly (and with the input gradient's producers fused into each)."""
  kh, kw = rhs_dot.shape[0], rhs_dot.shape[1]
  sh, sw = window_strides
  x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  n, hp, wp, c = x.shape
  out_h, out_w = (hp - kh) // sh + 1, (wp - kw) // sw + 1
  taps = batchnorm.rows_broadcast(rhs_dot.reshape(kh * kw * c), n * out_h * out_w)
  # Split, not sliced: a split's transpose is one concatenation, where k*k slices'
  # transposes are k*k zero-padded copies summed (every element computed k*k times).
  taps = [t.reshape(n, out_h, out_w, c) for t in lax.split(taps, [c] * (kh * kw), axis=1)]
  out = None
  for i in range(kh):
    for j in range(kw):
      window = lax.slice(x, (0, i, j, 0), (n, i + (out_h - 1) * sh + 1,
                                           j + (out_w - 1) * sw + 1, c), (1, sh, sw, 1))
      term = window * taps[i * kw + j]
      out = term if out is None else out + term
  return out


def materialised(x: jax.Array, witness: jax.Array) -> jax.Array:
  """`x`, through a conditional that XLA keeps, so that `x` (and, in the transpose, its
  cotangent) is computed once into a buffer instead of inside each of its consumers.

  Why: in the gradient of a depthwise convolution, the input gradient is k*k shifted
  copies of `g * w_t` summed, and XLA:CPU fuses the producer of `g` (the BatchNorm and
  ReLU6 backward below the convolution) into every copy, computing it k*k times. A
  conditional is a fusion boundary; `lax.optimization_barrier` is not one on XLA:CPU (it
  is removed before fusion), and a conditional whose predicate is a compile-time
  constant, or whose branches are equal, is simplified away. So the predicate is read
  from `witness` (true unless its first element is NaN) and the other branch is `x * NaN`
  (linear, so its transpose is NaN too), which is what a NaN in the kernel makes of the
  loss anyway. JAX transposes and differentiates through the conditional (forward-over-
  reverse HVPs included); under vmap with a batched witness it becomes a select and only
  the materialisation is lost.
  """
  first = witness.reshape(-1)[0]
  return lax.cond(first == first, lambda a: a, lambda a: a * jnp.nan, x)


def depthwise_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                   padding: Sequence[tuple[int, int]]) -> jax.Array:
  """`depthwise_conv_shifted` whose kernel gradient is a matmul: a `jax.custom_jvp` whose
  tangent is the same (linear) convolution in the input and `_depthwise_kernel_term` in
  the kernel, which JAX transposes into the input gradient (k*k padded products, one
  elementwise loop over a `materialised` cotangent) and one `ones @ products` matmul.
  The value is `materialised` too: else XLA fuses the k*k-term sum into each consumer
  (BatchNorm's statistics, its normalisation, the backward's products), computing it
  several times."""

  @jax.custom_jvp
  def conv(lhs, rhs):
    return materialised(depthwise_conv_shifted(lhs, rhs, window_strides, padding), rhs)

  @functools.partial(conv.defjvp, symbolic_zeros=True)
  def _jvp(primals, tangents):
    lhs, rhs = primals
    lhs_dot, rhs_dot = tangents
    terms = []
    if not isinstance(lhs_dot, SymbolicZero):
      terms.append(materialised(depthwise_conv_shifted(lhs_dot, rhs, window_strides, padding),
                                rhs))
    if not isinstance(rhs_dot, SymbolicZero):
      terms.append(_depthwise_kernel_term(lhs, rhs_dot, window_strides, padding))
    return conv(lhs, rhs), sum(terms[1:], terms[0])

  return conv(lhs, rhs)


_CONV_KWARGS = {"lhs_dilation", "rhs_dilation", "dimension_numbers", "feature_group_count",
                "batch_group_count", "precision", "preferred_element_type", "out_sharding"}


def _all_ones(dilation) -> bool:
  return dilation is None or all(int(d) == 1 for d in dilation)


def _depthwise_padding(lhs, rhs, window_strides, padding, kwargs):
  """Explicit ((top, bottom), (left, right)) padding when this call is a plain NHWC
  depthwise convolution that `depthwise_conv_shifted` computes; otherwise None.

  `precision` is ignored: the shifted form multiplies elementwise in the input dtype.
  """
  if (set(kwargs) - _CONV_KWARGS or not _all_ones(kwargs.get("lhs_dilation"))
      or not _all_ones(kwargs.get("rhs_dilation")) or kwargs.get("batch_group_count", 1) != 1
      or kwargs.get("preferred_element_type") is not None
      or kwargs.get("out_sharding") is not None):
    return None
  if lhs.ndim != 4 or rhs.ndim != 4 or len(window_strides) != 2:
    return None
  dn = kwargs.get("dimension_numbers")
  if dn is None or (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dn)
                    != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)):
    return None
  channels = lhs.shape[-1]
  if (channels == 1 or kwargs.get("feature_group_count", 1) != channels
      or rhs.shape[2] != 1 or rhs.shape[3] != channels):
    return None
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if any(p < 0 for pair in padding for p in pair):
    return None
  return padding


# The stride-1 convolutions the Toeplitz form takes: at most this many taps and fewer than
# this many input channels (LeNet's two; ResNet's have 64 and more), with its matrix
# (kh*(B+kw-1)*C, B*O) at most TOEPLITZ_MAX_ELEMENTS.
TOEPLITZ_MAX_WINDOW = 49
TOEPLITZ_MAX_CHANNELS = 16
TOEPLITZ_MAX_ELEMENTS = 1 << 20


def _nhwc_hwio(lhs, rhs, dimension_numbers) -> bool:
  want = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  return dimension_numbers is not None and lax.conv_dimension_numbers(
      lhs.shape, rhs.shape, dimension_numbers) == want


def _plain_stride1(lhs, rhs, window_strides, padding, kwargs) -> bool:
  """A stride-1, undilated, ungrouped NHWC/HWIO convolution with an explicit or VALID
  padding and at most TOEPLITZ_MAX_WINDOW taps."""
  if lhs.ndim != 4 or rhs.ndim != 4:
    return False
  if rhs.shape[0] * rhs.shape[1] > TOEPLITZ_MAX_WINDOW or tuple(window_strides) != (1, 1):
    return False
  if isinstance(padding, str) and padding != "VALID":
    return False
  if any(kwargs.get(k) not in (None, (1, 1), [1, 1], 1) for k in
         ("lhs_dilation", "rhs_dilation", "feature_group_count", "batch_group_count")):
    return False
  # nnx.Conv passes out_sharding=None; a sharded output or an unknown argument keeps
  # lax's own path.
  if kwargs.get("out_sharding") is not None:
    return False
  extra = set(kwargs) - {"lhs_dilation", "rhs_dilation", "feature_group_count",
                         "batch_group_count", "dimension_numbers", "precision", "out_sharding"}
  return (not extra and rhs.shape[2] == lhs.shape[3]
          and _nhwc_hwio(lhs, rhs, kwargs.get("dimension_numbers")))


def _pads(padding) -> tuple[tuple[int, int], tuple[int, int]]:
  if isinstance(padding, str):  # "VALID", the only string _plain_stride1 admits
    return ((0, 0), (0, 0))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _output_width(lhs, rhs, padding) -> int:
  (_, _), (left, right) = _pads(padding)
  return lhs.shape[2] + left + right - rhs.shape[1] + 1


def toeplitz_block(out_width: int, kw: int, limit: int | None = None) -> int:
  """The output columns per Toeplitz block: the largest divisor of the output width that
  is at most `limit`, by default 1.5 kw, so a block computes at most 2.5x the direct FLOPs
  (LeNet: conv1 7 of 28, conv2 5 of 10); faster than the whole width as one block
  (docs/analysis.md, "Measurements behind the code"). A landscape's per-point
  convolutions take `POINT_BLOCK` instead."""
  limit = max(1, int(1.5 * kw)) if limit is None else max(1, limit)
  return max(d for d in range(1, min(limit, out_width) + 1) if out_width % d == 0)


# Output columns per Toeplitz block for per-point kernels on per-point inputs (a landscape
# grid's layers above its first moved one: forward only, one matmul per point). LeNet's
# conv -> pool blocks take `transjax.ops.conv_pool`, which uses 2 as well. Narrower
# blocks compute closer to the direct FLOPs (LeNet's conv2: 1.2x against 1.8x at 5
# columns) and their matmul still runs at XLA's rate; 2 columns beat 5 and 1 (im2col's
# narrow matmul) on LeNet's grid (docs/analysis.md, "Measurements behind the code").
POINT_BLOCK = 2


def toeplitz_fits(lhs, rhs, padding) -> bool:
  """Whether `toeplitz_conv` takes this plain stride-1 convolution (on CPU)."""
  kh, kw, c, o = rhs.shape
  ow = _output_width(lhs, rhs, padding)
  if c >= TOEPLITZ_MAX_CHANNELS or ow < 1:
    return False
  b = toeplitz_block(ow, kw)
  return kh * (b + kw - 1) * c * b * o <= TOEPLITZ_MAX_ELEMENTS


def toeplitz_matrix(rhs: jax.Array, block: int) -> jax.Array:
  """The block-Toeplitz matrix of an HWIO kernel for `block` output columns:
  (kh*(block+kw-1)*C, block*O), rows (kernel row, input column, channel), columns
  (output column, output channel)."""
  kh, kw, c, o = rhs.shape
  width = block + kw - 1
  # shift[w', w, j] = 1 where w' = w + j: puts kernel column j on T's j-th diagonal.
  shift = (np.arange(width)[:, None, None] - np.arange(block)[None, :, None]
           == np.arange(kw)[None, None, :]).astype(rhs.dtype)
  return jnp.einsum("pwj,ijco->ipcwo", shift, rhs).reshape(kh * width * c, block * o)


def toeplitz_conv(lhs: jax.Array, rhs: jax.Array, padding,
                  block_limit: int | None = None) -> jax.Array:
  """The stride-1 NHWC x HWIO convolution as one matmul over kernel rows.

  The output is cut into blocks of B columns (`toeplitz_block`). Row h of block b is
  sum_i x[n, h + i, bB : bB + B + kw - 1] (flattened over width and channels) times
  T_i[(w', c), (w, o)] = k[i, w' - w, c, o] for 0 <= w' - w < kw: a block-Toeplitz
  matrix, the same for every block. With the kh row-shifted copies of each block's
  input side by side, the convolution is one matmul (N*oh*nb, kh*(B+kw-1)*C) @
  (kh*(B+kw-1)*C, B*O), whose product is already NHWC. It costs (B + kw - 1) / kw times
  the direct FLOPs, and JAX differentiates it into matmuls, pads and a small constant
  contraction, which XLA:CPU runs at its matmul rate: LeNet's training step and HVP
  take about half the time they take with lax's convolutions and their transposes
  (docs/analysis.md, "Measurements behind the code").
  """
  kh, kw, c, o = rhs.shape
  pads = _pads(padding)
  x = jnp.pad(lhs, ((0, 0), pads[0], pads[1], (0, 0)))
  n, hp, wp, _ = x.shape
  oh, ow = hp - kh + 1, wp - kw + 1
  block = toeplitz_block(ow, kw, block_limit)
  width = block + kw - 1
  toeplitz = toeplitz_matrix(rhs, block)
  # The rows are read from the (n, h, w * c) view: XLA:CPU vectorises a loop over its
  # output's minor axis, and the producer of x (a pool, a landscape grid's per-point sum)
  # takes this view's wide minor axis instead of the few channels.
  x = x.reshape(n, hp, wp * c)
  rows = jnp.stack([jnp.stack([x[:, i:i + oh, b * block * c:(b * block + width) * c]
                               for i in range(kh)], axis=2)
                    for b in range(ow // block)], axis=2)  # (n, oh, nb, kh, width * c)
  out = rows.reshape(-1, kh * width * c) @ toeplitz
  return out.reshape(n, oh, ow, o).astype(jnp.result_type(lhs, rhs))


def im2col_patches(lhs: jax.Array, kh: int, kw: int, padding) -> jax.Array:
  pads = _pads(padding)
  x = jnp.pad(lhs, ((0, 0), pads[0], pads[1], (0, 0)))
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return jnp.stack([x[:, i:i + oh, j:j + ow, :] for i in range(kh) for j in range(kw)], axis=3)


def shared_input_im2col_conv(lhs: jax.Array, rhs_p: jax.Array, padding) -> jax.Array:
  """One NHWC input, P HWIO kernels (P, kh, kw, C, O) -> (P, N, oh, ow, O) as one matmul
  of the input's patches (N*oh*ow, kh*kw*C) with all kernels side by side."""
  p, kh, kw, c, o = rhs_p.shape
  patches = im2col_patches(lhs, kh, kw, padding)      # (N, oh, ow, kh*kw, C)
  n, oh, ow = patches.shape[:3]
  kernels = jnp.moveaxis(rhs_p.reshape(p, kh * kw * c, o), 0, 1).reshape(kh * kw * c, p * o)
  out = patches.reshape(n * oh * ow, kh * kw * c) @ kernels
  return jnp.moveaxis(out.reshape(n, oh, ow, p, o), 3, 0).astype(jnp.result_type(lhs, rhs_p))


def conv_general_dilated(lhs: jax.Array, rhs, window_strides, padding, **kwargs) -> jax.Array:
  """`lax.conv_general_dilated` (same arguments), with the CPU formulations described
  above; `rhs` may be a landscape's `transjax.ops.affine.AffineKernel`."""
  if not switch.active():
    return lax.conv_general_dilated(lhs, affine.as_array(rhs), window_strides, padding,
                                    **kwargs)
  if isinstance(rhs, affine.AffineKernel):
    # A landscape grid's kernel: w + sum_i c_i d_i (see transjax.ops.affine).
    conv = functools.partial(_conv, window_strides=window_strides, padding=padding, **kwargs)
    return affine.linear_map(conv, lhs, rhs)
  return _conv(lhs, rhs, window_strides, padding, **kwargs)


def _conv(lhs: jax.Array, rhs: jax.Array, window_strides, padding, **kwargs) -> jax.Array:
  """The convolution on CPU with the switch on (the caller checked)."""
  depthwise_padding = _depthwise_padding(lhs, rhs, window_strides, padding, kwargs)
  if depthwise_padding is not None:
    return depthwise_conv(lhs, rhs, tuple(window_strides), depthwise_padding)
  toeplitz = (_plain_stride1(lhs, rhs, window_strides, padding, kwargs)
              and toeplitz_fits(lhs, rhs, padding))
  if toeplitz:
    conv = functools.partial(toeplitz_conv, padding=padding)
  else:
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
    if lhs_batched and rhs_batched:
      per_point = (functools.partial(toeplitz_conv, padding=padding, block_limit=POINT_BLOCK)
                   if toeplitz else conv)
      return lax.map(lambda pair: per_point(*pair), (lhs, rhs)), True
    if toeplitz and lhs.shape[3] == 1 and rhs_batched and not lhs_batched:
      # A grid's first layer: one input, a kernel per point -> one im2col matmul.
      return shared_input_im2col_conv(lhs, rhs, padding), True
    axes = (0 if lhs_batched else None, 0 if rhs_batched else None)
    return jax.vmap(conv, in_axes=axes)(lhs, rhs), True

  # The tangent's two terms are `conv` itself, written out so that JAX transposes them
  # (the gradient) the way it transposes the form used: the Toeplitz form into matmuls.
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
