"""transjax.ops.affine, the landscape's hook: a grid's first moved convolution from 1 + r
convolutions, with the values of one convolution per point (float64); only the kernels of
`ops.Conv` modules are passed structured, and none with the switch off."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import nnx

from transjax import functional, ops
from transjax.analysis import landscape
from transjax.models import build_model
from transjax.ops import AffineKernel, conv_general_dilated

DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, k):
  return conv_general_dilated(x, k, (1, 1), ((2, 1), (1, 2)), dimension_numbers=DN)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.mark.parametrize("channels", [1, 3])  # one channel: the CPU shifted form
def test_grid_conv_equals_one_convolution_per_point(x64, channels):
  del x64
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 9, 8, channels)))
  w = jnp.asarray(rng.normal(size=(3, 3, channels, 4)))
  basis = jnp.asarray(rng.normal(size=(2, 3, 3, channels, 4)))
  coeffs = jnp.asarray(rng.normal(size=(5, 2)))
  want = jnp.stack([_conv(x, w + c[0] * basis[0] + c[1] * basis[1]) for c in coeffs])

  def point(c):
    return conv_general_dilated(x, AffineKernel(w, basis, c), (1, 1), ((2, 1), (1, 2)),
                                dimension_numbers=DN)

  np.testing.assert_allclose(jax.jit(jax.vmap(point))(coeffs), want, rtol=1e-12, atol=1e-12)
  # Per-point inputs too (a grid's upper layers): the usual batched path, same values.
  xs = jnp.stack([x * (i + 1) for i in range(5)])
  want_xs = jnp.stack([_conv(xi, w + c[0] * basis[0] + c[1] * basis[1])
                       for xi, c in zip(xs, coeffs)])

  def point_xs(xi, c):
    return conv_general_dilated(xi, AffineKernel(w, basis, c), (1, 1), ((2, 1), (1, 2)),
                                dimension_numbers=DN)

  np.testing.assert_allclose(jax.vmap(point_xs)(xs, coeffs), want_xs, rtol=1e-12, atol=1e-12)


class _Mixed(nnx.Module):
  """One ops.Conv, one nnx.Conv of one's own, one Linear."""

  def __init__(self):
    self.mine = nnx.Conv(1, 2, (3, 3), rngs=nnx.Rngs(0))
    self.ours = ops.Conv(2, 2, (3, 3), rngs=nnx.Rngs(1))
    self.fc = nnx.Linear(2, 3, rngs=nnx.Rngs(2))

  def __call__(self, x):
    return self.fc(self.ours(self.mine(x)).mean(axis=(1, 2)))


def test_only_ops_conv_kernels_are_passed_structured():
  g, p, s = functional.split(_Mixed())
  assert ops.structured_paths(g, p, s) == {("ours", "kernel")}
  with ops.cpu_kernels(False):
    assert ops.structured_paths(g, p, s) == frozenset()
  assert ops.structured_paths(None, p, s) == frozenset()  # a loss of one's own
  dirs = [jax.tree.map(jnp.ones_like, p)] * 2
  c = jnp.asarray([0.5, -1.0])
  moved = ops.moved_params(p, dirs, c, [True] * len(jax.tree.leaves(p)),
                           ops.structured_paths(g, p, s))
  assert isinstance(moved["ours"]["kernel"][...], AffineKernel)
  assert not isinstance(moved["mine"]["kernel"][...], AffineKernel)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 1)), jnp.float32)
  want = nnx.merge(g, jax.tree.map(lambda w: w - 0.5, p), s)(x)
  np.testing.assert_allclose(nnx.merge(g, moved, s, copy=True)(x), want, rtol=1e-5)


def test_lenet_grid_takes_conv1_once_for_all_points():
  """In a LeNet grid of 7 points conv1 runs as one batch of 1 + 2 kernels (not 7), and the
  landscape equals the one-point-at-a-time reference."""
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  loss_fn = functional.make_loss_fn(g)
  rng = np.random.default_rng(1)
  batch = {"image": jnp.asarray(rng.normal(size=(4, 28, 28, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 4))}
  dirs = landscape.random_directions(jax.random.key(0), p, 2)
  f = landscape.points._point_fn(loss_fn, landscape.moving_leaves(dirs))  # pylint: disable=protected-access
  coeffs = jnp.asarray(rng.normal(size=(7, 2)) * 0.1, jnp.float32)
  text = str(jax.make_jaxpr(jax.vmap(f, in_axes=(None, None, None, None, 0)))(
      p, s, batch, dirs, coeffs))
  if jax.default_backend() == "cpu":  # conv1 (one channel) as an im2col matmul
    assert "3136,18]" in text and "3136,42]" not in text  # 4*28*28 positions x 3*6 outputs
  axis = np.array([-0.1, 0.0, 0.2])
  res = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=4)
  ref = landscape.sequential_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  np.testing.assert_allclose(res.losses, ref, rtol=1e-5)


def test_grouped_cpu_chunk_computes_the_shared_conv1_once():
  """On CPU a chunk is a loop over groups of points; conv1's 1 + 2 kernels (shared by all
  points) are computed before the loop (XLA hoists them), not once per group."""
  if jax.default_backend() != "cpu":
    pytest.skip("the grouped chunk loop is the CPU path")
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  loss_fn = functional.make_loss_fn(g)
  rng = np.random.default_rng(2)
  batch = {"image": jnp.asarray(rng.normal(size=(4, 28, 28, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 4))}
  dirs = landscape.random_directions(jax.random.key(0), p, 2)
  chunk = landscape.points._batched_point_fn(  # pylint: disable=protected-access
      loss_fn, landscape.moving_leaves(dirs), "vmap")
  coeffs = jnp.asarray(rng.normal(size=(2 * landscape.CPU_VMAP_WIDTH, 2)) * 0.1, jnp.float32)
  hlo = chunk.lower(p, s, batch, dirs, coeffs).compile().as_text()
  entry = hlo[hlo.index("\nENTRY"):]
  entry = entry[:entry.index("\n}")]
  assert " while(" in entry  # the loop over groups
  assert "f32[3136,18]" in entry  # 4*28*28 positions x 3*6 outputs, outside the loop
  one = jax.jit(landscape.points._point_fn(loss_fn))  # pylint: disable=protected-access
  want = np.array([one(p, s, batch, dirs, c) for c in coeffs])
  np.testing.assert_allclose(chunk(p, s, batch, dirs, coeffs), want, rtol=1e-5)
