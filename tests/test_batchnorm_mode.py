"""The BatchNorm mode of the instruments (transjax.analysis.batchnorm), in float64 against
references: jax.hessian of the train-mode loss, explicit batch statistics, plain loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from transjax import functional
from transjax.analysis import batchnorm, gradients, hessian, landscape, subset
from transjax.models import build_model


class TinyBN(nnx.Module):
  """Linear -> BatchNorm -> tanh -> Linear, with the transjax model interface."""

  def __init__(self, rngs):
    self.fc1 = nnx.Linear(8, 5, rngs=rngs)
    self.bn = nnx.BatchNorm(5, momentum=0.9, rngs=rngs)
    self.fc = nnx.Linear(5, 3, rngs=rngs)

  def __call__(self, x, train=False, taps=None):
    h = self.fc1(x.reshape(x.shape[0], -1))
    return self.fc(jnp.tanh(self.bn(h, use_running_average=not train)))


def _problem(seed=0, n=32):
  g, p, s = functional.split(TinyBN(nnx.Rngs(seed)))
  p = jax.tree.map(lambda x: x.astype(jnp.float64), p)
  # Running statistics that do not fit the data, as after pretraining elsewhere.
  s = jax.tree.map(lambda x: (x + 0.7).astype(jnp.float64), s)
  rng = np.random.default_rng(seed)
  batch = {"image": jnp.asarray(rng.normal(1.0, 2.0, size=(n, 2, 2, 2))),
           "label": jnp.asarray(rng.integers(0, 3, n))}
  return functional.make_loss_fn(g), p, s, batch


def _stats(state):
  return {k: np.asarray(v) for k, v in zip(["mean", "var"],
                                           [state["bn"]["mean"][...], state["bn"]["var"][...]])}


def test_recalibrated_statistics_are_the_batch_statistics():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _problem()
    new = batchnorm.recalibrate(loss_fn, p, s, batch)
    h = np.asarray(batch["image"]).reshape(len(batch["label"]), -1) @ np.asarray(
        p["fc1"]["kernel"][...]) + np.asarray(p["fc1"]["bias"][...])
    got = _stats(new)
    np.testing.assert_allclose(got["mean"], h.mean(0), rtol=1e-12)
    np.testing.assert_allclose(got["var"], h.var(0), rtol=1e-12)
    # At the analysed point the recalibrated eval-mode loss is the train-mode loss.
    eval_loss = loss_fn(p, new, batch, False)[0]
    train_loss = loss_fn(p, s, batch, True)[0]
    np.testing.assert_allclose(eval_loss, train_loss, rtol=1e-12)
    assert abs(float(loss_fn(p, s, batch, False)[0]) - float(train_loss)) > 1e-3


def test_recalibration_over_batches_averages_their_statistics():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _problem(n=32)
    halves = [jax.tree.map(lambda x: x[:16], batch), jax.tree.map(lambda x: x[16:], batch)]
    both = _stats(batchnorm.recalibrate(loss_fn, p, s, halves))
    each = [_stats(batchnorm.recalibrate(loss_fn, p, s, b)) for b in halves]
    for k in ("mean", "var"):
      np.testing.assert_allclose(both[k], (each[0][k] + each[1][k]) / 2, rtol=1e-12)


def test_batch_mode_hessian_is_the_train_mode_hessian():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _problem()
    op = hessian.HessianOperator(loss_fn, p, s, batch, bn_mode="batch")
    sub = subset.partition(p)
    flat, unravel = ravel_pytree(sub)
    f = lambda x: loss_fn(subset.combine(unravel(x), p), s, batch, True)[0]
    np.testing.assert_allclose(op.dense(), jax.hessian(f)(flat), atol=1e-10)
    # Recalibrated: the statistics held fixed, so a different Hessian at the same point.
    rec = hessian.HessianOperator(loss_fn, p, s, batch, bn_mode="recalibrated")
    state = batchnorm.recalibrate(loss_fn, p, s, batch)
    g = lambda x: loss_fn(subset.combine(unravel(x), p), state, batch, False)[0]
    np.testing.assert_allclose(rec.dense(), jax.hessian(g)(flat), atol=1e-10)
    assert np.max(np.abs(rec.dense() - op.dense())) > 1e-4


def test_running_mode_is_the_old_behaviour():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _problem()
    sub = subset.partition(p)
    flat, unravel = ravel_pytree(sub)
    f = lambda x: loss_fn(subset.combine(unravel(x), p), s, batch, False)[0]
    op = hessian.HessianOperator(loss_fn, p, s, batch)
    assert op.bn_mode == "running"
    np.testing.assert_allclose(op.dense(), jax.hessian(f)(flat), atol=1e-10)


def test_gradients_and_landscape_in_each_mode():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _problem()
    dirs = landscape.random_directions(jax.random.key(0), p, 2)
    axes = [np.linspace(-0.5, 0.5, 3)] * 2
    for mode in batchnorm.MODES:
      prepared, state = batchnorm.prepare(loss_fn, p, s, batch, mode)
      train = mode == "batch"
      ref_loss, ref_grad = jax.value_and_grad(
          lambda q: loss_fn(q, state, batch, train)[0])(p)
      loss, grads = gradients.loss_gradient(loss_fn, p, s, batch, bn_mode=mode)
      np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
      np.testing.assert_allclose(grads["fc1/kernel"], ref_grad["fc1"]["kernel"][...],
                                 rtol=1e-10)
      grid = landscape.loss_landscape(loss_fn, p, s, batch, dirs, axes, bn_mode=mode)
      ref = landscape.sequential_landscape(loss_fn, p, s, batch, dirs, axes, bn_mode=mode)
      np.testing.assert_allclose(grid.losses, ref, rtol=1e-10)
      np.testing.assert_allclose(grid.center_loss, ref_loss, rtol=1e-12)
      var = gradients.gradient_variation(loss_fn, p, s, batch, num_steps=3, bn_mode=mode)
      np.testing.assert_allclose(var["losses"][0], ref_loss, rtol=1e-12)
    # Batch and recalibrated agree at the centre, not away from it.
    b = landscape.loss_landscape(loss_fn, p, s, batch, dirs, axes, bn_mode="batch")
    r = landscape.loss_landscape(loss_fn, p, s, batch, dirs, axes, bn_mode="recalibrated")
    np.testing.assert_allclose(b.losses[1, 1], r.losses[1, 1], rtol=1e-12)
    assert np.max(np.abs(b.losses - r.losses)) > 1e-4


def test_model_without_batchnorm_is_the_same_in_every_mode():
  g, p, s = functional.split(build_model("lenet", 10, in_channels=1, input_size=16))
  loss_fn = functional.make_loss_fn(g)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(8, 16, 16, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 8))}
  assert not batchnorm.has_statistics(s)
  values = [float(gradients.loss_gradient(loss_fn, p, s, batch, bn_mode=m)[0])
            for m in batchnorm.MODES]
  assert max(values) - min(values) < 1e-6


def test_resnet_recalibrated_eval_equals_train_mode():
  g, p, s = functional.split(build_model("resnet_tiny", 10, in_channels=3, input_size=32))
  loss_fn = functional.make_loss_fn(g)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(0.5, 1.5, size=(16, 32, 32, 3)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, 16))}
  prepared, state = batchnorm.prepare(loss_fn, p, s, batch, "recalibrated")
  np.testing.assert_allclose(prepared(p, state, batch, False)[0],
                             loss_fn(p, s, batch, True)[0], rtol=2e-5)
  mismatch = batchnorm.statistics_mismatch(loss_fn, p, s, batch)
  assert mismatch["running_loss"] != pytest.approx(mismatch["batch_loss"], rel=1e-3)


def test_bad_mode_and_foreign_loss_are_refused_in_one_line():
  with jax.enable_x64(True):
    loss_fn, p, s, batch = _problem()
  with pytest.raises(ValueError, match="bn_mode must be one of"):
    hessian.HessianOperator(loss_fn, p, s, batch, bn_mode="eval")
  foreign = lambda params, state, b, train: loss_fn(params, state, b, train)
  with pytest.raises(ValueError, match="make_loss_fn"):
    batchnorm.prepare(foreign, p, s, batch, "recalibrated")
  # Batch mode needs no graph.
  batchnorm.prepare(foreign, p, s, batch, "batch")
