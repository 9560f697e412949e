"""torchvision ResNet weights <-> `transjax.models.resnet` (NHWC Flax NNX).

    model = build_model("resnet50", num_classes=196, input_size=224)
    load_torchvision_resnet("resnet50-0676ba61.pth", model, skip_head=True)

The key layout is torchvision's: BatchNorm weight -> scale, bias -> bias, running_mean ->
mean, running_var -> var; "layer3.0.downsample.0.weight" <-> "layer3/0/downsample/conv/kernel",
"layer3.0.downsample.1.*" <-> "layer3/0/downsample/bn/*", otherwise dots <-> slashes.
Reading files, tensor layouts and the strict checking (every tensor named, with both shapes,
in one `WeightMismatchError`) are `state_dict`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import numpy as np
from flax import nnx

from transjax.params import path_str
from transjax.weights import state_dict as state_dict_lib

HEAD_PREFIX = "fc"
_LEAF_TO_TORCH = {"scale": "weight", "bias": "bias", "mean": "running_mean",
                  "var": "running_var"}
_MODULE_TO_TORCH = {"conv": "0", "bn": "1"}  # inside "downsample"


def torch_name(flax_path: str) -> str:
  """"layer1/0/downsample/conv/kernel" -> "layer1.0.downsample.0.weight"."""
  parts = flax_path.split("/")
  *modules, leaf = parts
  out = []
  for i, part in enumerate(modules):
    if i > 0 and modules[i - 1] == "downsample" and part in _MODULE_TO_TORCH:
      part = _MODULE_TO_TORCH[part]
    out.append(part)
  out.append("weight" if leaf == "kernel" else _LEAF_TO_TORCH.get(leaf, leaf))
  return ".".join(out)


def flax_to_torchvision(model: nnx.Module, *,
                        num_batches_tracked: bool = True) -> dict[str, np.ndarray]:
  """The model's weights and BatchNorm statistics as a torchvision-style state dict.

  Args:
    model: a `transjax.models.resnet.ResNet` (any NNX model with these names works).
    num_batches_tracked: add a zero int64 `*.num_batches_tracked` per BatchNorm, as
      torchvision's `load_state_dict(strict=True)` expects.

  Returns:
    torch name -> numpy array in torch layout, in the model's pytree order.
  """
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  out: dict[str, np.ndarray] = {}
  for p, x in jax.tree_util.tree_leaves_with_path(state):
    path = path_str(p)
    name = torch_name(path)
    # np.array: writable, and not aliased to the model's buffers.
    out[name] = np.array(state_dict_lib.to_torch_layout(path, np.asarray(x)))
    if num_batches_tracked and path.endswith("/var"):
      out[name.rsplit(".", 1)[0] + "." + state_dict_lib.IGNORED_SUFFIX] = np.zeros((), np.int64)
  return out


def save_state_dict_npz(model: nnx.Module, path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Writes `flax_to_torchvision(model)` to an `.npz` file and returns the dict."""
  state_dict = flax_to_torchvision(model)
  np.savez(path, **state_dict)
  return state_dict


def torchvision_to_flax(state_dict: Mapping[str, np.ndarray], model: nnx.Module, *,
                        skip_head: bool = False) -> nnx.Module:
  """Loads a torchvision ResNet state dict into `model` IN PLACE and returns it.

  Args:
    state_dict: torch name -> array (numpy, or anything `np.asarray` takes) in torch
      layout. `*.num_batches_tracked` entries are ignored.
    model: the Flax model to fill (its Params and BatchStats are replaced).
    skip_head: leave `model.fc` as initialised (a new head, e.g. for another number of
      classes) and ignore every `fc.*` tensor of the dict.

  Returns:
    `model`, updated in place.

  Raises:
    WeightMismatchError: some model tensor is missing from the dict, some dict tensor has
      no place in the model, or shapes differ; the message lists them (see
      `load_state_dict`).
  """
  return state_dict_lib.load_state_dict(state_dict, model, name_of=torch_name,
                                        head_prefix=HEAD_PREFIX, skip_head=skip_head)


def load_torchvision_resnet(path: str | os.PathLike, model: nnx.Module, *,
                            skip_head: bool = False) -> nnx.Module:
  """`torchvision_to_flax(read_state_dict(path), model, skip_head=skip_head)`: in place."""
  return torchvision_to_flax(state_dict_lib.read_state_dict(path), model,
                             skip_head=skip_head)
