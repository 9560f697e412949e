"""A model, loss and batch of one's own reach every instrument (docs/own_model.md): a module
without `train`/`taps`, a plain `loss(params, batch)` through `functional.loss_from`, and an
(images, labels) pair; the example binary runs on real MNIST and its two routes agree."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from transjax import functional
from transjax.analysis import batchnorm, hessian, landscape


class _Plain(nnx.Module):
  """No train or taps keyword, one BatchNorm."""

  def __init__(self):
    self.conv = nnx.Conv(1, 4, (3, 3), rngs=nnx.Rngs(0))
    self.bn = nnx.BatchNorm(4, use_running_average=True, rngs=nnx.Rngs(1))
    self.fc = nnx.Linear(4, 3, rngs=nnx.Rngs(2))

  def __call__(self, x):
    return self.fc(jax.nn.relu(self.bn(self.conv(x))).mean(axis=(1, 2)))


def _pair(n=6):
  rng = np.random.default_rng(0)
  return (jnp.asarray(rng.normal(size=(n, 6, 6, 1)), jnp.float32),
          jnp.asarray(rng.integers(0, 3, n)))


def test_a_module_without_train_or_taps_and_a_pair_batch():
  g, p, s = functional.split(_Plain())
  loss_fn = functional.make_loss_fn(g)
  x, y = _pair()
  as_dict = loss_fn(p, s, {"image": x, "label": y}, False)[0]
  np.testing.assert_allclose(loss_fn(p, s, (x, y), False)[0], as_dict, rtol=1e-6)
  op = hessian.HessianOperator(loss_fn, p, s, (x, y))
  op_dict = hessian.HessianOperator(loss_fn, p, s, {"image": x, "label": y})
  v = jnp.ones((op.dim,), op.dtype)
  np.testing.assert_allclose(op.matvec(v), op_dict.matvec(v), rtol=1e-5)
  # Recalibration puts its BatchNorm in train mode although it has no train keyword.
  recal = batchnorm.recalibrate(loss_fn, p, s, (x, y))
  conv = nnx.merge(g, p, s).conv(x)   # the statistics are its mean (and biased variance)
  np.testing.assert_allclose(recal["bn"]["mean"][...], conv.mean(axis=(0, 1, 2)), rtol=1e-5,
                             atol=1e-6)
  with pytest.raises(TypeError, match="no taps argument"):
    loss_fn(p, s, {"image": x, "label": y, "taps": {"fc": jnp.zeros((6, 4))}}, False)


def test_loss_from_gives_the_same_instruments_as_make_loss_fn():
  g, p, s = functional.split(_Plain())

  def my_loss(params, batch):
    logits = nnx.merge(g, params, s, copy=True)(batch["image"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

  x, y = _pair()
  ours, theirs = functional.make_loss_fn(g), functional.loss_from(my_loss)
  for loss_fn in (ours, theirs):
    assert loss_fn(p, s, (x, y), False)[1]["state"] is s
  a = hessian.lanczos_top_k(hessian.HessianOperator(ours, p, s, (x, y)), 2, tol=1e-6)
  b = hessian.lanczos_top_k(hessian.HessianOperator(theirs, p, s, (x, y)), 2, tol=1e-6)
  np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-4)
  axis = landscape.paper_axis(3, 0.1)
  dirs = landscape.random_directions(jax.random.key(0), p, 2)
  np.testing.assert_allclose(
      landscape.loss_landscape(ours, p, s, (x, y), dirs, [axis, axis]).losses,
      landscape.loss_landscape(theirs, p, s, (x, y), dirs, [axis, axis]).losses, rtol=1e-5)
  with pytest.raises(ValueError, match="needs the model's graph"):
    hessian.HessianOperator(theirs, p, s, (x, y), bn_mode="recalibrated")


def test_a_batch_of_another_shape_is_one_clear_error():
  with pytest.raises(TypeError, match="an \\(images, labels\\) pair"):
    functional.as_batch([1, 2, 3])


def test_the_example_binary_runs_on_real_mnist(real_data_dir):
  from experiments import example_own_model  # pylint: disable=import-outside-toplevel
  out = example_own_model.run(data_dir=real_data_dir, num_samples=32, train_steps=5, top_k=2,
                              trace_probes=4, resolution=3, ops_conv=True)
  assert out["agree"] and len(out["make_loss_fn"]["eigenvalues"]) == 2
  assert np.isfinite(out["loss_from"]["trace"])
