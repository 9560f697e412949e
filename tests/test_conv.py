"""transjax.models.conv: the same values and derivatives as lax.conv_general_dilated under
every transformation the package uses (float64, so any difference is a real one)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from transjax.models.conv import conv_general_dilated

DN = ("NHWC", "HWIO", "NHWC")


def _loss(conv, x, w):
  y = conv(x, w, (2, 1), ((1, 2), (0, 1)), dimension_numbers=DN)
  return jnp.sum(jnp.tanh(y) ** 2)


CASES = {
    "value": lambda c, x, w: _loss(c, x, w),
    "grad_kernel": lambda c, x, w: jax.grad(_loss, 2)(c, x, w),
    "grad_input": lambda c, x, w: jax.grad(_loss, 1)(c, x, w),
    "hessian_kernel": lambda c, x, w: jax.hessian(_loss, 2)(c, x, w),
    "hvp_forward_over_reverse": lambda c, x, w: jax.jvp(
        jax.grad(lambda k: _loss(c, x, k)), (w,), (0.3 * w,))[1],
    # A landscape grid: per-point kernels on per-point inputs (the CPU loop).
    "vmap_input_and_kernel": lambda c, x, w: jax.vmap(lambda a, k: _loss(c, a, k))(
        jnp.stack([x, -x, 2 * x]), jnp.stack([w, 2 * w, -w])),
    # The first layer of a grid: per-point kernels on the shared input.
    "vmap_kernel": lambda c, x, w: jax.vmap(lambda k: _loss(c, x, k))(jnp.stack([w, -w])),
    "vmap_input": lambda c, x, w: jax.vmap(lambda a: _loss(c, a, w))(jnp.stack([x, -x])),
    "per_example_grads": lambda c, x, w: jax.vmap(lambda a: jax.grad(_loss, 2)(c, a[None], w))(x),
    "vmap_of_grad_both": lambda c, x, w: jax.vmap(lambda a, k: jax.grad(_loss, 2)(c, a, k))(
        jnp.stack([x, -x]), jnp.stack([w, 2 * w])),
    "jit_nested_vmap": lambda c, x, w: jax.jit(jax.vmap(jax.vmap(lambda a, k: _loss(c, a, k))))(
        jnp.stack([jnp.stack([x, -x])] * 2), jnp.stack([jnp.stack([w, 2 * w])] * 2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_lax_conv(case):
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 9, 8, 2)))
    w = jnp.asarray(rng.normal(size=(3, 2, 2, 4)) * 0.5)
    want = CASES[case](lax.conv_general_dilated, x, w)
    got = CASES[case](conv_general_dilated, x, w)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_batched_input_and_kernel_is_a_loop_not_a_grouped_conv_on_cpu():
  """The reason the module exists: no feature_group_count > 1 in the compiled grid."""
  x, w = jnp.ones((4, 2, 6, 6, 3)), jnp.ones((4, 3, 3, 3, 5))
  f = jax.vmap(lambda a, k: conv_general_dilated(a, k, (1, 1), "SAME", dimension_numbers=DN))
  text = str(jax.make_jaxpr(f)(x, w))
  assert "feature_group_count=4" not in text
  if jax.default_backend() == "cpu":
    assert "while" in text or "scan" in text


def _loss_one_channel(conv, x, w):
  y = conv(x, w, (1, 1), ((2, 1), (0, 1)), dimension_numbers=DN)
  return jnp.sum(jnp.tanh(y) ** 2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_input_channel_shifted_path_matches_lax_conv(case):
  """LeNet's conv1 on grey images: on CPU the shifted multiply-add formulation."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 9, 8, 1)))
    w = jnp.asarray(rng.normal(size=(3, 2, 1, 4)) * 0.5)
    globals()["_loss"], saved = _loss_one_channel, _loss
    try:
      want = CASES[case](lax.conv_general_dilated, x, w)
      got = CASES[case](conv_general_dilated, x, w)
    finally:
      globals()["_loss"] = saved
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_one_input_channel_uses_no_convolution_on_cpu():
  x, w = jnp.ones((2, 9, 8, 1)), jnp.ones((5, 5, 1, 3))
  text = str(jax.make_jaxpr(lambda a, k: conv_general_dilated(
      a, k, (1, 1), ((2, 2), (2, 2)), dimension_numbers=DN))(x, w))
  assert ("conv_general_dilated[" in text) == (jax.default_backend() != "cpu")
  text = str(jax.make_jaxpr(lambda a, k: conv_general_dilated(
      a, k, (2, 2), "VALID", dimension_numbers=DN))(x, w))
  assert "conv_general_dilated[" in text  # strided: the ordinary path
