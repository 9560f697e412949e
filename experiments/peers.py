"""The tools a researcher would use instead of transjax, on the benchmarks' workloads.

Only the benchmarks import this module, and only inside functions: it needs the optional
extra `pip install -e ".[bench]"` (torch CPU, PyHessian, loss-landscapes). `available()`
says whether it can run; without the extra the benchmarks record "peer not measured".

    model = TorchLeNet.from_transjax(params)       # the same function as transjax's LeNet
    losses = landscape_point_loop(model, images, labels, directions, axes,
                                  lambda d: lenet_state_dict(d, model.size))

Every peer runs on the identical workload: the PyTorch LeNet-5 gets transjax's weights
(and the landscape gets transjax's directions), so both evaluate the same function and
their answers can be compared, not only their times. NumPy GD is theory's step written
with plain NumPy.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PEER_PACKAGES = ("torch", "pyhessian", "loss_landscapes")


def missing() -> list[str]:
  """The peer packages that are not installed (empty: every peer can run)."""
  return [p for p in PEER_PACKAGES if importlib.util.find_spec(p) is None]


def available() -> bool:
  return not missing()


def not_measured(what: str) -> dict[str, Any]:
  """What a benchmark records for a peer it could not run."""
  return {"measured": False, "peer": what,
          "reason": f"not installed: {', '.join(missing())} (pip install -e '.[bench]')"}


def _torch():
  import torch  # pylint: disable=import-outside-toplevel
  return torch


def _named(params) -> dict[str, np.ndarray]:
  from transjax import params as params_lib  # pylint: disable=import-outside-toplevel
  return {path: np.asarray(leaf, np.float32) for path, leaf in params_lib.named_leaves(params)}


# --------------------------------------------------------------------------- LeNet-5


def torch_lenet(input_size: int = 28, in_channels: int = 1, num_classes: int = 10):
  """PyTorch LeNet-5 identical to transjax.models.lenet.LeNet (NCHW; PyTorch default init)."""
  torch = _torch()
  nn = torch.nn
  pad = 2 if input_size == 28 else 0
  size = ((input_size + 2 * pad - 4) // 2 - 4) // 2

  class TorchLeNet(nn.Module):
    """conv1 6@5x5, pool, conv2 16@5x5, pool, fc1 120, fc2 84, fc (ReLU, max-pooling)."""

    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
      self.conv2 = nn.Conv2d(6, 16, 5)
      self.fc1 = nn.Linear(16 * size * size, 120)
      self.fc2 = nn.Linear(120, 84)
      self.fc = nn.Linear(84, num_classes)
      self.size = size

    def forward(self, x):
      f = torch.nn.functional
      x = f.max_pool2d(f.relu(self.conv1(x)), 2)
      x = f.max_pool2d(f.relu(self.conv2(x)), 2)
      x = x.flatten(1)
      x = f.relu(self.fc1(x))
      x = f.relu(self.fc2(x))
      return self.fc(x)

  return TorchLeNet()


def lenet_state_dict(params, size: int) -> dict[str, np.ndarray]:
  """transjax LeNet parameters (HWIO kernels, NHWC flatten) as a PyTorch state dict
  (OIHW kernels, NCHW flatten): the two models then compute the same function."""
  named = _named(params)
  out = {}
  for layer in ("conv1", "conv2"):
    out[f"{layer}.weight"] = named[f"{layer}/kernel"].transpose(3, 2, 0, 1)
    out[f"{layer}.bias"] = named[f"{layer}/bias"]
  k = named["fc1/kernel"]  # (H*W*C, 120) in HWC order; PyTorch flattens CHW
  out["fc1.weight"] = k.reshape(size, size, 16, -1).transpose(2, 0, 1, 3).reshape(k.shape[0], -1).T
  out["fc1.bias"] = named["fc1/bias"]
  for layer in ("fc2", "fc"):
    out[f"{layer}.weight"] = named[f"{layer}/kernel"].T
    out[f"{layer}.bias"] = named[f"{layer}/bias"]
  return {name: np.ascontiguousarray(v) for name, v in out.items()}


def lenet_from_transjax(params, input_size: int = 28, in_channels: int = 1):
  torch = _torch()
  model = torch_lenet(input_size, in_channels)
  state = lenet_state_dict(params, model.size)
  model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
  return model.eval()


def torch_batch(batch: Mapping[str, Any]):
  """(images NCHW float32, labels int64) torch tensors from a transjax batch (NHWC)."""
  torch = _torch()
  # A copy: a JAX array's NumPy view is read-only, which torch.from_numpy warns about.
  images = np.array(np.asarray(batch["image"], np.float32).transpose(0, 3, 1, 2), order="C")
  return torch.from_numpy(images), torch.from_numpy(np.array(batch["label"], np.int64))


def pick_threads(model, x, y, repeats: int = 5) -> int:
  """Sets PyTorch to the faster of 1 thread and its default for this model's forward pass
  and returns it: on a shared 2-core machine PyTorch's default threads can be slower than
  one, and the peer should not lose time to that."""
  torch = _torch()
  default = torch.get_num_threads()
  best, best_t = default, float("inf")
  for n in sorted({1, default}):
    torch.set_num_threads(n)
    torch_loss(model, x, y)
    t = time.perf_counter()
    for _ in range(repeats):
      torch_loss(model, x, y)
    if time.perf_counter() - t < best_t:
      best, best_t = n, time.perf_counter() - t
  torch.set_num_threads(best)
  return best


def _loss(model, x, y):
  return _torch().nn.functional.cross_entropy(model(x), y)


def torch_loss(model, x, y) -> float:
  with _torch().no_grad():
    return float(_loss(model, x, y))


# ----------------------------------------------------------------------------- landscape


def landscape_point_loop(model, x, y, directions: Sequence[Any], axes: Sequence[np.ndarray],
                         to_torch) -> np.ndarray:
  """The usual PyTorch landscape: for each grid point `p.data = theta + a d1 + b d2`, then
  one forward pass. `directions` are transjax direction pytrees, `to_torch` maps one to
  a torch-named state dict (`lenet_state_dict`, `efficientnet_state_dict`). Parameters no
  direction moves (a per-layer landscape's other layers) are not touched."""
  torch = _torch()
  dirs = [{n: torch.from_numpy(np.array(v)) for n, v in to_torch(d).items()}
          for d in directions]
  params = dict(model.named_parameters())
  names = [n for n in params if any(bool(torch.any(d[n] != 0)) for d in dirs)]
  theta = {n: params[n].detach().clone() for n in names}
  grid = np.meshgrid(*axes, indexing="ij")
  coeffs = np.stack([g.ravel() for g in grid], axis=1)
  out = np.empty(len(coeffs))
  with torch.no_grad():
    for i, c in enumerate(coeffs):
      for n in names:
        params[n].data = theta[n] + sum(float(ci) * d[n] for ci, d in zip(c, dirs))
      out[i] = float(_loss(model, x, y))
    for n in names:
      params[n].data = theta[n]
  return out.reshape(grid[0].shape)


def loss_landscapes_random_plane(model, x, y, steps: int, distance: float) -> np.ndarray:
  """`loss_landscapes.random_plane` (filter normalisation) as its documentation shows it;
  its own random directions, so only its time is comparable. It is run on `model`'s
  architecture with PyTorch's default initialisation: its filter normalisation divides by
  zero on transjax's zero-initialised biases (ZeroDivisionError in filter_normalize_),
  and the time of a forward pass does not depend on the weights."""
  import loss_landscapes  # pylint: disable=import-outside-toplevel
  import loss_landscapes.metrics  # pylint: disable=import-outside-toplevel
  metric = loss_landscapes.metrics.Loss(_torch().nn.CrossEntropyLoss(), x, y)
  _torch().manual_seed(0)
  fresh = torch_lenet(x.shape[2], x.shape[1]).eval()
  return np.asarray(loss_landscapes.random_plane(fresh, metric, distance=distance,
                                                 steps=steps, normalization="filter",
                                                 deepcopy_model=True))


# ------------------------------------------------------------------------------ Hessian


def _trainable(model, only: Sequence[str] | None):
  """Parameters that require grad: all, or those whose name starts with one of `only`."""
  for name, p in model.named_parameters():
    p.requires_grad_(only is None or any(name.startswith(o + ".") for o in only))
  return [p for p in model.parameters() if p.requires_grad]


def pyhessian_top_k(model, x, y, k: int, tol: float, max_iter: int = 100,
                    only: Sequence[str] | None = None) -> dict[str, Any]:
  """PyHessian 0.1 `hessian(...).eigenvalues(top_n=k, maxIter, tol)` on CPU, as its README
  calls it; `only` (layer names) sets requires_grad=False on the other parameters, which
  restricts PyHessian's HVP to that layer. HVPs are counted by wrapping its product."""
  torch = _torch()
  # The package's __init__ exports the class `hessian` over its module of the same name.
  ph = importlib.import_module("pyhessian.hessian")
  _trainable(model, only)
  count = {"n": 0}
  original = ph.hessian_vector_product

  def counted(*args, **kwargs):
    count["n"] += 1
    return original(*args, **kwargs)

  ph.hessian_vector_product = counted
  try:
    torch.manual_seed(0)
    start = time.perf_counter()
    comp = ph.hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    values, _ = comp.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
    seconds = time.perf_counter() - start
  finally:
    ph.hessian_vector_product = original
    _trainable(model, None)
  return {"eigenvalues": sorted((float(v) for v in values), reverse=True), "seconds": seconds,
          "hvp_count": count["n"], "tol": tol, "max_iter": max_iter}


class TorchHVP:
  """H v of the mean loss by PyTorch double backward (the graph of the gradient is kept)."""

  def __init__(self, model, x, y, only: Sequence[str] | None = None):
    torch = _torch()
    self.params = _trainable(model, only)
    self.model = model
    self.shapes = [p.shape for p in self.params]
    self.sizes = [p.numel() for p in self.params]
    self.dim = int(sum(self.sizes))
    loss = _loss(model, x, y)
    self.grads = torch.autograd.grad(loss, self.params, create_graph=True)
    self.count = 0

  def __call__(self, v: np.ndarray) -> np.ndarray:
    torch = _torch()
    self.count += 1
    flat = torch.from_numpy(np.asarray(v, np.float32).ravel())
    vs = [c.view(s) for c, s in zip(torch.split(flat, self.sizes), self.shapes)]
    hv = torch.autograd.grad(self.grads, self.params, grad_outputs=vs, retain_graph=True)
    return torch.cat([h.reshape(-1) for h in hv]).numpy().astype(np.float64)

  def release(self):
    _trainable(self.model, None)


def eigsh_top_k(model, x, y, k: int, tol: float = 1e-6,
                only: Sequence[str] | None = None) -> dict[str, Any]:
  """`scipy.sparse.linalg.eigsh(k, which='LA', tol)` on a PyTorch double-backward HVP,
  ARPACK's BLAS on one thread (the HVP keeps PyTorch's threads)."""
  from scipy.sparse import linalg  # pylint: disable=import-outside-toplevel
  import threadpoolctl  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  hvp = TorchHVP(model, x, y, only)
  op = linalg.LinearOperator((hvp.dim, hvp.dim), matvec=hvp, dtype=np.float64)
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    values = linalg.eigsh(op, k=k, which="LA", tol=tol,
                          v0=np.random.default_rng(0).standard_normal(hvp.dim),
                          return_eigenvectors=False)
  seconds = time.perf_counter() - start
  hvp.release()
  return {"eigenvalues": sorted((float(v) for v in values), reverse=True), "seconds": seconds,
          "hvp_count": hvp.count, "tol": tol}


def torch_hvp_seconds(model, x, y, repeats: int = 5) -> float:
  """Best time of one PyTorch HVP (double backward through the kept gradient graph)."""
  hvp = TorchHVP(model, x, y)
  v = np.random.default_rng(0).standard_normal(hvp.dim)
  hvp(v)
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    hvp(v)
    best = min(best, time.perf_counter() - t)
  hvp.release()
  return best


# ----------------------------------------------------------------- EfficientNet-Lite


def efficientnet_state_dict(params, state=None) -> dict[str, np.ndarray]:
  """transjax EfficientNet-Lite parameters (and BatchNorm statistics) as an
  EfficientNet-PyTorch state dict (torch names and layouts)."""
  from transjax.weights import efficientnet_pytorch as efficientnet_weights  # pylint: disable=import-outside-toplevel
  from transjax.weights import state_dict as pretrained  # pylint: disable=import-outside-toplevel
  out = {}
  for tree in (params, {} if state is None else state):
    for path, leaf in jax_leaves_with_path(tree):
      out[efficientnet_weights.torch_name(path)] = np.array(
          pretrained.to_torch_layout(path, np.asarray(leaf, np.float32)))
  return out


def jax_leaves_with_path(tree):
  import jax  # pylint: disable=import-outside-toplevel
  from transjax.params import path_str  # pylint: disable=import-outside-toplevel
  return [(path_str(p), x) for p, x in jax.tree_util.tree_leaves_with_path(tree)]


def torch_efficientnet_lite(state_dict: Mapping[str, np.ndarray]):
  """EfficientNet-Lite as a PyTorch `nn.Module` (NCHW) with the given EfficientNet-PyTorch
  state dict loaded strictly: TensorFlow-SAME padding, BatchNorm eps 1e-3 (momentum 0.01
  in torch terms, TF's 0.99), ReLU6, no squeeze-and-excitation. The block structure
  (kernel, stride, expansion, residual) is read off the state dict's shapes, so any Lite
  variant's dict builds its own network."""
  torch = _torch()
  nn, F = torch.nn, torch.nn.functional

  class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (the odd pixel bottom/right)."""

    def forward(self, x):
      k, s = self.kernel_size[0], self.stride[0]
      pads = []
      for n in (x.shape[3], x.shape[2]):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
      return super().forward(F.pad(x, pads) if any(pads) else x)

  def conv(w, stride=1, groups=1):
    out_ch, in_per_group, k, _ = w.shape
    return SameConv(in_per_group * groups, out_ch, k, stride=stride, groups=groups, bias=False)

  def bn(name):
    return nn.BatchNorm2d(state_dict[name + ".weight"].shape[0], eps=1e-3, momentum=0.01)

  num_blocks = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("_blocks."))

  class Block(nn.Module):
    """MBConv: 1x1 expand, kxk depthwise, 1x1 project, residual."""

    def __init__(self, i, row):
      super().__init__()
      _, stride, _, in_ch, out_ch = row
      p = f"_blocks.{i}."
      self.has_expand = p + "_expand_conv.weight" in state_dict
      if self.has_expand:
        self._expand_conv = conv(state_dict[p + "_expand_conv.weight"])
        self._bn0 = bn(p + "_bn0")
      dw = state_dict[p + "_depthwise_conv.weight"]
      self._depthwise_conv = conv(dw, stride, groups=dw.shape[0])
      self._bn1 = bn(p + "_bn1")
      pw = state_dict[p + "_project_conv.weight"]
      self._project_conv = conv(pw)
      self._bn2 = bn(p + "_bn2")
      self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x):
      y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
      y = F.relu6(self._bn1(self._depthwise_conv(y)))
      y = self._bn2(self._project_conv(y))
      return x + y if self.residual else y

  from transjax.models import efficientnet  # pylint: disable=import-outside-toplevel
  table = _lite_table(num_blocks, efficientnet)

  class Lite(nn.Module):
    def __init__(self):
      super().__init__()
      self._conv_stem = conv(state_dict["_conv_stem.weight"], 2)
      self._bn0 = bn("_bn0")
      self._blocks = nn.ModuleList([Block(i, row) for i, row in enumerate(table)])
      self._conv_head = conv(state_dict["_conv_head.weight"])
      self._bn1 = bn("_bn1")
      self._fc = nn.Linear(*state_dict["_fc.weight"].shape[::-1])

    def forward(self, x):
      x = F.relu6(self._bn0(self._conv_stem(x)))
      for block in self._blocks:
        x = block(x)
      x = F.relu6(self._bn1(self._conv_head(x)))
      return self._fc(x.mean((2, 3)))

  model = Lite()
  model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()},
                        strict=False)
  missing = [k for k in model.state_dict() if k not in state_dict
             and not k.endswith("num_batches_tracked")]
  if missing:
    raise ValueError(f"the state dict lacks {missing[:3]}")
  return model


def _lite_table(num_blocks: int, efficientnet):
  """The Lite variant's block table with this many blocks."""
  for width, depth, _ in efficientnet.LITE_VARIANTS.values():
    table = efficientnet.block_table(width, depth)
    if len(table) == num_blocks:
      return table
  raise ValueError(f"no EfficientNet-Lite variant has {num_blocks} blocks")


def torch_efficientnet_from_transjax(params, state):
  """The PyTorch EfficientNet-Lite computing transjax's function (same weights)."""
  return torch_efficientnet_lite(efficientnet_state_dict(params, state))


# ----------------------------------------------------------------------------- training


def torch_train_step(model, x, y, lr: float, momentum: float, weight_decay: float,
                     trial_steps: int = 30):
  """(step, threads): one PyTorch training step of `model` (train mode; SGD with momentum
  and coupled weight decay, like transjax.train.make_optimizer) on the batch (x, y), as a
  callable, with the faster of 1 thread and PyTorch's default set (each tried for
  `trial_steps` steps after 3 warm-up steps; see pick_threads). The caller times it."""
  torch = _torch()
  model = model.train()
  opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

  def step():
    opt.zero_grad(set_to_none=True)
    loss = _loss(model, x, y)
    loss.backward()
    opt.step()
    return float(loss.detach())

  default = torch.get_num_threads()
  best, threads = float("inf"), default
  for n in sorted({1, default}):
    torch.set_num_threads(n)
    for _ in range(3):
      step()
    t = time.perf_counter()
    for _ in range(trial_steps):
      step()
    if time.perf_counter() - t < best:
      best, threads = time.perf_counter() - t, n
  torch.set_num_threads(threads)
  return step, threads


# ------------------------------------------------------------------------------- theory


def numpy_gd_step(w: np.ndarray, signs: np.ndarray, x: np.ndarray, y: np.ndarray,
                  eta: float) -> np.ndarray:
  """theory.twolayer's GD step in plain NumPy: two matmuls and the ReLU mask."""
  pre_activation = x @ w
  scale = 1.0 / np.sqrt(signs.shape[0])
  outputs = np.maximum(pre_activation, 0) @ signs * scale
  weighted = (outputs - y)[:, None] * (pre_activation >= 0) * (signs * scale)
  return w - eta * (x.T @ weighted)
