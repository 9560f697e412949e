"""Target similarity (transjax.analysis.similarity): the BatchNorm-statistics distance
against a NumPy reference, the theory's kernel complexity against known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from transjax.analysis import similarity
from transjax.models import build_model


class _TwoBN(nnx.Module):
  """Dense -> BatchNorm -> ReLU -> Dense -> BatchNorm: small enough to compute by hand."""

  def __init__(self, rngs):
    self.fc1 = nnx.Linear(5, 4, rngs=rngs)
    self.bn1 = nnx.BatchNorm(4, rngs=rngs)
    self.fc2 = nnx.Linear(4, 3, rngs=rngs)
    self.bn2 = nnx.BatchNorm(3, rngs=rngs)

  def __call__(self, x, train: bool = False):
    x = jax.nn.relu(self.bn1(self.fc1(x), use_running_average=not train))
    return self.bn2(self.fc2(x), use_running_average=not train)


def _w2(mu_t, var_t, mu_s, var_s):
  return np.mean(np.sqrt(((mu_t - mu_s) ** 2 + (np.sqrt(var_t) - np.sqrt(var_s)) ** 2) / var_s))


def _reference(model, x):
  """The distance computed by hand in NumPy (float64), BatchNorm in training mode."""
  def bn(h, m):
    mu, var = h.mean(0), h.var(0)
    out = (h - mu) / np.sqrt(var + m.epsilon) * np.asarray(m.scale[...]) + np.asarray(m.bias[...])
    return out, mu, var

  p = lambda v: np.asarray(v[...], np.float64)
  h1 = x @ p(model.fc1.kernel) + p(model.fc1.bias)
  a1, mu1, var1 = bn(h1, model.bn1)
  h2 = np.maximum(a1, 0) @ p(model.fc2.kernel) + p(model.fc2.bias)
  _, mu2, var2 = bn(h2, model.bn2)
  d1 = _w2(mu1, var1, p(model.bn1.mean), p(model.bn1.var))
  d2 = _w2(mu2, var2, p(model.bn2.mean), p(model.bn2.var))
  return {"bn1": d1, "bn2": d2}


def test_distance_matches_numpy_and_leaves_the_model_alone():
  model = _TwoBN(nnx.Rngs(0))
  rng = np.random.default_rng(0)
  model.bn1.mean[...] = rng.normal(size=4).astype(np.float32)
  model.bn1.var[...] = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
  model.bn2.mean[...] = rng.normal(size=3).astype(np.float32)
  model.bn2.var[...] = rng.uniform(0.5, 2.0, size=3).astype(np.float32)
  before = np.asarray(model.bn1.mean[...]).copy()
  x = rng.normal(size=(64, 5)).astype(np.float32)
  got = similarity.batchnorm_distance(model, x)
  want = _reference(model, x.astype(np.float64))
  for name in ("bn1", "bn2"):
    assert got["layers"][name] == pytest.approx(want[name], rel=1e-4)
  assert got["mean"] == pytest.approx(np.mean(list(want.values())), rel=1e-4)
  np.testing.assert_array_equal(np.asarray(model.bn1.mean[...]), before)
  assert set(similarity.batchnorm_distance(model, x, skip_prefix="bn2")["layers"]) == {"bn1"}


def test_zero_on_the_stored_data_and_growing_with_a_shift():
  model = _TwoBN(nnx.Rngs(1))
  x = np.random.default_rng(1).normal(size=(128, 5)).astype(np.float32)
  stats = similarity.target_statistics(model, x)      # store x's statistics in the model
  model.bn1.mean[...], model.bn1.var[...] = (np.float32(v) for v in stats["bn1"])
  model.bn2.mean[...], model.bn2.var[...] = (np.float32(v) for v in stats["bn2"])
  same = similarity.batchnorm_distance(model, x)["mean"]
  near = similarity.batchnorm_distance(model, x + 0.1)["mean"]
  far = similarity.batchnorm_distance(model, 3 * x + 2)["mean"]
  assert same < 1e-3 < near < far


def test_a_model_without_batchnorm_is_a_clear_error():
  with pytest.raises(ValueError, match="no BatchNorm"):
    similarity.batchnorm_distance(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), np.zeros((4, 2), np.float32))


# ------------------------------------------------ the theory's kernel complexity (labels too)


def test_kernel_complexity_closed_form_on_orthogonal_features():
  # Orthogonal unit features: H_inf = I / 2, so tr(Y^T (H + lam I)^-1 Y) = n / (1/2 + lam).
  x = np.eye(4)
  ridge = 1e-3
  got = similarity.kernel_complexity(x, np.array([0, 1, 0, 1]), ridge=ridge)
  expected = np.sqrt(2.0 * 4 / (0.5 * (1 + ridge)) / (4 * 2))
  np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_kernel_complexity_sees_the_labels_and_its_invariances():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 30)
  centres = rng.normal(size=(4, 16)) * 3
  feats = centres[labels] + rng.normal(size=(len(labels), 16))
  separable = similarity.kernel_complexity(feats, labels)
  shuffled = similarity.kernel_complexity(feats, rng.permutation(labels))
  assert separable < 0.6 * shuffled
  perm = rng.permutation(len(labels))
  np.testing.assert_allclose(similarity.kernel_complexity(feats[perm], labels[perm]), separable,
                             rtol=1e-9)                                   # sample order
  np.testing.assert_allclose(similarity.kernel_complexity(7.0 * feats, labels), separable,
                             rtol=1e-9)                                   # feature scale
  np.testing.assert_allclose(similarity.kernel_complexity(feats, (labels + 1) % 4), separable,
                             rtol=1e-9)                                   # class names
  # Duplicated samples make H singular; the ridge keeps the value finite.
  dup = np.concatenate([feats, feats])
  assert np.isfinite(similarity.kernel_complexity(dup, np.concatenate([labels, labels])))
  with pytest.raises(ValueError, match="finite and nonzero"):
    similarity.kernel_complexity(np.zeros((3, 2)), np.array([0, 1, 0]))


def test_head_features_are_what_the_head_reads():
  model = build_model("lenet", 10, in_channels=1, input_size=16)
  images = np.random.default_rng(0).normal(size=(5, 16, 16, 1)).astype(np.float32)
  feats = similarity.head_features(model, images, batch_size=2)
  w, b = np.asarray(model.fc.kernel[...]), np.asarray(model.fc.bias[...])
  np.testing.assert_allclose(feats @ w + b, np.asarray(model(jnp.asarray(images))), atol=1e-4)
