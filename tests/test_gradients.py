"""Tests for transjax.analysis.gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transjax import functional
from transjax import params as params_lib
from transjax.analysis import gradients
from transjax.models import build_model

A = np.diag([4.0, 1.0, 0.25])


def quadratic_loss(params, state, batch, train):
  del state, batch, train
  x = params["w"]["kernel"].ravel()
  return 0.5 * x @ jnp.asarray(A) @ x, {}


@pytest.mark.parametrize("protocol", ["gradient", "fixed"])
def test_quadratic_matches_closed_form(protocol):
  with jax.enable_x64(True):
    theta = np.array([1.0, -2.0, 3.0])
    params = {"w": {"kernel": jnp.asarray(theta.reshape(3, 1))}}
    out = gradients.gradient_variation(quadratic_loss, params, None, {}, protocol=protocol,
                                       lr=0.05, step_length=0.1, num_steps=100)
  g = A @ theta
  s = 0.05 if protocol == "gradient" else 0.1 / np.linalg.norm(g)
  ks = np.arange(0, 101)
  path = np.array([0.5 * (theta - k * s * g) @ A @ (theta - k * s * g) for k in ks])
  np.testing.assert_allclose(out["losses"], path, rtol=1e-9)
  np.testing.assert_allclose(out["max_change"], path.max() - path.min(), rtol=1e-9)
  np.testing.assert_allclose(out["max_abs_change"], np.abs(path - path[0]).max(), rtol=1e-9)
  # grad(theta - k s g) - g = -k s A g, so predictiveness = s ||A g||, beta = ||A g|| / ||g||.
  np.testing.assert_allclose(out["grad_predictiveness"], s * np.linalg.norm(A @ g), rtol=1e-9)
  np.testing.assert_allclose(out["beta_smoothness"], np.linalg.norm(A @ g) / np.linalg.norm(g),
                             rtol=1e-9)
  if protocol == "fixed":
    np.testing.assert_allclose(out["step"] * out["grad_norm"], 0.1, rtol=1e-9)


@pytest.fixture(scope="module")
def lenet():
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=16))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(8, 16, 16, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 8))}
  return functional.make_loss_fn(g), p, s, batch


def test_callback(lenet):
  loss_fn, p, s, batch = lenet
  cb = gradients.GradientVariationCallback(3, batch, "fixed", num_steps=4, step_length=0.1)
  assert cb.should_run(1) and cb.should_run(6) and not cb.should_run(4)
  with pytest.raises(RuntimeError, match="no loss_fn"):
    cb(0, p, s)
  out = cb.bind(loss_fn)(0, p, s)
  assert set(out) == {f"gradvar_fixed/{k}" for k in (
      "max_change", "max_abs_change", "max_rise", "descent", "grad_norm",
      "grad_predictiveness", "beta_smoothness")} | {"gradvar_loss"}
  assert all(np.isfinite(v) for v in out.values())
  with pytest.raises(ValueError, match="protocols must be among"):
    gradients.GradientVariationCallback(3, batch, ("fixed", "steepest"))


def test_both_protocols_from_one_gradient_equal_each_alone(lenet):
  loss_fn, p, s, batch = lenet
  kw = dict(lr=0.05, step_length=0.2, num_steps=5)
  both = gradients.gradient_variations(loss_fn, p, s, batch, **kw)
  for protocol in gradients.PROTOCOLS:
    alone = gradients.gradient_variation(loss_fn, p, s, batch, protocol=protocol, **kw)
    assert alone.keys() == both[protocol].keys()
    np.testing.assert_allclose(both[protocol]["losses"], alone["losses"], rtol=1e-6)
    for k in ("max_change", "grad_norm", "step", "beta_smoothness"):
      np.testing.assert_allclose(both[protocol][k], alone[k], rtol=1e-5, err_msg=k)


def test_diverging_losses_are_nan_and_left_out(lenet):
  loss_fn, p, s, batch = lenet
  blow_up = lambda params, state, b, train: (
      jnp.where(loss_fn(params, state, b, train)[0] > loss_fn(p, s, b, False)[0] + 1e-3,
                jnp.inf, loss_fn(params, state, b, train)[0]), {})
  out = gradients.gradient_variation(blow_up, p, s, batch, protocol="fixed", step_length=5.0,
                                     num_steps=6, with_gradients=False)
  assert out["num_nonfinite"] > 0 and np.isfinite(out["max_change"])
  assert sum(np.isnan(out["losses"])) == out["num_nonfinite"]


def test_svd_projection_and_matrix_layout():
  rng = np.random.default_rng(0)
  conv = rng.normal(size=(3, 3, 4, 5))  # HWIO
  m = gradients.as_matrix(conv)
  assert m.shape == (5, 4 * 3 * 3)
  np.testing.assert_allclose(m[2], np.transpose(conv[..., 2], (2, 0, 1)).ravel())
  g = rng.normal(size=(6, 4))   # dense (in, out)
  u, sv, vt = np.linalg.svd(g.T, full_matrices=False)
  w = (u * np.array([3.0, 2.0, 1.0, 0.5])) @ vt   # W with known projections on G's directions
  out = gradients.gradient_svd_projection(g, w.T)
  np.testing.assert_allclose(out["singular_values"], sv)
  np.testing.assert_allclose(out["projection"], [3.0, 2.0, 1.0, 0.5], rtol=1e-10)


def test_gradient_stats_and_layer_scale(lenet):
  loss_fn, p, s, batch = lenet
  stats = gradients.gradient_stats(loss_fn, p, s, batch, "conv2", bins=20)
  assert sum(stats["histogram"]["counts"]) == 5 * 5 * 6 * 16
  assert len(stats["svd"]["singular_values"]) == 16
  assert stats["scale"]["layers"] == ["fc", "fc2", "fc1", "conv2", "conv1"]
  # the last tap's gradient is the gradient w.r.t. the head's input: check against autodiff
  _, grads = gradients.loss_gradient(loss_fn, p, s, batch)
  assert all(n > 0 for n in stats["scale"]["norms"])
  with pytest.raises(params_lib.UnknownLayerError, match="Valid layers"):
    gradients.gradient_stats(loss_fn, p, s, batch, "conv7")
  with pytest.raises(ValueError, match="selects no parameter"):
    gradients.gradient_variation(loss_fn, p, s, batch, mask=jax.tree.map(lambda _: False, p))


def test_the_compiled_gradients_take_the_weights_as_arguments():
  """Weights and batch closed over by a jitted function become constants compiled into it
  (ResNet-50's 100 MB on every Fig 7 call); the gradient functions take them as arguments."""
  from transjax.analysis import subset  # pylint: disable=import-outside-toplevel
  from transjax.models.taps import TapRecorder  # pylint: disable=import-outside-toplevel
  graphdef, params, state = functional.split(build_model("lenet", 10, in_channels=1,
                                                         input_size=28))
  loss_fn = functional.make_loss_fn(graphdef)
  batch = {"image": jnp.zeros((4, 28, 28, 1)), "label": jnp.zeros((4,), jnp.int32)}
  recorder = TapRecorder()
  jax.eval_shape(lambda p: loss_fn(p, state, {**batch, "taps": recorder}, False)[0], params)
  taps = {name: jnp.zeros(sd.shape, sd.dtype) for name, sd in recorder.items()}
  n_weights = sum(x.size for x in jax.tree.leaves(params))
  for fn, args in ((gradients._value_and_grad_fn, (subset.partition(params),)),  # pylint: disable=protected-access
                   (gradients._taps_grad_fn, (taps,))):  # pylint: disable=protected-access
    text = fn(loss_fn).lower(*args, params, state, batch).as_text()
    # The weights' digits are not in it: no constant holds more than a few numbers (baked
    # in, fc1's 48,000 weights alone would be one constant of ~500k characters).
    longest = max((len(line) for line in text.splitlines() if "constant" in line), default=0)
    assert longest < min(5000, n_weights), longest
    assert fn(loss_fn) is fn(loss_fn)         # one compiled function per loss function
