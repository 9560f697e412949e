"""transjax.ops' switch: with the CPU formulations on and off (plain `lax`), LeNet and the
tiny ResNet give the same values, gradients, HVPs, vmapped losses (a landscape's grid
points) and per-example gradients, and EfficientNet-Lite0 the same values and gradients,
in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transjax import functional, ops
from transjax.models import build_model

# name -> (input size, channels). Sizes as small as each model takes.
MODELS = {"lenet": (28, 1), "resnet_tiny": (16, 3), "efficientnet_lite0": (32, 3)}
# Lite0 gets values and gradients only: its float64 HVP and per-example gradients
# compiled together took 13 GB of memory, more than a CI worker can hold beside the others
# (its depthwise and BatchNorm formulations' HVPs, vmap and per-example gradients are
# checked on single layers in test_ops_conv and test_ops_batchnorm).
FULL = ("lenet", "resnet_tiny")


def _measurements(name: str, full: bool = True) -> dict[str, np.ndarray]:
  """Everything the instruments take of a loss, traced afresh under the current switch."""
  size, channels = MODELS[name]
  graphdef, params, state = functional.split(
      build_model(name, 10, in_channels=channels, input_size=size, seed=0))
  params = jax.tree.map(lambda x: x.astype(jnp.float64), params)
  state = jax.tree.map(lambda x: x.astype(jnp.float64), state)
  loss_fn = functional.make_loss_fn(graphdef)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(3, size, size, channels))),
           "label": jnp.asarray(rng.integers(0, 10, 3))}
  # Small, as a landscape's filter-normalised steps are: with N(0, 1) entries the moved
  # Lite0 is chaotic (losses ~100) and rounding alone differs at 1e-6.
  direction = jax.tree.map(lambda x: jnp.asarray(0.01 * rng.normal(size=x.shape)), params)
  loss = lambda p, b: loss_fn(p, state, b, False)[0]
  value, grad = jax.jit(jax.value_and_grad(loss))(params, batch)
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])
  if not full:
    return {"value": np.asarray(value), "grad": flat(grad)}
  hvp = jax.jit(lambda p, v: jax.jvp(lambda q: jax.grad(loss)(q, batch), (p,), (v,))[1])(
      params, direction)
  points = jnp.asarray([-0.5, 0.25, 1.0])
  grid = jax.jit(jax.vmap(lambda c: loss(jax.tree.map(lambda w, d: w + c * d, params,
                                                      direction), batch)))(points)
  per_example = jax.jit(jax.vmap(
      lambda x, y: jax.grad(loss)(params, {"image": x[None], "label": y[None]})))(
          batch["image"], batch["label"])
  return {"value": np.asarray(value), "grad": flat(grad), "hvp": flat(hvp),
          "grid": np.asarray(grid), "per_example": flat(per_example)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_switch_on_and_off_give_the_same_numbers(name):
  with jax.enable_x64(True):
    with ops.cpu_kernels(True):
      on = _measurements(name, name in FULL)
    with ops.cpu_kernels(False):
      off = _measurements(name, name in FULL)
  for key in on:
    scale = max(1.0, float(np.max(np.abs(off[key]))))
    np.testing.assert_allclose(on[key], off[key], rtol=1e-9, atol=1e-10 * scale, err_msg=key)


def test_switch_off_leaves_plain_lax():
  """Off, the LeNet forward is lax's convolutions and reduce_window, nothing else."""
  graphdef, params, state = functional.split(build_model("lenet", 10, in_channels=1,
                                                         input_size=28))
  loss_fn = functional.make_loss_fn(graphdef)
  batch = {"image": jnp.ones((2, 28, 28, 1)), "label": jnp.zeros((2,), jnp.int32)}
  trace = lambda: str(jax.make_jaxpr(lambda p: loss_fn(p, state, batch, False)[0])(params))
  with ops.cpu_kernels(False):
    off = trace()
  assert off.count("conv_general_dilated[") == 2 and "reduce_window_max" in off
  assert "custom_vmap_call" not in off   # (jax.nn.relu is a custom_jvp of its own)
  if jax.default_backend() == "cpu":
    assert "conv_general_dilated[" not in trace()   # on: Toeplitz matmuls


def test_switch_reads_the_environment_and_restores(monkeypatch):
  import importlib  # pylint: disable=import-outside-toplevel
  from transjax.ops import switch  # pylint: disable=import-outside-toplevel
  before = switch.cpu_kernels_enabled()
  with ops.cpu_kernels(not before):
    assert switch.cpu_kernels_enabled() is (not before)
  assert switch.cpu_kernels_enabled() is before
  try:
    for value, enabled in (("0", False), ("off", False), ("1", True)):
      monkeypatch.setenv(switch.ENV_VAR, value)
      assert importlib.reload(switch).cpu_kernels_enabled() is enabled
  finally:
    switch.set_cpu_kernels(before)
