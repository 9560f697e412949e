"""Tests for transjax.analysis.hessian (float64 where exactness matters)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from transjax import functional
from transjax import params as params_lib
from transjax.analysis import hessian, subset
from transjax.models import build_model


class TinyMLP(nnx.Module):
  """A model with the transjax interface and 75 parameters."""

  def __init__(self, rngs):
    self.fc1 = nnx.Linear(8, 6, rngs=rngs)
    self.fc = nnx.Linear(6, 3, rngs=rngs)

  def __call__(self, x, train=False, taps=None):
    return self.fc(jnp.tanh(self.fc1(x.reshape(x.shape[0], -1))))


def _tiny_problem(seed=0, n=24):
  g, p, s = functional.split(TinyMLP(nnx.Rngs(seed)))
  p = jax.tree.map(lambda x: x.astype(jnp.float64), p)
  rng = np.random.default_rng(seed)
  batch = {"image": jnp.asarray(rng.normal(size=(n, 2, 2, 2))),
           "label": jnp.asarray(rng.integers(0, 3, n))}
  return functional.make_loss_fn(g), p, s, batch


@pytest.fixture(scope="module")
def lenet_fc():
  """LeNet (16x16 input) restricted to the head: 850 parameters, dense Hessian feasible."""
  with jax.enable_x64(True):
    g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=16))
    p = jax.tree.map(lambda x: x.astype(jnp.float64), p)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.normal(size=(32, 16, 16, 1))),
             "label": jnp.asarray(rng.integers(0, 10, 32))}
    op = hessian.HessianOperator(functional.make_loss_fn(g), p, s, batch, mask="fc")
    dense = op.dense()
    yield op, dense


def test_hvp_equals_dense_hessian_times_v():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _tiny_problem()
    flat, unravel = ravel_pytree(subset.partition(p))
    f = lambda x: loss_fn(subset.combine(unravel(x), p), s, batch, False)[0]
    h = jax.jit(jax.hessian(f))(flat)
    v = jax.random.normal(jax.random.key(1), flat.shape, jnp.float64)
    got = ravel_pytree(hessian.hvp(loss_fn, p, s, batch, unravel(v)))[0]
    np.testing.assert_allclose(got, h @ v, rtol=1e-9, atol=1e-12)
    op = hessian.HessianOperator(loss_fn, p, s, batch)
    block = jax.random.normal(jax.random.key(2), (3, flat.size), jnp.float64)
    np.testing.assert_allclose(op.matmat(block), block @ h.T, rtol=1e-9, atol=1e-12)
    assert op.hvp_count == 3


def test_hvp_restricted_to_mask_is_the_subblock():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _tiny_problem()
    full = hessian.HessianOperator(loss_fn, p, s, batch).dense()
    sub = hessian.HessianOperator(loss_fn, p, s, batch, mask="fc").dense()
    # Leaves are in pytree order fc/bias, fc/kernel, fc1/...: fc comes first.
    n = sub.shape[0]
    assert n == 6 * 3 + 3
    np.testing.assert_allclose(sub, full[:n, :n], rtol=1e-5, atol=1e-7)


def test_dataset_average_equals_one_big_batch():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _tiny_problem(n=32)
    parts = [{k: v[:20] for k, v in batch.items()}, {k: v[20:] for k, v in batch.items()}]
    v = jax.random.normal(jax.random.key(3), (75,), jnp.float64)
    one = hessian.HessianOperator(loss_fn, p, s, batch).matvec(v)
    two = hessian.HessianOperator(loss_fn, p, s, parts).matvec(v)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-7)


def test_lanczos_top_k_matches_eigh(lenet_fc):
  op, dense = lenet_fc
  with jax.enable_x64(True):
    exact = np.linalg.eigvalsh(dense)[::-1][:20]
    res = hessian.lanczos_top_k(op, 20, tol=1e-8)
  assert res.converged
  np.testing.assert_allclose(res.eigenvalues, exact, rtol=1e-6)
  assert res.hvp_count == res.iterations < 200


def _reference_lanczos(op, v0, max_steps, key, stop=None):
  """The plain step-by-step Lanczos loop (a basis copy per step) that `_lanczos_fast` equals."""
  max_steps = min(max_steps, op.dim)
  basis = jnp.zeros((max_steps, op.dim), op.dtype)
  alphas, betas = np.zeros(max_steps), np.zeros(max_steps)
  q = v0 / jnp.linalg.norm(v0)
  steps = 0
  for j in range(max_steps):
    basis = hessian.basis._set_row(basis, j, q)
    w = op.matvec(q)
    alpha = float(jnp.vdot(w, q))
    w = hessian.basis._orthogonalize(basis, w, j + 1)
    beta = float(jnp.linalg.norm(w))
    alphas[j], betas[j] = alpha, beta
    steps = j + 1
    if stop is not None and stop(steps, alphas[:steps], betas[:steps], beta):
      break
    if steps == max_steps:
      break
    scale = max(np.max(np.abs(alphas[:steps])), 1e-30)
    if beta <= 1e-10 * scale:  # invariant subspace: restart orthogonally, T splits
      key, sub = jax.random.split(key)
      w = hessian.basis._orthogonalize(
          basis, hessian.basis._random_unit(sub, op.dim, op.dtype), j + 1)
      betas[j] = 0.0
      q = w / jnp.linalg.norm(w)
    else:
      q = w / beta
  return alphas[:steps], betas[:steps], basis[:steps], steps


@pytest.mark.parametrize("rank", [3, 60])
def test_in_place_lanczos_equals_reference_loop_and_eigh(rank):
  """Float64; rank 3 < k forces invariant-subspace restarts."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    eig = np.zeros(60)
    eig[:rank] = np.concatenate([[9.0, 5.0, 4.0], rng.normal(0, 0.5, rank - 3)])
    op = hessian.DenseOperator(q @ np.diag(eig) @ q.T)
    v0 = jnp.asarray(rng.normal(size=60))
    ref = _reference_lanczos(op, v0, 40, jax.random.key(0))
    fast = hessian.lanczos._lanczos_fast(op, v0, 40, jax.random.key(0), None)
    res = hessian.lanczos_top_k(op, 6, tol=1e-10, return_vectors=True)
  for a, b in zip(ref[:3], fast[:3]):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-9, atol=1e-9)
  assert ref[3] == fast[3] == 40
  want = np.sort(eig)[::-1][:6]
  np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-8, atol=1e-9)
  top = q[:, np.argsort(-eig)[:3]].T
  np.testing.assert_allclose(np.abs(np.sum(res.eigenvectors[:3] * top, axis=1)), 1.0, rtol=1e-6)


def test_power_iteration_agrees(lenet_fc):
  op, dense = lenet_fc
  with jax.enable_x64(True):
    w = np.linalg.eigvalsh(dense)
    exact = w[np.argsort(-np.abs(w))][:4]
    res = hessian.power_iteration_top_k(op, 4, tol=1e-9, max_iters=1000)
  np.testing.assert_allclose(res.eigenvalues, np.sort(exact)[::-1], rtol=1e-4)


def test_hutchinson_trace_within_standard_error(lenet_fc):
  op, dense = lenet_fc
  with jax.enable_x64(True):
    res = hessian.hutchinson_trace(op, 100, block_size=25, seed=0)
  assert res.hvp_count == 100
  assert abs(res.trace - np.trace(dense)) < 4 * res.std_error


def test_lanczos_and_slq_on_dense_operator():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(60, 60)))
    eig = np.concatenate([np.linspace(10, 1, 5), rng.normal(0, 0.1, 55)])
    op = hessian.DenseOperator(q @ np.diag(eig) @ q.T)
    res = hessian.lanczos_top_k(op, 5, tol=1e-10)
    np.testing.assert_allclose(res.eigenvalues, np.sort(eig)[::-1][:5], rtol=1e-8)
    dens = hessian.slq_density(op, num_probes=4, num_steps=60, grid_size=500)
  area = np.sum(dens.density) * (dens.grid[1] - dens.grid[0])
  np.testing.assert_allclose(area, 1.0, rtol=1e-2)
  assert dens.hvp_count == 4 * 60
  assert np.nanmax(dens.nodes) <= eig.max() + 1e-6


def test_a_basis_that_does_not_fit_is_refused_before_any_hvp(monkeypatch):
  """Lanczos and SLQ keep a (steps x dim) basis; one that would take more than half of
  the memory is refused with the steps that fit, before the first product."""
  with jax.enable_x64(True):
    op = hessian.DenseOperator(np.eye(60))
    monkeypatch.setattr(hessian.basis.memory, "available_bytes", lambda: (10_000, "test memory"))
    with pytest.raises(hessian.BasisTooLargeError,
                       match=r"lanczos top-5: the Krylov basis of 60 steps x 60 parameters "
                             r"\(float64\) needs 28.1 KiB, more than 50% of the 9.8 KiB of "
                             r"test memory; at most 10 steps fit\. Set max_steps\.$"):
      hessian.lanczos_top_k(op, 5, memory_fix="Set max_steps.")
    with pytest.raises(hessian.BasisTooLargeError, match="slq_density.*Lower num_steps"):
      hessian.slq_density(op, num_probes=2, num_steps=60)
    assert op.hvp_count == 0
    assert hessian.lanczos_top_k(op, 5, max_steps=10).iterations <= 10   # 10 x 60 x 8 B fits


def test_empty_mask_and_unknown_layer_are_clear_errors():
  loss_fn, p, s, batch = _tiny_problem()
  with pytest.raises(ValueError, match="selects no parameter"):
    hessian.HessianOperator(loss_fn, p, s, batch, mask=jax.tree.map(lambda _: False, p))
  with pytest.raises(params_lib.UnknownLayerError, match="Valid layers: fc, fc1"):
    hessian.HessianOperator(loss_fn, p, s, batch, mask="conv9")


@pytest.mark.parametrize("layer", ["fc", "conv2"])
def test_reused_primal_hvp_equals_forward_over_reverse_and_layer_top_k_matches_eigh(layer):
  """Float64 LeNet (16x16): the layer operator that keeps the gradient's residuals gives
  the same Hessian as forward-over-reverse, and layer_top_k its top eigenvalues."""
  with jax.enable_x64(True):
    g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=16))
    p = jax.tree.map(lambda x: x.astype(jnp.float64), p)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.normal(size=(16, 16, 16, 1))),
             "label": jnp.asarray(rng.integers(0, 10, 16))}
    loss_fn = functional.make_loss_fn(g)
    fast = hessian.HessianOperator(loss_fn, p, s, batch, mask=layer, reuse_primal=True)
    plain = hessian.HessianOperator(loss_fn, p, s, batch, mask=layer, reuse_primal=False)
    assert fast.reuse_primal and not plain.reuse_primal
    v = jax.random.normal(jax.random.key(0), (fast.dim,), jnp.float64)
    np.testing.assert_allclose(fast.matvec(v), plain.matvec(v), rtol=1e-9, atol=1e-12)
    if fast.dim <= 2500:
      exact = np.linalg.eigvalsh(plain.dense())[::-1][:5]
      res = hessian.layer_top_k(loss_fn, p, s, batch, layer, 5, tol=1e-9)
      np.testing.assert_allclose(res.eigenvalues, exact, rtol=1e-7)
    # "auto": the whole model too while its residuals fit the budget.
    assert hessian.HessianOperator(loss_fn, p, s, batch).reuse_primal is True
    many = [batch] * 9
    assert hessian.HessianOperator(loss_fn, p, s, many).reuse_primal is False


def test_auto_reuse_primal_stays_within_the_residual_budget(monkeypatch):
  """"auto" keeps the gradient's reverse pass only while its residuals fit the budget."""
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=16))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(8, 16, 16, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 8))}
  loss_fn = functional.make_loss_fn(g)
  assert hessian.HessianOperator(loss_fn, p, s, batch).reuse_primal
  monkeypatch.setattr(hessian.operator, "residual_budget_bytes", lambda: 1000)
  assert not hessian.HessianOperator(loss_fn, p, s, batch).reuse_primal
