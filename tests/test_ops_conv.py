"""transjax.ops.conv: the same values and derivatives as lax.conv_general_dilated under
every transformation the package uses (float64, so any difference is a real one)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from transjax import ops
from transjax.ops.conv import conv_general_dilated

DN = ("NHWC", "HWIO", "NHWC")

# name -> (input shape, kernel shape, conv arguments). The depthwise ones take the CPU
# shifted multiply-adds, the stride-1 ones with few input channels the Toeplitz matmul
# (blocks of 1, 2 and 4 columns here); "grouped" (2 groups of 2 channels) is not depthwise.
SETUPS = {
    "general": ((3, 9, 8, 2), (3, 2, 2, 4), dict(window_strides=(2, 1),
                                                 padding=((1, 2), (0, 1)))),
    "depthwise_3x3_same": ((2, 7, 6, 3), (3, 3, 1, 3), dict(window_strides=(1, 1),
                                                            padding="SAME")),
    "depthwise_5x5_stride2": ((2, 9, 8, 3), (5, 5, 1, 3), dict(window_strides=(2, 2),
                                                               padding=((1, 2), (2, 1)))),
    "depthwise_3x2_stride2_same": ((2, 8, 7, 4), (3, 2, 1, 4), dict(window_strides=(2, 1),
                                                                    padding="SAME")),
    "grouped": ((2, 6, 6, 4), (3, 3, 2, 4), dict(window_strides=(1, 1), padding="SAME")),
    # LeNet's conv1 on grey images.
    "one_input_channel": ((3, 9, 8, 1), (3, 2, 1, 4), dict(window_strides=(1, 1),
                                                           padding=((2, 1), (0, 1)))),
    # Many Toeplitz blocks (20 of 2 columns).
    "one_input_channel_many_blocks": ((2, 12, 40, 1), (3, 2, 1, 4), dict(
        window_strides=(1, 1), padding=((1, 1), (0, 1)))),
    # Few input channels (LeNet's conv2).
    "narrow_input": ((2, 7, 6, 3), (3, 2, 3, 4), dict(window_strides=(1, 1),
                                                      padding=((1, 0), (2, 1)))),
    "narrow_input_valid": ((2, 7, 6, 5), (3, 3, 5, 2), dict(window_strides=(1, 1),
                                                            padding="VALID")),
    # A prime output width (7): blocks of one column.
    "prime_width": ((2, 6, 9, 2), (3, 3, 2, 3), dict(window_strides=(1, 1), padding="VALID")),
    # 16 input channels: lax's own convolution.
    "many_channels": ((2, 6, 6, 16), (3, 3, 16, 2), dict(window_strides=(1, 1),
                                                         padding=((1, 1), (1, 1)))),
}


def _loss(conv, setup, x, w):
  kwargs = SETUPS[setup][2]
  groups = x.shape[-1] // w.shape[2]
  y = conv(x, w, kwargs["window_strides"], kwargs["padding"], dimension_numbers=DN,
           feature_group_count=groups)
  return jnp.sum(jnp.tanh(y) ** 2)


CASES = {
    "value": lambda f, x, w: f(x, w),
    "grad_kernel": lambda f, x, w: jax.grad(f, 1)(x, w),
    "grad_input": lambda f, x, w: jax.grad(f, 0)(x, w),
    "hessian_kernel": lambda f, x, w: jax.hessian(f, 1)(x, w),
    "hvp_forward_over_reverse": lambda f, x, w: jax.jvp(
        jax.grad(lambda k: f(x, k)), (w,), (0.3 * w,))[1],
    "hvp_input_forward_over_reverse": lambda f, x, w: jax.jvp(
        jax.grad(lambda a: f(a, w)), (x,), (0.7 * x,))[1],
    # A landscape grid: per-point kernels on per-point inputs (the CPU loop).
    "vmap_input_and_kernel": lambda f, x, w: jax.vmap(f)(
        jnp.stack([x, -x, 2 * x]), jnp.stack([w, 2 * w, -w])),
    # The first layer of a grid: per-point kernels on the shared input.
    "vmap_kernel": lambda f, x, w: jax.vmap(lambda k: f(x, k))(jnp.stack([w, -w])),
    "vmap_input": lambda f, x, w: jax.vmap(lambda a: f(a, w))(jnp.stack([x, -x])),
    "per_example_grads": lambda f, x, w: jax.vmap(lambda a: jax.grad(f, 1)(a[None], w))(x),
    "vmap_of_grad_both": lambda f, x, w: jax.vmap(jax.grad(f, (0, 1)))(
        jnp.stack([x, -x]), jnp.stack([w, 2 * w])),
    "jit_nested_vmap": lambda f, x, w: jax.jit(jax.vmap(jax.vmap(f)))(
        jnp.stack([jnp.stack([x, -x])] * 2), jnp.stack([jnp.stack([w, 2 * w])] * 2)),
}


@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_lax_conv(case, setup):
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x_shape, w_shape, _ = SETUPS[setup]
    x = jnp.asarray(rng.normal(size=x_shape))
    w = jnp.asarray(rng.normal(size=w_shape) * 0.5)
    want = CASES[case](functools.partial(_loss, lax.conv_general_dilated, setup), x, w)
    got = CASES[case](functools.partial(_loss, conv_general_dilated, setup), x, w)
    jax.tree.map(lambda g, e: np.testing.assert_allclose(np.asarray(g), np.asarray(e),
                                                         rtol=1e-12, atol=1e-12), got, want)


def test_nnx_depthwise_conv_takes_the_shifted_path_on_cpu():
  """nnx.Conv's own call (its ConvDimensionNumbers, "SAME") reaches the shifted form, and
  a landscape grid over it (per-point kernels, per-point inputs) has no convolution."""
  conv = ops.Conv(6, 6, (3, 3), strides=(2, 2), padding="SAME", feature_group_count=6,
                  use_bias=False, rngs=nnx.Rngs(0))
  reference = nnx.Conv(6, 6, (3, 3), strides=(2, 2), padding="SAME", feature_group_count=6,
                       use_bias=False, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 9, 10, 6))
  np.testing.assert_allclose(conv(x), reference(x), rtol=1e-5, atol=1e-5)
  kernel = conv.kernel[...]
  apply = lambda a, k: conv_general_dilated(a, k, (2, 2), "SAME", dimension_numbers=DN,
                                            feature_group_count=6)
  grid = jax.vmap(apply)
  text = str(jax.make_jaxpr(grid)(jnp.stack([x, x]), jnp.stack([kernel, -kernel])))
  if jax.default_backend() == "cpu":
    assert "conv_general_dilated" not in text
  else:
    assert "conv_general_dilated" in text


def test_batched_input_and_kernel_is_a_loop_not_a_grouped_conv_on_cpu():
  """The reason the module exists: no feature_group_count > 1 in the compiled grid."""
  x, w = jnp.ones((4, 2, 6, 6, 3)), jnp.ones((4, 3, 3, 3, 5))
  f = jax.vmap(lambda a, k: conv_general_dilated(a, k, (1, 1), "SAME", dimension_numbers=DN))
  text = str(jax.make_jaxpr(f)(x, w))
  assert "feature_group_count=4" not in text
  if jax.default_backend() == "cpu":
    assert "while" in text or "scan" in text


def test_toeplitz_form_takes_few_input_channels_in_blocks_of_at_most_1p5_kernel_widths():
  from transjax.ops.conv import POINT_BLOCK, toeplitz_block, toeplitz_fits  # pylint: disable=import-outside-toplevel
  assert toeplitz_fits(jnp.ones((1, 28, 28, 1)), jnp.ones((5, 5, 1, 6)), ((2, 2), (2, 2)))
  assert toeplitz_fits(jnp.ones((1, 14, 14, 6)), jnp.ones((5, 5, 6, 16)), "VALID")
  assert toeplitz_fits(jnp.ones((1, 224, 224, 3)), jnp.ones((3, 3, 3, 64)), ((1, 1), (1, 1)))
  # ResNet-50's 3x3 convs (64+ channels) keep lax's convolution.
  assert not toeplitz_fits(jnp.ones((1, 56, 56, 64)), jnp.ones((3, 3, 64, 64)), "VALID")
  assert [toeplitz_block(28, 5), toeplitz_block(10, 5), toeplitz_block(7, 3),
          toeplitz_block(224, 3)] == [7, 5, 1, 4]
  # A landscape's per-point convolutions (forward only) take narrower blocks.
  assert toeplitz_block(10, 5, POINT_BLOCK) == 2
  assert toeplitz_block(7, 3, POINT_BLOCK) == 1


def test_one_input_channel_uses_no_convolution_on_cpu():
  x, w = jnp.ones((2, 9, 8, 1)), jnp.ones((5, 5, 1, 3))
  text = str(jax.make_jaxpr(lambda a, k: conv_general_dilated(
      a, k, (1, 1), ((2, 2), (2, 2)), dimension_numbers=DN))(x, w))
  assert ("conv_general_dilated[" in text) == (jax.default_backend() != "cpu")
  text = str(jax.make_jaxpr(lambda a, k: conv_general_dilated(
      a, k, (2, 2), "VALID", dimension_numbers=DN))(x, w))
  assert "conv_general_dilated[" in text  # strided: the ordinary path


def test_lenet_through_nnx_takes_the_cpu_paths():
  """nnx.Conv's own call (it passes out_sharding=None) reaches the CPU formulations: on
  CPU LeNet's forward and gradient have no convolution (both are Toeplitz matmuls)."""
  from transjax import functional  # pylint: disable=import-outside-toplevel
  from transjax.models import build_model  # pylint: disable=import-outside-toplevel
  graphdef, params, state = functional.split(build_model("lenet", 10, in_channels=1,
                                                         input_size=28))
  loss = functional.make_loss_fn(graphdef)
  batch = {"image": jnp.ones((2, 28, 28, 1)), "label": jnp.zeros((2,), jnp.int32)}
  forward = str(jax.make_jaxpr(lambda p: loss(p, state, batch, False)[0])(params))
  gradient = jax.jit(jax.grad(lambda p: loss(p, state, batch, False)[0])).lower(
      params).compile().as_text()
  if jax.default_backend() == "cpu":
    assert "conv_general_dilated[" not in forward
    assert " convolution(" not in gradient
  else:
    assert forward.count("conv_general_dilated[") == 2
