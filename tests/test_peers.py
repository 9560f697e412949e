"""experiments.peers: each peer computes the same function as transjax on the benchmark's
workload, so the benchmarks' agreement checks compare like with like."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import peers
from transjax import functional
from transjax.analysis import hessian, landscape
from transjax.models import build_model

needs_torch = pytest.mark.skipif(not peers.available(), reason="needs pip install -e '.[bench]'")


@pytest.fixture(scope="module")
def lenet():
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=28))
  rng = np.random.default_rng(0)
  # Nonzero biases, so the weight mapping is checked for them too.
  p = jax.tree.map(lambda x: x + 0.05 * jnp.asarray(rng.normal(size=x.shape), x.dtype), p)
  batch = {"image": jnp.asarray(rng.random((8, 28, 28, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 8))}
  return functional.make_loss_fn(g), p, s, batch


@needs_torch
def test_torch_lenet_with_transjax_weights_is_the_same_function(lenet):
  loss_fn, p, s, batch = lenet
  model = peers.lenet_from_transjax(p)
  x, y = peers.torch_batch(batch)
  np.testing.assert_allclose(peers.torch_loss(model, x, y),
                             float(loss_fn(p, s, batch, False)[0]), rtol=1e-5)
  dirs = landscape.random_directions(jax.random.key(0), p, 2)
  axis = landscape.paper_axis(3, 0.05)
  want = landscape.sequential_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  got = peers.landscape_point_loop(model, x, y, dirs, [axis, axis],
                                   lambda d: peers.lenet_state_dict(d, model.size))
  np.testing.assert_allclose(got, want, rtol=1e-5)


@needs_torch
def test_torch_hvp_and_its_spectrum_match_transjax(lenet):
  loss_fn, p, s, batch = lenet
  model = peers.lenet_from_transjax(p)
  x, y = peers.torch_batch(batch)
  op = hessian.HessianOperator(loss_fn, p, s, batch, mask="fc")
  ours = hessian.lanczos_top_k(op, 3, tol=1e-6)
  theirs = peers.eigsh_top_k(model, x, y, 3, 1e-8, only=["fc"])
  np.testing.assert_allclose(theirs["eigenvalues"], ours.eigenvalues, rtol=1e-3)
  ph = peers.pyhessian_top_k(model, x, y, 1, 1e-6, max_iter=500, only=["fc"])
  np.testing.assert_allclose(ph["eigenvalues"][0], ours.eigenvalues[0], rtol=1e-3)
  assert ph["hvp_count"] > 0
  assert all(q.requires_grad for q in model.parameters())  # restored afterwards


def test_numpy_gd_step_is_theorys_step():
  from theory import twolayer  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  x = rng.standard_normal((12, 5))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  y = np.tanh(x[:, 0])
  net = twolayer.init_network(0, 64, 5, 0.5)
  want = twolayer.train(net, net.w_init, x, y, 0.1, 0.0, 1, record_steps=[1]).w_final
  np.testing.assert_allclose(peers.numpy_gd_step(net.w_init, net.signs, x, y, 0.1), want,
                             rtol=1e-12, atol=1e-14)


def test_torch_efficientnet_lite_is_the_same_function_and_landscape():
  """The PyTorch Lite0 built from transjax's weights (BatchNorm statistics included) gives
  the same logits, and its point loop over one block the same landscape (needs torch
  only, which CI's .[test] installs)."""
  pytest.importorskip("torch")
  g, p, s = functional.split(build_model("efficientnet_lite0", 10, input_size=32))
  rng = np.random.default_rng(0)
  s = jax.tree.map(lambda x: x + 0.1 * jnp.abs(jnp.asarray(rng.normal(size=x.shape), x.dtype)), s)
  batch = {"image": jnp.asarray(rng.normal(size=(2, 32, 32, 3)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 2))}
  model = peers.torch_efficientnet_from_transjax(p, s).eval()
  x, y = peers.torch_batch(batch)
  loss_fn = functional.make_loss_fn(g)
  logits = functional.make_apply_fn(g)(p, s, batch["image"], False)[0]
  np.testing.assert_allclose(model(x).detach().numpy(), logits, atol=1e-5)
  dirs = landscape.random_directions(jax.random.key(0), p, 2, mask="blocks/3")
  axis = landscape.paper_axis(2, 0.05)
  want = landscape.sequential_landscape(loss_fn, p, s, batch, dirs, [axis, axis])
  got = peers.landscape_point_loop(model, x, y, dirs, [axis, axis], peers.efficientnet_state_dict)
  np.testing.assert_allclose(got, want, rtol=1e-5)
