"""The convolution every transjax model uses: `lax.conv_general_dilated`, faster on CPU.

The CPU cases that XLA:CPU runs slowly get another formulation; values and derivatives
are those of `lax.conv_general_dilated` in all of them.

**One input channel** (LeNet's conv1 on grey images), which XLA:CPU runs at a tenth of
its usual rate: the Toeplitz matmul below where it fits, else kh*kw shifted multiply-adds
(`shifted_conv`); under vmap with per-point kernels on one shared input (a landscape
grid's first layer) one im2col matmul for all points (`shared_input_im2col_conv`).

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
as a loop of ordinary convolutions (`lax.map`).
Every other case, and every other backend, uses JAX's own rule: a batched kernel with a
shared input becomes one convolution with more output channels, a batched input with a
shared kernel folds into the batch axis.

The value and derivatives stay those of `lax.conv_general_dilated`: the primal is wrapped
in `jax.custom_batching.custom_vmap`, and a `jax.custom_jvp` around it gives the plain
convolution's (linear, transposable) tangent, so gradients, forward-over-reverse HVPs and
per-example gradients are unchanged.

**Convolutions on narrow images** (LeNet's, both): a block-Toeplitz matmul over kernel
rows (`toeplitz_conv`). It computes a few times the direct FLOPs, but as one matmul whose
derivatives are matmuls too, which XLA:CPU runs at its matmul rate; the transposed
convolutions that `lax.conv_general_dilated` differentiates into run at a fraction of it
(a one-channel conv's kernel gradient, the input gradient of a conv with few input
channels). It is the primal of a one-channel conv (so the conv is materialised once;
XLA fuses the shifted form into every consumer, and under differentiation it recomputed
conv1 inside the pool's derivative) and both tangent terms (the gradients and
forward-over-reverse HVPs transpose them). Where its matrix would be large (wide images,
many channels: ResNet's convs) the earlier forms stay: shifted multiply-adds for one
channel, and for tangents an im2col matmul (`im2col_conv`) or lax's own convolution.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from transjax.models import affine

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


# XLA:CPU runs a convolution with one input channel (LeNet's conv1 on grey images) at a
# tenth of its usual rate (~2 against ~21 GFLOP/s for the same 5x5x1x6 conv on 256 MNIST
# images, 2-core Xeon); written as kh*kw shifted multiply-adds it is one fused loop.
SHIFTED_MAX_WINDOW = 49
# Below this many input channels a stride-1 conv's input gradient is taken through im2col
# (or the Toeplitz form), and the Toeplitz form is considered at all.
IM2COL_MAX_CHANNELS = 16
# The Toeplitz form computes (padded width / kernel width) times the direct FLOPs and
# holds a (kh*Wp*C, ow*O) matrix; above these it is not used.
TOEPLITZ_MAX_WIDTH_RATIO = 8
TOEPLITZ_MAX_ELEMENTS = 1 << 20
# Above this many input positions (batch x height x width) a one-channel conv's kernel
# gradient is taken through im2col, below it through lax's transposed convolution.
IM2COL_KERNEL_MIN_POSITIONS = 100_000


def _nhwc_hwio(lhs, rhs, dimension_numbers) -> bool:
  want = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  return dimension_numbers is not None and lax.conv_dimension_numbers(
      lhs.shape, rhs.shape, dimension_numbers) == want


def _plain_stride1(lhs, rhs, window_strides, padding, kwargs) -> bool:
  """A stride-1, undilated, ungrouped NHWC/HWIO convolution with an explicit or VALID
  padding and at most SHIFTED_MAX_WINDOW taps, on CPU: the case the formulations below
  (shifted multiply-adds, im2col) handle."""
  if jax.default_backend() != "cpu" or lhs.ndim != 4 or rhs.ndim != 4:
    return False
  if rhs.shape[0] * rhs.shape[1] > SHIFTED_MAX_WINDOW or tuple(window_strides) != (1, 1):
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


def im2col_conv(lhs: jax.Array, rhs: jax.Array, padding) -> jax.Array:
  """The stride-1 NHWC x HWIO convolution as one matmul of the input's patches
  (N*oh*ow, kh*kw*C) with the kernel (kh*kw*C, O).

  Used for tangents, for its transpose: JAX transposes the matmul into matmuls and the
  patch extraction into pads, which XLA:CPU runs several times faster than the
  transposed convolutions `lax.conv_general_dilated` differentiates into when the
  gradient has few channels (see `_jvp` in `conv_general_dilated`)."""
  kh, kw, c, o = rhs.shape
  patches = _patches(lhs, kh, kw, padding)            # (N, oh, ow, kh*kw, C)
  n, oh, ow = patches.shape[:3]
  out = patches.reshape(n * oh * ow, kh * kw * c) @ rhs.reshape(kh * kw * c, o)
  return out.reshape(n, oh, ow, o).astype(jnp.result_type(lhs, rhs))


def _padded_width(lhs, padding) -> int:
  if isinstance(padding, str):  # "VALID" (the only string _plain_stride1 admits)
    return lhs.shape[2]
  return lhs.shape[2] + int(padding[1][0]) + int(padding[1][1])


def toeplitz_fits(lhs, rhs, padding) -> bool:
  """Whether `toeplitz_conv` is used for this plain stride-1 convolution on CPU."""
  kh, kw, c, o = rhs.shape
  wp = _padded_width(lhs, padding)
  ow = wp - kw + 1
  return (c < IM2COL_MAX_CHANNELS and ow >= 1 and wp <= TOEPLITZ_MAX_WIDTH_RATIO * kw
          and kh * wp * c * ow * o <= TOEPLITZ_MAX_ELEMENTS)


def toeplitz_conv(lhs: jax.Array, rhs: jax.Array, padding) -> jax.Array:
  """The stride-1 NHWC x HWIO convolution as one matmul over kernel rows.

  Output row h of image n is sum_i x[n, h + i] (a padded input row, flattened over width
  and channels) times T_i, with T_i[(w', c), (w, o)] = k[i, w' - w, c, o] for
  0 <= w' - w < kw: a block-Toeplitz matrix. With the kh row-shifted copies of the input
  side by side the convolution is (N*oh, kh*Wp*C) @ (kh*Wp*C, ow*O): Wp / kw times the
  direct FLOPs, in one matmul, from kh contiguous row copies (im2col needs kh*kw copies
  of every pixel). JAX differentiates it into matmuls, kh pads and a small constant
  contraction. LeNet on 256 MNIST images (2-core Xeon): conv1's kernel gradient 5.5
  against 27 ms for lax's, conv2's gradient 7 against 15 ms.
  """
  kh, kw, c, o = rhs.shape
  pads = ((0, 0), (0, 0)) if isinstance(padding, str) else tuple(tuple(p) for p in padding)
  x = jnp.pad(lhs, ((0, 0), pads[0], pads[1], (0, 0)))
  n, hp, wp, _ = x.shape
  oh, ow = hp - kh + 1, wp - kw + 1
  # shift[w', w, j] = 1 where w' = w + j: puts kernel column j on T's j-th diagonal.
  shift = (np.arange(wp)[:, None, None] - np.arange(ow)[None, :, None]
           == np.arange(kw)[None, None, :]).astype(rhs.dtype)
  toeplitz = jnp.einsum("pwj,ijco->ipcwo", shift, rhs).reshape(kh * wp * c, ow * o)
  rows = jnp.stack([x[:, i:i + oh] for i in range(kh)], axis=2).reshape(n * oh, kh * wp * c)
  return (rows @ toeplitz).reshape(n, oh, ow, o).astype(jnp.result_type(lhs, rhs))


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding,
                         **kwargs) -> jax.Array:
  """`lax.conv_general_dilated` (same arguments), with the CPU formulations described above."""
  grid = affine.lookup(rhs)
  if grid is not None:
    # A landscape grid's kernel: w + sum_i c_i d_i (see transjax.models.affine).
    conv = functools.partial(_conv, window_strides=window_strides, padding=padding, **kwargs)
    return affine.linear_map(conv, lhs, *grid)
  return _conv(lhs, rhs, window_strides, padding, **kwargs)


def _conv(lhs: jax.Array, rhs: jax.Array, window_strides, padding, **kwargs) -> jax.Array:
  if jax.default_backend() == "cpu":
    depthwise_padding = _depthwise_padding(lhs, rhs, window_strides, padding, kwargs)
    if depthwise_padding is not None:
      return depthwise_conv_shifted(lhs, rhs, tuple(window_strides), depthwise_padding)
  conv = functools.partial(lax.conv_general_dilated, window_strides=window_strides,
                           padding=padding, **kwargs)
  plain = _plain_stride1(lhs, rhs, window_strides, padding, kwargs)
  one_channel = plain and lhs.shape[3] == 1
  toeplitz = plain and toeplitz_fits(lhs, rhs, padding)
  if one_channel:
    conv = functools.partial(toeplitz_conv if toeplitz else shifted_conv, padding=padding)

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

  # The tangent's two terms, in the form whose JAX-derived transpose (the gradient) runs
  # fastest on XLA:CPU; each is the same linear map as `conv` in that argument.
  # - Where it fits, both are the Toeplitz matmul: LeNet's training step (batch 64) 6.6
  #   against 11.9 ms of XLA op time, a forward-over-reverse HVP on 256 MNIST images
  #   36-45 against 77-88 ms (2-core Xeon, XLA's profiler).
  # Otherwise (measured with LeNet at batch 64 before the Toeplitz form):
  # - Kernel term of a one-channel conv: the transposed shifted form is kh*kw separate
  #   reductions (7.1 ms). At batch 64 lax's own transpose, one convolution, is fastest;
  #   from 100k input positions im2col's patches^T @ cotangent wins.
  # - Input term of a conv with few input channels: lax's transpose is a convolution with
  #   few output channels (2.8 ms against 0.7 ms for the forward); im2col's is a matmul
  #   and kh*kw pads (1.4 ms).
  kernel_term = conv
  input_term = conv
  if toeplitz:
    kernel_term = input_term = functools.partial(toeplitz_conv, padding=padding)
  else:
    if one_channel:
      kernel_term = functools.partial(lax.conv_general_dilated, window_strides=window_strides,
                                      padding=padding, **kwargs)
      if lhs.shape[0] * lhs.shape[1] * lhs.shape[2] > IM2COL_KERNEL_MIN_POSITIONS:
        kernel_term = functools.partial(im2col_conv, padding=padding)
    if plain and 1 < lhs.shape[3] < IM2COL_MAX_CHANNELS:
      input_term = functools.partial(im2col_conv, padding=padding)

  @functools.partial(primal.defjvp, symbolic_zeros=True)
  def _jvp(primals, tangents):
    lhs, rhs = primals
    lhs_dot, rhs_dot = tangents
    # Symbolic zeros (no tangent: the input images under a parameter gradient) skip their
    # term instead of convolving zeros.
    terms = [input_term(lhs_dot, rhs)] if not isinstance(lhs_dot, SymbolicZero) else []
    if not isinstance(rhs_dot, SymbolicZero):
      terms.append(kernel_term(lhs, rhs_dot))
    return primal(lhs, rhs), sum(terms[1:], terms[0])

  return primal(lhs, rhs)
