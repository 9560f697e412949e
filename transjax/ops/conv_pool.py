"""A convolution block as one op: conv -> bias -> 2x2 max-pool -> ReLU (LeNet's two).

`conv_relu_pool(conv, x)` is `relu_max_pool_2x2(conv(x))` (`transjax.ops.pool`), and
outside a loss-landscape grid it is computed exactly that way.

**A landscape grid's moved convolution** (its kernel is a `transjax.ops.affine`
`AffineKernel`, w + sum_i c_i d_i for each grid point c) is computed with its output laid
out for the pool. XLA:CPU vectorises a loop fusion over its output's minor axis, and in
NHWC that is the few channels (LeNet: 6 and 16): the per-point sum, bias, four strided
window reads and max ran near scalar speed. So here:

- **Shared input** (the grid's first moved layer: everything below it is the same at
  every point). One im2col matmul with the 1 + r kernels side by side, its rows in four
  slabs, one per window position (row parity, column parity), computed once per chunk;
  each point is then the weighted sum of 1 + r slabs per window position and their
  elementwise max, bias and ReLU: one loop over contiguous arrays (LeNet's conv1 took
  about a third of the plain path's time a point).
- **Per-point input** (the layers above it). A loop over the points (`lax.map`, as
  `transjax.ops.conv` batches them), each a Toeplitz matmul with blocks of two output
  columns, pooled as the matmul laid it out (four runs of O contiguous values per
  window) inside the loop. The loop reads each input as (n, h, w * c) and writes each
  output as (n, h * w * c), so neither its producer nor its own output has the channels
  as minor axis.

The whole LeNet grid, and grids of conv1 or conv2 alone, ran faster than on the plain
path (docs/analysis.md, "Measurements behind the code").

Both need a stride-1 NHWC convolution that `transjax.ops.conv` computes in Toeplitz form
and an even output height and width; anything else takes the plain path. The landscape
passes an `AffineKernel` only with the switch on, on CPU (`transjax.ops.switch`).
Values are the plain path's up to the order of additions (the bias is added to the
centre term before the directions' terms are: `max(a + b) = max(a) + b` exactly, since
rounding is monotone). Like `affine.linear_map`, this only happens for a landscape's
kernels, whose grids are evaluated forward only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import custom_batching, lax
from flax import nnx

from transjax.ops import affine, conv as conv_lib
from transjax.ops.pool import relu_max_pool_2x2, window_max

# At most this many im2col elements for a shared-input grid layer's patches (computed once
# per chunk); LeNet's conv1 on 256 28 x 28 images has 5.0M.
MAX_PATCH_ELEMENTS = 1 << 26


def _explicit_pads(padding) -> tuple[tuple[int, int], tuple[int, int]] | None:
  """nnx.Conv's padding as ((top, bottom), (left, right)), if it is an int, "VALID" or
  explicit pairs; None for anything else ("SAME" and the like take the plain path)."""
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  if padding == "VALID":
    return ((0, 0), (0, 0))
  if (isinstance(padding, (tuple, list)) and len(padding) == 2
      and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding)):
    return tuple((int(lo), int(hi)) for lo, hi in padding)
  return None


def _plain_module(conv: nnx.Conv) -> bool:
  ones = lambda v: v is None or v == 1 or all(int(d) == 1 for d in v)
  return (len(conv.kernel_size) == 2 and ones(conv.strides) and ones(conv.input_dilation)
          and ones(conv.kernel_dilation) and conv.feature_group_count == 1
          and conv.bias is not None and conv.dtype is None and conv.precision is None)


def _output_hw(x_shape, kernel_shape, pads) -> tuple[int, int]:
  """The stride-1 convolution's output height and width (NHWC input, HWIO kernel)."""
  return (x_shape[1] + sum(pads[0]) - kernel_shape[0] + 1,
          x_shape[2] + sum(pads[1]) - kernel_shape[1] + 1)


def _grid_fits(x, kernel, pads) -> bool:
  """Whether the slab formulations take this grid layer (unbatched shapes)."""
  if x.ndim != 4 or kernel.ndim != 4:
    return False
  kh, kw, c, o = kernel.shape
  if x.shape[3] != c or c >= conv_lib.TOEPLITZ_MAX_CHANNELS:
    return False
  if kh * kw > conv_lib.TOEPLITZ_MAX_WINDOW or min(p for pair in pads for p in pair) < 0:
    return False
  oh, ow = _output_hw(x.shape, kernel.shape, pads)
  if oh < 2 or ow < 2 or oh % 2 or ow % 2:
    return False
  width = 2 + kw - 1
  return (kh * width * c * 2 * o <= conv_lib.TOEPLITZ_MAX_ELEMENTS
          and x.shape[0] * oh * ow * kh * kw * c <= MAX_PATCH_ELEMENTS)


def conv_relu_pool(conv: nnx.Conv, x: jax.Array) -> jax.Array:
  """`relu_max_pool_2x2(conv(x))`; a landscape grid's moved convolution is laid out for
  the pool (module docstring)."""
  kernel = conv.kernel[...]
  pads = _explicit_pads(conv.padding)
  if (not isinstance(kernel, affine.AffineKernel) or pads is None or not _plain_module(conv)
      or not _grid_fits(x, kernel, pads)):
    return relu_max_pool_2x2(conv(x))
  return _grid_block(x, kernel.w, kernel.basis, kernel.coeffs, conv.bias[...], pads)


def _plain(x, kernel, bias, pads):
  y = conv_lib.conv_general_dilated(x, kernel, (1, 1), pads,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return relu_max_pool_2x2(y + bias)


def _grid_block(x, w, basis, coeffs, bias, pads):

  @custom_batching.custom_vmap
  def block(x, w, basis, coeffs, bias):
    return _plain(x, affine.combine(w, basis, coeffs), bias, pads)

  @block.def_vmap
  def _batched(axis_size, in_batched, x, w, basis, coeffs, bias):
    del axis_size
    x_b, w_b, basis_b, coeffs_b, bias_b = in_batched
    if coeffs_b and not (w_b or basis_b):
      if not x_b:
        return _shared_input(x, w, basis, coeffs, bias, bias_b, pads), True
      return _per_point(x, w, basis, coeffs, bias, bias_b, pads), True
    axes = tuple(0 if b else None for b in in_batched)
    return jax.vmap(lambda *a: _plain(a[0], affine.combine(*a[1:4]), a[4], pads),
                    in_axes=axes)(x, w, basis, coeffs, bias), True

  return block(x, w, basis, coeffs, bias)


def _shared_input(x, w, basis, coeffs, bias, bias_batched, pads):
  """One input, P points' kernels w + coeffs[p] . basis -> (P, N, oh/2, ow/2, O)."""
  kh, kw, c, o = w.shape
  patches = conv_lib.im2col_patches(x, kh, kw, pads)    # (N, oh, ow, kh*kw, C)
  n, oh, ow = patches.shape[:3]
  h2, w2, k = oh // 2, ow // 2, kh * kw * c
  # Rows in slab order: (row parity, column parity, n, oh/2, ow/2).
  slab_rows = patches.reshape(n, h2, 2, w2, 2, k).transpose(2, 4, 0, 1, 3, 5)
  kernels = jnp.concatenate([w[None], basis]).reshape(-1, k, o)
  terms = kernels.shape[0]
  ys = slab_rows.reshape(4 * n * h2 * w2, k) @ jnp.moveaxis(kernels, 0, 1).reshape(k, terms * o)
  ys = ys.reshape(4, n * h2 * w2, terms, o).transpose(2, 0, 1, 3)   # (1 + r, 4, M, O)
  if not bias_batched:
    ys = ys.at[0].add(bias)
  # Materialised once per chunk and read contiguously by every point (see affine.py on
  # why the 1 + r outputs are held as laid out).
  ys = lax.optimization_barrier(ys.reshape(terms, 4, -1).astype(jnp.result_type(x, w)))
  # Each slab's sum written out on its own: XLA:CPU vectorises this loop, where slices of
  # one (P, 4, M * O) sum took several times longer (docs/analysis.md, "Measurements
  # behind the code").
  out = window_max(*[affine.combine(ys[0, a], ys[1:, a], coeffs) for a in range(4)])
  if bias_batched:
    out = (out.reshape(-1, n * h2 * w2, o) + bias[:, None, :]).reshape(out.shape)
  return jax.nn.relu(out).reshape(-1, n, h2, w2, o)


def _toeplitz_pool(x, kernel, bias, pads):
  """One point: conv (Toeplitz blocks of 2 columns) -> + bias -> 2x2 max -> ReLU."""
  conv = conv_lib.toeplitz_conv(x, kernel, pads, block_limit=2)     # (n, oh, ow, o)
  n, oh, ow, o = conv.shape
  # Rows and blocks as the matmul laid them out: a window's two rows are 2 * ow * o
  # apart, its two columns o apart, so the max reads four runs of o contiguous values.
  win = conv.reshape(n, oh // 2, 2, ow // 2, 2, o)
  pooled = window_max(win[:, :, 0, :, 0], win[:, :, 0, :, 1], win[:, :, 1, :, 0],
                       win[:, :, 1, :, 1])
  return jax.nn.relu(pooled + bias).astype(jnp.result_type(x, kernel))


def _per_point(x, w, basis, coeffs, bias, bias_batched, pads):
  """P inputs, P kernels -> (P, N, oh/2, ow/2, O), a loop over the points."""
  shape = x.shape[1:]

  def point(x, c, b):
    y = _toeplitz_pool(x.reshape(shape), affine.combine(w, basis, c), b, pads)
    return y.reshape(y.shape[0], -1)

  # The loop reads each point's input as (n, h, w * c) and writes its output as
  # (n, h * w * c): XLA:CPU vectorises a loop over its minor axis, and the few channels
  # there ran near scalar speed (see `toeplitz_conv`).
  x = x.reshape(x.shape[:3] + (-1,))
  if bias_batched:
    out = lax.map(lambda a: point(*a), (x, coeffs, bias))
  else:
    out = lax.map(lambda a: point(*a, bias), (x, coeffs))
  oh, ow = _output_hw(shape, w.shape, pads)
  return out.reshape(out.shape[:2] + (oh // 2, ow // 2, w.shape[-1]))
