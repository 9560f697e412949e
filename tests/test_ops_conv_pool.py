"""transjax.ops.conv_pool: a landscape grid's conv -> bias -> 2x2 max-pool -> ReLU block,
laid out for the pool, computes the textbook block (lax convolution, reduce_window max
pool) at every grid point, for a shared input (the grid's first moved layer) and for
per-point inputs, with a shared or a per-point bias (float64, so any difference is a real
one)."""

from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from transjax import ops
from transjax.ops import affine, conv_pool

DN = ("NHWC", "HWIO", "NHWC")


def _reference(x, kernel, bias, pads):
  y = lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=DN) + bias
  return lax.reduce_window(jax.nn.relu(y), -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                           "VALID")


def _case(rng, x_shape, k_shape, points, dirs=2):
  x = jnp.asarray(rng.normal(size=x_shape))
  w = jnp.asarray(rng.normal(size=k_shape))
  basis = jnp.asarray(rng.normal(size=(dirs,) + k_shape))
  coeffs = jnp.asarray(rng.normal(size=(points, dirs)))
  bias = jnp.asarray(rng.normal(size=(k_shape[-1],)))
  return x, w, basis, coeffs, bias


def _close(got, want):
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-10)


# (input shape, kernel shape, padding): LeNet's conv1 on a one-channel image (padded), its
# conv2 on six channels (valid), and a non-square one with uneven padding.
SHAPES = {
    "conv1": ((3, 8, 8, 1), (5, 5, 1, 4), ((2, 2), (2, 2))),
    "conv2": ((3, 10, 10, 6), (5, 5, 6, 3), ((0, 0), (0, 0))),
    "uneven": ((2, 7, 10, 3), (3, 2, 3, 5), ((1, 0), (2, 1))),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("bias_per_point", [False, True])
def test_shared_input_grid_layer_matches_the_textbook_block(shape, bias_per_point):
  x_shape, k_shape, pads = SHAPES[shape]
  with jax.enable_x64(True):
    x, w, basis, coeffs, bias = _case(np.random.default_rng(0), x_shape, k_shape, 5)
    biases = bias + 0.1 * coeffs[:, :1] if bias_per_point else None
    block = lambda c, b: conv_pool._grid_block(x, w, basis, c, b, pads)
    with mock.patch.object(conv_pool, "_shared_input", wraps=conv_pool._shared_input) as spy:
      got = (jax.vmap(block)(coeffs, biases) if bias_per_point
             else jax.vmap(block, in_axes=(0, None))(coeffs, bias))
    assert spy.call_count == 1
    for p in range(coeffs.shape[0]):
      b = biases[p] if bias_per_point else bias
      _close(got[p], _reference(x, affine.combine(w, basis, coeffs[p]), b, pads))


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("bias_per_point", [False, True])
def test_per_point_grid_layer_matches_the_textbook_block(shape, bias_per_point):
  x_shape, k_shape, pads = SHAPES[shape]
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    _, w, basis, coeffs, bias = _case(rng, x_shape, k_shape, 4)
    xs = jnp.asarray(rng.normal(size=(4,) + x_shape))
    biases = bias + 0.1 * coeffs[:, :1] if bias_per_point else None
    block = lambda x, c, b: conv_pool._grid_block(x, w, basis, c, b, pads)
    with mock.patch.object(conv_pool, "_per_point", wraps=conv_pool._per_point) as spy:
      got = (jax.vmap(block)(xs, coeffs, biases) if bias_per_point
             else jax.vmap(block, in_axes=(0, 0, None))(xs, coeffs, bias))
    assert spy.call_count == 1
    for p in range(coeffs.shape[0]):
      b = biases[p] if bias_per_point else bias
      _close(got[p], _reference(xs[p], affine.combine(w, basis, coeffs[p]), b, pads))


def _grid_of(conv, x, coeffs, basis):
  """conv_relu_pool(conv, x) at every grid point, the kernel moved as a landscape moves it."""
  graphdef, params = nnx.split(conv)
  leaves, treedef = jax.tree.flatten(params)
  kernel = [i for i, leaf in enumerate(leaves) if leaf.ndim == 4]

  def point(c):
    moved = [affine.AffineKernel(w, basis, c) if i in kernel else w
             for i, w in enumerate(leaves)]
    return conv_pool.conv_relu_pool(nnx.merge(graphdef, jax.tree.unflatten(treedef, moved)), x)

  return jax.vmap(point)(coeffs)


def test_nnx_block_takes_the_slab_path_only_where_it_fits():
  rng = np.random.default_rng(2)
  coeffs = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
  for size, fits in ((8, True), (7, False)):  # a 7x7 input gives odd 7x7 conv outputs
    conv = ops.Conv(1, 4, (5, 5), padding=2, rngs=nnx.Rngs(0))
    x = jnp.asarray(rng.normal(size=(2, size, size, 1)), jnp.float32)
    basis = jnp.asarray(rng.normal(size=(2, 5, 5, 1, 4)), jnp.float32)
    with mock.patch.object(conv_pool, "_shared_input", wraps=conv_pool._shared_input) as spy:
      got = _grid_of(conv, x, coeffs, basis)
    assert spy.call_count == int(fits)
    for p in range(coeffs.shape[0]):
      k = affine.combine(conv.kernel[...], basis, coeffs[p])
      want = _reference(x, k, conv.bias[...], ((2, 2), (2, 2)))
      np.testing.assert_allclose(np.asarray(got[p]), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_outside_a_grid_the_block_is_the_module_then_the_pool():
  conv = ops.Conv(1, 4, (5, 5), padding=2, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 8, 8, 1)), jnp.float32)
  with mock.patch.object(conv_pool, "_grid_block") as grid:
    got = conv_pool.conv_relu_pool(conv, x)
  grid.assert_not_called()
  np.testing.assert_array_equal(np.asarray(got),
                                np.asarray(conv_pool.relu_max_pool_2x2(conv(x))))
