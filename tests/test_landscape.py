"""Tests for transjax.analysis.landscape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transjax import functional
from transjax import params as params_lib
from transjax.analysis import landscape
from transjax.models import build_model


@pytest.fixture(scope="module")
def problem():
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=16, head="mlp"))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(16, 16, 16, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 16))}
  return functional.make_loss_fn(g), p, s, batch


def test_filter_normalisation_gives_each_filter_the_centre_norm(problem):
  _, p, _, _ = problem
  d = landscape.random_direction(jax.random.key(0), p)
  for (path, di), (_, wi) in zip(params_lib.named_leaves(d), params_lib.named_leaves(p)):
    di, wi = np.asarray(di), np.asarray(wi)
    if wi.ndim <= 1:
      assert not di.any(), path  # biases and BatchNorm: zero by default
    else:
      axes = tuple(range(wi.ndim - 1))
      np.testing.assert_allclose(np.linalg.norm(di, axis=axes) if wi.ndim == 2 else
                                 np.sqrt((di ** 2).sum(axes)),
                                 np.sqrt((wi ** 2).sum(axes)), rtol=1e-5, err_msg=path)
  d_bn = landscape.random_direction(jax.random.key(0), p, include_bias_bn=True)
  for (path, di), (_, wi) in zip(params_lib.named_leaves(d_bn), params_lib.named_leaves(p)):
    if np.ndim(wi) == 1 and np.linalg.norm(wi) > 0:
      np.testing.assert_allclose(np.linalg.norm(di), np.linalg.norm(wi), rtol=1e-5)


def test_orthogonal_directions(problem):
  _, p, _, _ = problem
  a, b = landscape.random_directions(jax.random.key(1), p, 2, orthogonal=True)
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])
  assert abs(np.dot(flat(a), flat(b))) < 1e-4 * np.linalg.norm(flat(a)) * np.linalg.norm(flat(b))


def test_centre_equals_loss_and_chunked_equals_unchunked_and_sequential(problem):
  loss_fn, p, s, batch = problem
  dirs = landscape.random_directions(jax.random.key(2), p, 2)
  axis = landscape.paper_axis(5, 0.05)
  whole = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=25,
                                   vectorize="vmap")
  chunked = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=4,
                                     vectorize="vmap")
  mapped = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=7,
                                    vectorize="map")
  centre = float(loss_fn(p, s, batch, False)[0])
  assert axis[2] == 0.0
  np.testing.assert_allclose(whole.losses[2, 2], centre, rtol=1e-6)
  np.testing.assert_allclose(whole.center_loss, centre, rtol=1e-6)
  np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-5)
  np.testing.assert_allclose(mapped.losses, whole.losses, rtol=1e-5)
  assert chunked.plan.num_chunks == 7 and whole.plan.num_chunks == 1
  seq = landscape.sequential_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  np.testing.assert_allclose(seq, whole.losses, rtol=1e-5)


def test_paper_axis():
  axis = landscape.paper_axis()
  assert len(axis) == 200 and axis[0] == -0.1 and np.isclose(axis[-1], 0.099)


def test_per_layer_landscape_moves_only_that_layer(problem):
  loss_fn, p, s, batch = problem
  mask = landscape.layer_mask(p, "conv2")
  (d,) = landscape.random_directions(jax.random.key(3), p, 1, mask)
  for path, leaf in params_lib.named_leaves(d):
    assert (np.any(np.asarray(leaf) != 0)) == (path == "conv2/kernel"), path
  res = landscape.landscape_1d(loss_fn, p, s, batch, key=3, mask=mask, resolution=4, eta=0.1,
                               chunk_size=4)
  moved = jax.tree.map(lambda w, di: w + res.axes[0][0] * di, p, d)
  np.testing.assert_allclose(res.losses[0], float(loss_fn(moved, s, batch, False)[0]), rtol=1e-5)


def test_bad_inputs(problem):
  loss_fn, p, s, batch = problem
  with pytest.raises(params_lib.UnknownLayerError, match="Valid layers:.*conv1"):
    landscape.layer_mask(p, "layer3.0.conv2")
  with pytest.raises(ValueError, match="selects no parameter"):
    landscape.random_direction(jax.random.key(0), p, jax.tree.map(lambda _: False, p))
  with pytest.raises(landscape.GridTooLargeError, match=r"even chunk=1 does not fit"):
    landscape.landscape_2d(loss_fn, p, s, batch, resolution=4, memory_budget_bytes=1000)
  plan = landscape.plan_chunks(40000, 2**20, 2**30, max_chunk=4096)
  assert plan.chunk_size == 1000 and plan.num_chunks == 40
  assert "chunks of 1000" in plan.describe()
  if jax.default_backend() == "cpu":
    n = 80 * landscape.CPU_MAX_CHUNK  # the budget (2**30 / 2**20 points) is not the cap
    assert landscape.plan_chunks(n, 2**20, 2**30).chunk_size == landscape.CPU_MAX_CHUNK
  # A chunk that holds only a group of its points at once (the CPU loop) is bounded by the
  # budget only while that group does not fit: 16 points fit here.
  assert landscape.plan_chunks(4096, 2**20, 2**24, max_chunk=512, resident=8).chunk_size == 512
  assert landscape.plan_chunks(4096, 2**20, 2**24, max_chunk=512, resident=32).chunk_size == 16
  assert landscape.plan_chunks(4096, 2**20, 2**24, max_chunk=512).chunk_size == 16
  # ... and by the work a chunk holds: a heavier point (128 MiB) gets a shorter chunk.
  assert landscape.plan_chunks(4096, 2**27, 2**30, max_chunk=512, resident=8).chunk_size == (
      landscape.CHUNK_WORK_BYTES // 2**27)


def test_nan_losses_are_reported_and_the_rest_kept(problem):
  loss_fn, p, s, batch = problem

  def nan_far(params, state, b, train):
    loss, aux = loss_fn(params, state, b, train)
    big = jnp.abs(params["conv1"]["kernel"]).max() > 10 * jnp.abs(p["conv1"]["kernel"]).max()
    return jnp.where(big, jnp.nan, loss), aux

  mask = landscape.layer_mask(p, "conv1")
  dirs = landscape.random_directions(jax.random.key(4), p, 2, mask)
  axis = np.array([-100.0, 0.0, 0.01])
  res = landscape.loss_landscape(nan_far, p, s, batch, dirs, [axis, axis], chunk_size=9)
  assert res.nan_count == 5
  assert res.nan_points[0] == [-100.0, -100.0]
  assert np.isfinite(res.losses[1:, 1:]).all()
  assert res.to_dict()["losses"][0][0] is None


def test_the_memory_estimate_is_computed_once_per_loss_and_shapes(problem, monkeypatch):
  loss_fn, p, s, batch = problem
  dirs = landscape.random_directions(jax.random.key(3), p, 2)
  want = landscape.chunks._estimate_bytes_per_point(loss_fn, p, s, batch, dirs)
  landscape.chunks._estimate_for_shapes.cache_clear()
  calls = []
  real = landscape.chunks._estimate_bytes_per_point
  monkeypatch.setattr(landscape.chunks, "_estimate_bytes_per_point",
                      lambda *a: calls.append(1) or real(*a))
  assert landscape.estimate_bytes_per_point(loss_fn, p, s, batch, dirs) == want
  other = jax.tree.map(lambda x: 2 * x, p)  # other values, same shapes
  assert landscape.estimate_bytes_per_point(loss_fn, other, s, batch, dirs) == want
  assert len(calls) == 1
  half = {k: v[: len(v) // 2] for k, v in batch.items()}  # other shapes: estimated anew
  assert landscape.estimate_bytes_per_point(loss_fn, p, s, half, dirs)[0] < want[0]
  assert len(calls) == 2


def test_an_interrupted_grid_resumes_after_its_last_finished_chunk(problem, tmp_path,
                                                                   monkeypatch):
  loss_fn, p, s, batch = problem
  dirs = landscape.random_directions(jax.random.key(5), p, 2)
  axis = landscape.paper_axis(5, 0.05)
  path = str(tmp_path / "partial.npz")
  whole = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=4)
  real = landscape.points._batched_point_fn
  calls = []

  def counting(limit):
    def get(*key):
      fn = real(*key)
      def call(*args):
        if len(calls) == limit:
          raise KeyboardInterrupt
        calls.append(1)
        return fn(*args)
      return call
    return get

  monkeypatch.setattr(landscape.points, "_batched_point_fn", counting(3))
  with pytest.raises(KeyboardInterrupt):  # killed during the 4th of 7 chunks
    landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=4,
                             resume_path=path)
  calls.clear()
  monkeypatch.setattr(landscape.points, "_batched_point_fn", counting(None))
  resumed = landscape.loss_landscape(loss_fn, p, s, batch, dirs, [axis, axis], chunk_size=4,
                                     resume_path=path)
  assert resumed.plan.resumed_points == 12 and len(calls) == 4
  np.testing.assert_array_equal(resumed.losses, whole.losses)
  # Another grid (other directions) does not take the file's points.
  calls.clear()
  other = landscape.random_directions(jax.random.key(6), p, 2)
  fresh = landscape.loss_landscape(loss_fn, p, s, batch, other, [axis, axis], chunk_size=4,
                                   resume_path=path)
  assert fresh.plan.resumed_points == 0 and len(calls) == 7


def test_grid_stats_separates_curvature_from_bumpiness():
  u = np.linspace(-1, 1, 21)
  uu, vv = np.meshgrid(u, u, indexing="ij")
  bowl = 0.3 + 2.0 * uu ** 2 + 1.0 * vv ** 2 + 0.5 * uu * vv
  stats = landscape.grid_stats(bowl, 0.3)
  assert stats["curvature"] == pytest.approx(3.0) and stats["bumpiness"] < 1e-12
  bumps = 0.01 * np.cos(np.pi * 10 * uu) * np.cos(np.pi * 10 * vv)   # a checkerboard
  bumpy = landscape.grid_stats(bowl + bumps, 0.3)
  assert bumpy["curvature"] == pytest.approx(3.0, abs=0.02)
  assert bumpy["bumpiness"] == pytest.approx(0.01, rel=0.05)
  # The Laplacian roughness grows with the bowl's curvature alone; bumpiness does not.
  steep = landscape.grid_stats(10 * bowl, 3.0)
  assert steep["roughness"] > 5 * stats["roughness"] and steep["bumpiness"] < 1e-10
  with_nan = bowl.copy()
  with_nan[3, 4] = np.nan
  assert landscape.grid_stats(with_nan, 0.3)["curvature"] == pytest.approx(3.0)
