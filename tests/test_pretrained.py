"""torchvision state dicts <-> Flax ResNets: names, layouts, errors, file formats, and
(where PyTorch is installed) outputs against PyTorch's own ops."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from transjax import params
from transjax.models import build_model
from transjax.weights import state_dict as state_dict_lib
from transjax.weights import torchvision_resnet
from transjax.weights.state_dict import WeightMismatchError


def torchvision_resnet50_shapes(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
  """Every tensor of torchvision's resnet50().state_dict(), written out from its source."""
  shapes: dict[str, tuple[int, ...]] = {}

  def conv(name, out_ch, in_ch, k):
    shapes[f"{name}.weight"] = (out_ch, in_ch, k, k)

  def bn(name, ch):
    for leaf in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{name}.{leaf}"] = (ch,)
    shapes[f"{name}.num_batches_tracked"] = ()

  conv("conv1", 64, 3, 7)
  bn("bn1", 64)
  inplanes = 64
  for stage, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], 1):
    for b in range(blocks):
      pre = f"layer{stage}.{b}"
      conv(f"{pre}.conv1", planes, inplanes, 1)
      bn(f"{pre}.bn1", planes)
      conv(f"{pre}.conv2", planes, planes, 3)
      bn(f"{pre}.bn2", planes)
      conv(f"{pre}.conv3", planes * 4, planes, 1)
      bn(f"{pre}.bn3", planes * 4)
      if b == 0:
        conv(f"{pre}.downsample.0", planes * 4, inplanes, 1)
        bn(f"{pre}.downsample.1", planes * 4)
      inplanes = planes * 4
  shapes["fc.weight"] = (num_classes, 2048)
  shapes["fc.bias"] = (num_classes,)
  return shapes


def random_state_dict(shapes, seed=0):
  rng = np.random.default_rng(seed)
  return {k: (np.array(7, np.int64) if k.endswith("num_batches_tracked")
              else rng.standard_normal(s).astype(np.float32)) for k, s in shapes.items()}


def abstract(name, num_classes=1000, **kw):
  """A model with no eager init (that is slow on CPU); loading fills every tensor."""
  return nnx.eval_shape(lambda: build_model(name, num_classes, **kw))


def random_flax(name, num_classes=10, input_size=32, seed=0):
  """A model with random numbers in every tensor, set without the (slow) eager init."""
  model = abstract(name, num_classes, input_size=input_size)
  rng = np.random.default_rng(seed)
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  nnx.update(model, jax.tree.map(
      lambda leaf: jnp.asarray(rng.standard_normal(leaf.shape), leaf.dtype), state))
  return model


@functools.lru_cache(maxsize=None)
def tiny():
  return random_flax("resnet_tiny")


def leaves(model):
  return dict(params.named_leaves(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))))


def expected_flax_value(torch_name, value):
  """Independent statement of the layout rules, for checking every tensor."""
  if torch_name.endswith(".weight") and value.ndim == 4:
    return value.transpose(2, 3, 1, 0)
  if torch_name.endswith(".weight") and value.ndim == 2:
    return value.T
  return value


def test_resnet50_state_dict_has_320_tensors_and_all_land_transposed():
  shapes = torchvision_resnet50_shapes()
  assert len(shapes) == 320
  sd = random_state_dict(shapes)
  model = torchvision_resnet.torchvision_to_flax(sd, abstract("resnet50", input_size=224))
  got = leaves(model)
  assert len(got) == 320 - 53  # num_batches_tracked has no counterpart
  torch_to_flax = {torchvision_resnet.torch_name(p): p for p in got}
  assert set(torch_to_flax) == {k for k in shapes if not k.endswith("num_batches_tracked")}
  for name, flax_path in torch_to_flax.items():
    assert isinstance(got[flax_path], jax.Array), flax_path
    np.testing.assert_array_equal(np.asarray(got[flax_path]),
                                  expected_flax_value(name, sd[name]), err_msg=name)
  # A few spelled out by attribute.
  np.testing.assert_array_equal(model.conv1.kernel[...],
                                sd["conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(model.layer2[0].downsample.conv.kernel[...],
                                sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(model.layer2[0].downsample.bn.mean[...],
                                sd["layer2.0.downsample.1.running_mean"])
  np.testing.assert_array_equal(model.layer4[2].bn3.var[...], sd["layer4.2.bn3.running_var"])
  np.testing.assert_array_equal(model.layer3[5].bn2.scale[...], sd["layer3.5.bn2.weight"])
  np.testing.assert_array_equal(model.fc.kernel[...], sd["fc.weight"].T)
  np.testing.assert_array_equal(model.fc.bias[...], sd["fc.bias"])
  # ... and the inverse mapping gives back exactly the torchvision state dict.
  back = torchvision_resnet.flax_to_torchvision(model)
  assert set(back) == set(shapes)
  for name, value in back.items():
    if not name.endswith("num_batches_tracked"):
      np.testing.assert_array_equal(value, sd[name], err_msg=name)


def test_torch_names():
  torch_name = torchvision_resnet.torch_name
  assert torch_name("layer3/0/downsample/conv/kernel") == "layer3.0.downsample.0.weight"
  assert torch_name("layer3/0/downsample/bn/mean") == "layer3.0.downsample.1.running_mean"
  assert torch_name("bn1/scale") == "bn1.weight"
  assert torch_name("fc/kernel") == "fc.weight"
  assert torch_name("layer1/1/bn2/var") == "layer1.1.bn2.running_var"


def test_round_trip_flax_torch_flax(tmp_path):
  source = tiny()
  sd = torchvision_resnet.save_state_dict_npz(source, tmp_path / "tiny.npz")
  target = torchvision_resnet.load_torchvision_resnet(tmp_path / "tiny.npz",
                                                      abstract("resnet_tiny", 10, input_size=32))
  a, b = leaves(source), leaves(target)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert sd["conv1.weight"].shape == (16, 3, 3, 3)
  assert sd["fc.weight"].shape == (10, 128)
  assert sd["layer2.0.downsample.0.weight"].shape == (32, 16, 1, 1)
  assert sd["bn1.num_batches_tracked"].dtype == np.int64


def test_skip_head_keeps_new_head():
  sd = torchvision_resnet.flax_to_torchvision(tiny())  # a 10-class head
  target = random_flax("resnet_tiny", 5, seed=4)
  head_before = np.asarray(target.fc.kernel[...]).copy()
  with pytest.raises(WeightMismatchError, match=r"fc\.weight"):
    torchvision_resnet.torchvision_to_flax(sd, target)
  out = torchvision_resnet.torchvision_to_flax(sd, target, skip_head=True)
  assert out is target  # in place
  np.testing.assert_array_equal(target.fc.kernel[...], head_before)
  np.testing.assert_array_equal(target.layer3[0].conv2.kernel[...],
                                sd["layer3.0.conv2.weight"].transpose(2, 3, 1, 0))
  # skip_head also ignores a head that is absent.
  no_head = {k: v for k, v in sd.items() if not k.startswith("fc.")}
  torchvision_resnet.torchvision_to_flax(no_head, target, skip_head=True)


def test_mismatches_are_all_named_in_one_error():
  sd = torchvision_resnet.flax_to_torchvision(tiny())
  del sd["layer1.0.bn1.running_var"]
  sd["layer5.0.conv1.weight"] = np.zeros((3, 3, 1, 1), np.float32)
  sd["conv1.weight"] = np.zeros((16, 3, 7, 7), np.float32)
  model = abstract("resnet_tiny", 10, input_size=32)
  with pytest.raises(WeightMismatchError) as info:
    torchvision_resnet.torchvision_to_flax(sd, model)
  msg = str(info.value)
  assert "3 problem" in msg
  assert "missing: layer1.0.bn1.running_var (flax layer1/0/bn1/var" in msg
  assert "unexpected: layer5.0.conv1.weight with shape (3, 3, 1, 1)" in msg
  assert "conv1.weight (flax conv1/kernel)" in msg
  assert "(16, 3, 7, 7)" in msg and "(16, 3, 3, 3)" in msg and "(3, 3, 3, 16)" in msg
  assert isinstance(info.value, ValueError)


def test_read_state_dict_formats(tmp_path):
  sd = {"a.weight": np.ones((2, 3), np.float32), "b.num_batches_tracked": np.array(1)}
  np.savez(tmp_path / "w.npz", **sd)
  got = state_dict_lib.read_state_dict(tmp_path / "w.npz")
  assert got.keys() == sd.keys()
  np.testing.assert_array_equal(got["a.weight"], sd["a.weight"])
  with pytest.raises(ValueError, match="Unknown state-dict format"):
    state_dict_lib.read_state_dict(tmp_path / "w.h5")


def test_read_safetensors(tmp_path):
  safetensors_numpy = pytest.importorskip("safetensors.numpy")
  sd = {"conv1.weight": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}
  safetensors_numpy.save_file(sd, str(tmp_path / "w.safetensors"))
  got = state_dict_lib.read_state_dict(tmp_path / "w.safetensors")
  np.testing.assert_array_equal(got["conv1.weight"], sd["conv1.weight"])


def test_pth_without_torch_says_what_to_do(tmp_path):
  try:
    import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    pytest.skip("torch is installed")
  except ImportError:
    pass
  (tmp_path / "w.pth").write_bytes(b"")
  with pytest.raises(ImportError, match="npz"):
    state_dict_lib.read_state_dict(tmp_path / "w.pth")


# ---------------------------------------------------------------- against PyTorch itself


def _torch_resnet(torch, stage_sizes, bottleneck, num_classes, *, in_channels=3, width=64,
                  small_input=False):
  """torchvision's ResNet (names and ops), or torchvision itself where it is installed."""
  tnn = torch.nn
  if (width, in_channels, small_input) == (64, 3, False):
    try:
      import torchvision  # pylint: disable=import-outside-toplevel
      fn = {((3, 4, 6, 3), True): torchvision.models.resnet50,
            ((2, 2, 2, 2), False): torchvision.models.resnet18}.get(
                (tuple(stage_sizes), bottleneck))
      if fn is not None:
        return fn(weights=None, num_classes=num_classes)
    except ImportError:
      pass

  class Block(tnn.Module):
    def __init__(self, inplanes, planes, stride):
      super().__init__()
      exp = 4 if bottleneck else 1
      if bottleneck:
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.conv3 = tnn.Conv2d(planes, planes * exp, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * exp)
      else:
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
      self.bn1 = tnn.BatchNorm2d(planes)
      self.bn2 = tnn.BatchNorm2d(planes)
      self.downsample = None
      if stride != 1 or inplanes != planes * exp:
        self.downsample = tnn.Sequential(
            tnn.Conv2d(inplanes, planes * exp, 1, stride, bias=False),
            tnn.BatchNorm2d(planes * exp))

    def forward(self, x):
      relu = torch.relu
      y = relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      if bottleneck:
        y = self.bn3(self.conv3(relu(y)))
      return relu(y + (x if self.downsample is None else self.downsample(x)))

  class Net(tnn.Module):
    def __init__(self):
      super().__init__()
      if small_input:
        self.conv1 = tnn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
      else:
        self.conv1 = tnn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
      self.bn1 = tnn.BatchNorm2d(width)
      inplanes = width
      for i, n in enumerate(stage_sizes):
        blocks = []
        for j in range(n):
          blocks.append(Block(inplanes, width * 2**i, 2 if i > 0 and j == 0 else 1))
          inplanes = width * 2**i * (4 if bottleneck else 1)
        setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
      self.n = len(stage_sizes)
      self.fc = tnn.Linear(inplanes, num_classes)

    def forward(self, x):
      x = torch.relu(self.bn1(self.conv1(x)))
      if not small_input:
        x = tnn.functional.max_pool2d(x, 3, 2, 1)
      for i in range(self.n):
        x = getattr(self, f"layer{i + 1}")(x)
      return self.fc(torch.flatten(tnn.functional.adaptive_avg_pool2d(x, 1), 1))

  return Net()


def _randomise(torch, net, seed=0):
  """Random weights and BatchNorm statistics with activations of order one."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.Conv2d):
        fan_in = m.weight[0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
      elif isinstance(m, torch.nn.BatchNorm2d):
        c = m.num_features
        m.weight.copy_(0.5 + torch.rand(c, generator=gen))
        m.bias.copy_(0.1 * torch.randn(c, generator=gen))
        m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
        m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
      elif isinstance(m, torch.nn.Linear):
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.in_features ** 0.5)
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
  # Damp each residual branch (its last BatchNorm) so that activations stay of order one
  # through 16 blocks and an absolute tolerance means something.
  with torch.no_grad():
    for name, m in net.named_modules():
      if name.startswith("layer") and name.count(".") == 1:
        last_bn = m.bn3 if hasattr(m, "bn3") else m.bn2
        last_bn.weight.mul_(0.2)
  return net.eval()


def _state_dict_np(net):
  return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def _nhwc(x_nchw):
  return jnp.asarray(x_nchw.detach().numpy().transpose(0, 2, 3, 1))


def _nchw_np(x_nhwc):
  return np.asarray(x_nhwc).transpose(0, 3, 1, 2)


@functools.lru_cache(maxsize=None)
def _resnet50_pair():
  torch = pytest.importorskip("torch")
  net = _randomise(torch, _torch_resnet(torch, (3, 4, 6, 3), True, 1000))
  model = torchvision_resnet.torchvision_to_flax(_state_dict_np(net),
                                                 abstract("resnet50", input_size=224))
  return torch, net, model


def test_stem_and_bottleneck_layer_by_layer_against_torch():
  torch, net, model = _resnet50_pair()
  x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
  with torch.no_grad():
    stem_t = net.bn1(net.conv1(x))
    block_in = torch.randn(2, 256, 16, 16, generator=torch.Generator().manual_seed(2))
    block_t = net.layer2[0](block_in)  # stride 2 with downsample
    pool_t = torch.nn.functional.max_pool2d(torch.relu(stem_t), 3, 2, 1)
  stem_f = model.bn1(model.conv1(_nhwc(x)), use_running_average=True)
  block_f = model.layer2[0](_nhwc(block_in))
  pool_f = nnx.max_pool(jax.nn.relu(stem_f), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
  diffs = {
      "stem": np.abs(_nchw_np(stem_f) - stem_t.numpy()).max(),
      "maxpool": np.abs(_nchw_np(pool_f) - pool_t.numpy()).max(),
      "layer2.0": np.abs(_nchw_np(block_f) - block_t.numpy()).max(),
  }
  print("max abs diffs vs torch:", diffs)
  assert block_f.shape == (2, 8, 8, 512)
  assert all(d < 1e-4 for d in diffs.values()), diffs


def test_resnet50_forward_matches_torch_in_eval_mode():
  torch, net, model = _resnet50_pair()
  x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
  with torch.no_grad():
    logits_t = net(x).numpy()
  logits_f = np.asarray(model(_nhwc(x)))
  diff = np.abs(logits_f - logits_t).max()
  scale = np.abs(logits_t).max()
  print(f"resnet50 logits max abs diff {diff:.2e} (logit scale {scale:.2f})")
  assert 0.1 < scale < 100
  assert diff < 1e-4


@pytest.mark.parametrize("name,stages,bottleneck,width,size,channels", [
    ("resnet_tiny", (1, 1, 1, 1), False, 16, 28, 1),
    ("resnet18", (2, 2, 2, 2), False, 64, 64, 3),
])
def test_small_resnets_match_torch(name, stages, bottleneck, width, size, channels):
  torch = pytest.importorskip("torch")
  small = size < 64
  net = _randomise(torch, _torch_resnet(torch, stages, bottleneck, 10, in_channels=channels,
                                        width=width, small_input=small), seed=5)
  model = torchvision_resnet.torchvision_to_flax(
      _state_dict_np(net), abstract(name, 10, input_size=size, in_channels=channels))
  x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(4))
  with torch.no_grad():
    logits_t = net(x).numpy()
  diff = np.abs(np.asarray(model(_nhwc(x))) - logits_t).max()
  print(f"{name} logits max abs diff {diff:.2e}")
  assert diff < 1e-4


def test_train_mode_batchnorm_matches_torch():
  """Batch statistics for the output, and torch's running-mean update (momentum 0.1)."""
  torch = pytest.importorskip("torch")
  net = _randomise(torch, _torch_resnet(torch, (1, 1, 1, 1), False, 10, width=16,
                                        small_input=True), seed=6)
  model = torchvision_resnet.torchvision_to_flax(_state_dict_np(net),
                                                 abstract("resnet_tiny", 10, input_size=32))
  x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(7))
  net.train()
  with torch.no_grad():
    logits_t = net(x).numpy()
  logits_f = np.asarray(model(_nhwc(x), train=True))
  assert np.abs(logits_f - logits_t).max() < 1e-4
  np.testing.assert_allclose(model.layer3[0].bn2.mean[...],
                             net.layer3[0].bn2.running_mean.numpy(), atol=1e-5)
  # Known difference: torch updates running_var with the unbiased batch variance, Flax
  # with the biased one; the normalisation itself uses the biased one in both.


def test_pth_file_round_trip(tmp_path):
  torch = pytest.importorskip("torch")
  net = _randomise(torch, _torch_resnet(torch, (1, 1, 1, 1), False, 10, width=16,
                                        small_input=True), seed=8)
  torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}},
             tmp_path / "w.pth")
  model = torchvision_resnet.load_torchvision_resnet(tmp_path / "w.pth",
                                                     abstract("resnet_tiny", 10, input_size=32))
  np.testing.assert_array_equal(model.layer4[0].downsample.bn.var[...],
                                net.layer4[0].downsample[1].running_var.numpy())


def test_loaded_weights_do_not_alias_the_state_dict():
  sd = torchvision_resnet.flax_to_torchvision(tiny())
  model = torchvision_resnet.torchvision_to_flax(sd, abstract("resnet_tiny", 10, input_size=32))
  before = np.asarray(model.bn1.mean[...]).copy()
  sd["bn1.running_mean"] += 1.0  # as torch's in-place BatchNorm update would
  np.testing.assert_array_equal(model.bn1.mean[...], before)
