"""ResNet-18/50 and the tiny variant: sizes, shapes, stems, init, taps, BatchNorm in train mode."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from transjax import functional, params
from transjax.models import build_model, resnet
from transjax.models.taps import TapRecorder


NUM_CLASSES = 10


@functools.lru_cache(maxsize=None)
def _model(name, input_size, in_channels, head="linear", seed=0):
  """Built once per config: eager NNX init compiles per shape, which dominates test time."""
  return build_model(name, NUM_CLASSES, in_channels=in_channels, input_size=input_size,
                     head=head, seed=seed)


def _abstract(name, num_classes=1000, **kw):
  return nnx.eval_shape(lambda: build_model(name, num_classes, **kw))


@functools.lru_cache(maxsize=None)
def _numpy_filled(name, input_size, in_channels):
  """A big model without eager init (slow on 2 cores): abstract, then numpy He weights."""
  model = _abstract(name, NUM_CLASSES, input_size=input_size, in_channels=in_channels)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    last = params.path_str(path).rsplit("/", 1)[-1]
    if last == "kernel":
      fan_out = np.prod(leaf.shape[:-2], dtype=int) * leaf.shape[-1]
      return jnp.asarray(rng.normal(0, np.sqrt(2 / fan_out), leaf.shape), jnp.float32)
    return jnp.full(leaf.shape, 1.0 if last in ("scale", "var") else 0.0, jnp.float32)

  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  nnx.update(model, jax.tree_util.tree_map_with_path(fill, state))
  return model


@pytest.mark.parametrize("name,expected", [("resnet50", 25_557_032), ("resnet18", 11_689_512)])
def test_parameter_count_matches_torchvision(name, expected):
  model = _abstract(name, 1000, input_size=224)
  assert params.count(nnx.state(model, nnx.Param)) == expected


def test_resnet50_layout_matches_torchvision():
  model = _abstract("resnet50", 1000, input_size=224)
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  shapes = {p: tuple(x.shape) for p, x in params.named_leaves(state)}
  assert shapes["conv1/kernel"] == (7, 7, 3, 64)
  assert shapes["layer1/0/downsample/conv/kernel"] == (1, 1, 64, 256)
  assert shapes["layer2/0/conv2/kernel"] == (3, 3, 128, 128)
  assert shapes["layer4/2/conv3/kernel"] == (1, 1, 512, 2048)
  assert shapes["layer4/2/bn3/mean"] == (2048,)
  assert shapes["fc/kernel"] == (2048, 1000)
  assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
  # v1.5: the bottleneck strides on its 3x3 conv, and only the first block of a stage.
  assert model.layer2[0].conv1.strides == (1, 1)
  assert model.layer2[0].conv2.strides == (2, 2)
  assert model.layer2[1].downsample is None
  assert len([p for p in shapes if p.endswith("kernel") and len(shapes[p]) == 4]) == 53


def _forward_jit(model, x, train=False):
  graphdef, p, s = functional.split(model)
  apply = jax.jit(functional.make_apply_fn(graphdef), static_argnums=3)
  return apply(p, s, x, train)


@pytest.mark.parametrize("name,size,channels", [
    ("resnet_tiny", 28, 1), ("resnet_tiny", 32, 3), ("resnet_tiny", 64, 3),
    ("resnet18", 64, 3), ("resnet50", 32, 1),
])
def test_forward_shapes(name, size, channels):
  model = (_model if name == "resnet_tiny" else _numpy_filled)(name, size, channels)
  x = jax.random.normal(jax.random.key(0), (2, size, size, channels))
  logits, _ = _forward_jit(model, x)
  assert logits.shape == (2, NUM_CLASSES)
  assert np.all(np.isfinite(np.asarray(logits)))
  assert model.num_features == {"resnet_tiny": 128, "resnet18": 512, "resnet50": 2048}[name]


def test_features_are_pooled_head_inputs():
  model = _model("resnet_tiny", 32, 3)
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  feats = model.features(x)
  assert feats.shape == (2, 128)
  np.testing.assert_allclose(model.fc(feats), model(x), rtol=1e-5, atol=1e-6)


def test_stem_depends_on_input_size():
  small = _model("resnet_tiny", 32, 3)
  large = _model("resnet_tiny", 64, 3)
  assert small.small_input and not large.small_input
  assert small.conv1.kernel.shape == (3, 3, 3, 16) and small.conv1.strides == (1, 1)
  assert large.conv1.kernel.shape == (7, 7, 3, 16) and large.conv1.strides == (2, 2)
  # CIFAR stem keeps 32x32 into layer1; torchvision's stem brings 64 down to 16.
  rec = TapRecorder()
  small(jnp.zeros((1, 32, 32, 3)), taps=rec)
  assert rec["layer1.0"].shape == (1, 32, 32, 16)
  rec = TapRecorder()
  large(jnp.zeros((1, 64, 64, 3)), taps=rec)
  assert rec["layer1.0"].shape == (1, 16, 16, 16)
  assert rec["layer4.0"].shape == (1, 4, 4, 64)


def test_mlp_head():
  model = _model("resnet_tiny", 32, 3, head="mlp")
  logits, _ = _forward_jit(model, jnp.ones((2, 32, 32, 3)), train=True)
  assert logits.shape == (2, NUM_CLASSES)
  assert model.fc.fc1.kernel.shape == (128, 512)


def test_torchvision_init():
  model = resnet.BasicBlock(128, 256, 2, rngs=nnx.Rngs(3))
  kernel = np.asarray(model.conv2.kernel[...])  # 3x3, 256 -> 256
  fan_out = 3 * 3 * 256
  np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / fan_out), rtol=0.02)
  assert abs(kernel.mean()) < 1e-3
  # Not truncated: a normal has ~0.27% beyond 3 sigma, a 2-sigma truncation none.
  assert np.mean(np.abs(kernel) > 2.5 * np.sqrt(2.0 / fan_out)) > 0.005
  for bn in (model.bn1, model.bn2, model.downsample.bn):
    np.testing.assert_array_equal(bn.scale[...], 1.0)
    np.testing.assert_array_equal(bn.bias[...], 0.0)
    np.testing.assert_array_equal(bn.mean[...], 0.0)
    np.testing.assert_array_equal(bn.var[...], 1.0)
    assert bn.momentum == 0.9 and bn.epsilon == 1e-5
  assert model.conv1.bias is None and model.downsample.conv.bias is None
  stem = _model("resnet_tiny", 64, 3)
  np.testing.assert_allclose(np.asarray(stem.conv1.kernel[...]).std(),
                             np.sqrt(2.0 / (7 * 7 * 16)), rtol=0.05)


def test_zero_init_residual_option():
  block = resnet.Bottleneck(16, 4, zero_init_residual=True, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(block.bn3.scale[...], 0.0)
  np.testing.assert_array_equal(block.bn2.scale[...], 1.0)
  block = resnet.BasicBlock(16, 16, zero_init_residual=True, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(block.bn2.scale[...], 0.0)
  assert block.downsample is None


def test_same_seed_same_weights():
  a = functional.split(_model("resnet_tiny", 32, 3))[1]
  b = functional.split(build_model("resnet_tiny", NUM_CLASSES, input_size=32, seed=0))[1]
  c = functional.split(build_model("resnet_tiny", NUM_CLASSES, input_size=32, seed=2))[1]
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a["conv1"]["kernel"][...], c["conv1"]["kernel"][...])


def test_taps_cover_stem_every_block_and_head():
  model = _abstract("resnet18", NUM_CLASSES, input_size=64)
  rec = TapRecorder()
  _ = nnx.eval_shape(lambda m: m(jnp.zeros((1, 64, 64, 3)), taps=rec), model)
  assert list(rec) == ["conv1"] + [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] + ["fc"]
  assert rec["fc"].shape == (1, 512)


def test_tap_gradients_give_per_block_gradient_scale():
  model = _model("resnet_tiny", 32, 3)
  graphdef, p, s = functional.split(model)
  loss_fn = jax.jit(functional.make_loss_fn(graphdef), static_argnums=3)
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  batch = {"image": x, "label": jnp.arange(4) % 10}
  rec = TapRecorder()
  _ = nnx.eval_shape(lambda m: m(x, taps=rec), model)
  taps = {k: jnp.zeros(v.shape, v.dtype) for k, v in rec.items()}

  @jax.jit
  def tap_grads(taps):
    return jax.grad(lambda t: loss_fn(p, s, {**batch, "taps": t}, False)[0])(taps)

  grads = tap_grads(taps)
  assert set(grads) == set(rec)
  for name, g in grads.items():
    assert g.shape == rec[name].shape
    assert float(jnp.linalg.norm(g)) > 0, name
  # Zero taps do not change the loss.
  tapped = loss_fn(p, s, {**batch, "taps": taps}, False)[0]
  np.testing.assert_allclose(tapped, loss_fn(p, s, batch, False)[0], rtol=1e-6)


def test_train_mode_updates_batch_stats_through_loss_fn():
  model = _model("resnet_tiny", 28, 1)
  graphdef, p, s = functional.split(model)
  loss_fn = jax.jit(functional.make_loss_fn(graphdef), static_argnums=3)
  batch = {"image": 3.0 + jax.random.normal(jax.random.key(1), (4, 28, 28, 1)),
           "label": jnp.array([0, 1, 2, 3])}
  loss, aux = loss_fn(p, s, batch, True)
  assert np.isfinite(float(loss))
  new_s = aux["state"]
  assert jax.tree.structure(new_s) == jax.tree.structure(s)
  old_mean = np.asarray(s["bn1"]["mean"][...])
  new_mean = np.asarray(new_s["bn1"]["mean"][...])
  assert not np.allclose(old_mean, new_mean)
  # momentum 0.9: running = 0.9 * 0 + 0.1 * batch_mean, so |new| is a tenth of the batch mean.
  conv_out = model.conv1(batch["image"])
  np.testing.assert_allclose(new_mean, 0.1 * np.asarray(conv_out.mean(axis=(0, 1, 2))),
                             rtol=1e-4, atol=1e-6)
  assert not np.allclose(s["layer4"][0]["downsample"]["bn"]["var"][...],
                         new_s["layer4"][0]["downsample"]["bn"]["var"][...])
  # Eval mode: deterministic, state passed through unchanged.
  l1, aux1 = loss_fn(p, s, batch, False)
  l2, _ = loss_fn(p, s, batch, False)
  assert float(l1) == float(l2)
  assert aux1["state"] is s or jax.tree.all(jax.tree.map(
      lambda a, b: bool(np.array_equal(a, b)), aux1["state"], s))


def test_frozen_features_use_running_statistics_below_the_head():
  """Fixed mode: the backbone is a fixed function of the input in training too; the MLP
  head's own BatchNorm still uses and updates batch statistics."""
  graphdef, p, s = functional.split(_model("resnet_tiny", 28, 1, head="mlp"))
  frozen = jax.jit(functional.make_loss_fn(graphdef, frozen_features=True), static_argnums=3)
  plain = jax.jit(functional.make_loss_fn(graphdef), static_argnums=3)
  batch = {"image": 3.0 + jax.random.normal(jax.random.key(2), (4, 28, 28, 1)),
           "label": jnp.array([0, 1, 2, 3])}
  _, aux = frozen(p, s, batch, True)
  new_s = aux["state"]
  for path, old in params.named_leaves(s):
    new = dict(params.named_leaves(new_s))[path]
    if path.startswith("fc/"):
      assert not np.array_equal(old, new), path   # the head's BatchNorm trains
    else:
      np.testing.assert_array_equal(old, new, err_msg=path)
  # With a linear head, train-mode logits on frozen features are the eval-mode logits.
  g_lin, p_lin, s_lin = functional.split(_model("resnet_tiny", 28, 1))
  apply = functional.make_apply_fn(g_lin, frozen_features=True)
  np.testing.assert_allclose(apply(p_lin, s_lin, batch["image"], True)[0],
                             apply(p_lin, s_lin, batch["image"], False)[0], rtol=1e-5, atol=1e-6)
  train_logits = functional.make_apply_fn(g_lin)(p_lin, s_lin, batch["image"], True)[0]
  assert not np.allclose(train_logits, apply(p_lin, s_lin, batch["image"], False)[0])
  # Without frozen features the backbone's statistics move.
  _, aux_plain = plain(p, s, batch, True)
  assert not np.array_equal(s["bn1"]["mean"][...], aux_plain["state"]["bn1"]["mean"][...])


class _OwnModel(nnx.Module):
  """A user's model with the plain interface (no frozen_features)."""

  def __init__(self):
    self.fc = nnx.Linear(4, 2, rngs=nnx.Rngs(0))

  def __call__(self, x, train=False, taps=None):
    return self.fc(x.reshape(x.shape[0], -1))


def test_own_models_need_frozen_features_only_in_fixed_mode():
  graphdef, p, s = functional.split(_OwnModel())
  batch = {"image": jnp.ones((3, 2, 2, 1)), "label": jnp.array([0, 1, 0])}
  assert np.isfinite(float(functional.make_loss_fn(graphdef)(p, s, batch, True)[0]))
  with pytest.raises(TypeError, match="_OwnModel.__call__ has no frozen_features argument"):
    functional.make_loss_fn(graphdef, frozen_features=True)(p, s, batch, True)


def test_unknown_name():
  with pytest.raises(ValueError, match="resnet"):
    resnet.build("resnet34", 10, rngs=nnx.Rngs(0))
