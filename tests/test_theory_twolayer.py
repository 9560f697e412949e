"""Tests of theory.twolayer: init, float64 GD, Theorem 3 step count, divergence, memory."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theory import gram, twolayer
from theory.errors import DivergenceError, MemoryBudgetError


def _problem(n=10, d=5, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  return x, np.tanh(2 * x[:, 0])


def test_init_is_deterministic_per_seed_and_float64():
  first = twolayer.init_network(3, 64, 4, 0.1)
  again = twolayer.init_network(3, 64, 4, 0.1)
  other = twolayer.init_network(4, 64, 4, 0.1)
  np.testing.assert_array_equal(first.w_init, again.w_init)
  assert not np.array_equal(first.w_init, other.w_init)
  assert first.w_init.dtype == np.float64
  assert set(np.unique(first.signs)) <= {-1.0, 1.0}


def test_gd_reaches_tolerance_within_theorem3_step_count_and_keeps_global_dtype():
  x, y = _problem()
  x64_before = jax.config.jax_enable_x64
  spec = gram.spectrum(gram.gram_inf_sym(x))
  eta, tol = 1.0 / spec.lambda_max, 1e-3
  network = twolayer.init_network(0, 4096, x.shape[1], 0.02)
  trajectory = twolayer.train(network, network.w_init, x, y, eta, tol, 10_000)
  assert trajectory.converged
  allowed = math.ceil(math.log(tol**2 / trajectory.residual_sq[0])
                      / math.log(1 - eta * spec.lambda_min / 2))
  assert trajectory.num_steps <= allowed
  assert trajectory.w_final.dtype == np.float64
  assert trajectory.residual_sq[-1] <= tol**2
  assert np.all(np.diff(trajectory.residual_sq) <= 0)
  # float64 was local to theory: the process-wide setting is unchanged.
  assert jax.config.jax_enable_x64 == x64_before
  if not x64_before:
    assert jnp.ones(1).dtype == jnp.float32


def test_divergent_step_is_stopped_with_a_suggestion():
  x, y = _problem()
  network = twolayer.init_network(0, 256, x.shape[1], 0.5)
  with pytest.raises(DivergenceError, match="smaller step"):
    twolayer.train(network, network.w_init, x, y, eta=50.0, tol=1e-3, max_steps=2000)


def test_memory_estimate_refuses_oversized_widths():
  with pytest.raises(MemoryBudgetError, match="GiB"):
    twolayer.check_memory(2**24, 100, 1000, 8 * 2**30)
  # The largest case (m = 2^17, d = 100, n = 1000) fits in 8 GiB.
  assert twolayer.check_memory(2**17, 100, 1000, 8 * 2**30) < 8 * 2**30


def test_log_record_steps_are_increasing_and_cover_the_cap():
  steps = twolayer.log_record_steps(1000)
  assert steps[0] == 0 and steps[-1] == 1000
  assert np.all(np.diff(steps) > 0)
  assert len(steps) < 40


@pytest.mark.parametrize("width, block", [(1000, 256), (512, 512), (300, 64)])
def test_neuron_blocks_take_the_same_steps_as_the_full_width(width, block):
  """The CPU form (neuron blocks in turn, padded to whole blocks) is the same GD: the
  same weights, residual and step count, both for a step cap and for a tolerance stop."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 7))
    x = jnp.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))
    y = jnp.asarray(rng.choice([-1.0, 1.0], size=40))
    net = twolayer.init_network(0, width, 7, kappa=1.0)
    w, a = jnp.asarray(net.w_init), jnp.asarray(net.signs)
    for stop_step, tol_sq in ((25, -1.0), (100000, 1.0)):
      args = (w, a, x, y, 0.5, stop_step, 3, tol_sq, 1e300)
      w_full, res_full, step_full = twolayer._descend_full(*args)
      w_blocks, res_blocks, step_blocks = twolayer._descend_blocks(*args, block=block)
      assert int(step_blocks) == int(step_full) and int(step_full) > 3
      np.testing.assert_allclose(np.asarray(w_blocks), np.asarray(w_full), rtol=0, atol=1e-12)
      np.testing.assert_allclose(float(res_blocks), float(res_full), rtol=1e-12)
