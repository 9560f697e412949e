"""PyTorch state dicts, whatever the architecture: reading them, and loading one strictly.

    raw = read_state_dict("resnet50-0676ba61.pth")   # torch name -> numpy array
    load_state_dict(raw, model, name_of=torch_name, head_prefix="fc")   # in place

State dicts are read from a PyTorch `.pth`/`.pt` file (needs torch; loaded with
`weights_only=True`, so no pickled code runs), or from the same tensors saved as `.npz` or
`.safetensors` (keys are torch state-dict names, values arrays in torch layout). A file
whose name carries a sha256 prefix is verified before it is read. Loading is complete and
strict: every tensor of the model must be in the dict and every tensor of the dict must be
used (`num_batches_tracked` is ignored), or one `WeightMismatchError` lists all problems.

Layouts: conv weight OIHW <-> kernel HWIO; linear weight (out, in) <-> kernel (in, out).
How torch names map to Flax paths is each layout's own (`torchvision_resnet`,
`efficientnet_pytorch`): they pass it in as `name_of`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transjax.params import path_str

IGNORED_SUFFIX = "num_batches_tracked"  # BatchNorm's step counter: no Flax tensor holds it


class WeightMismatchError(ValueError):
  """A state dict that does not fit the model; the message names every offending tensor."""


class WeightsChecksumError(ValueError):
  """A weights file whose content does not match the checksum its name carries."""


# torch hub's convention, which torchvision's and the EfficientNet package's files follow:
# <name>-<the first hex digits of the file's sha256>.<ext>, e.g. resnet50-0676ba61.pth.
_CHECKSUM_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(pth|pt|bin|npz|safetensors)$")
_verified: dict[tuple[str, int, int], str] = {}


def verify_checksum(path: str | os.PathLike) -> None:
  """Checks a weights file against the sha256 prefix in its name (if it has one) before
  it is used: a partly zeroed or truncated download otherwise loads silently and trains.

  Raises:
    WeightsChecksumError: the file's sha256 does not start with the name's digits.
  """
  path = os.fspath(path)
  match = _CHECKSUM_IN_NAME.search(os.path.basename(path))
  if not match:
    return
  st = os.stat(path)
  key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
  if key not in _verified:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    _verified[key] = digest.hexdigest()
  expected = match.group(1)
  if not _verified[key].startswith(expected):
    raise WeightsChecksumError(
        f"{path} is damaged or not the file its name promises: its sha256 begins "
        f"{_verified[key][:len(expected)]}, the name says {expected}. Fetch the file again "
        "(or reinstall the package that ships it).")


def to_torch_layout(flax_path: str, array: np.ndarray) -> np.ndarray:
  """A Flax leaf in torch layout (conv HWIO -> OIHW, dense (in, out) -> (out, in))."""
  array = np.asarray(array)
  if flax_path.endswith("/kernel") or flax_path == "kernel":
    if array.ndim == 4:
      return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if array.ndim == 2:
      return np.ascontiguousarray(array.T)
  return array


def to_flax_layout(flax_path: str, array: np.ndarray) -> np.ndarray:
  """The inverse of `to_torch_layout`."""
  array = np.asarray(array)
  if flax_path.endswith("/kernel") or flax_path == "kernel":
    if array.ndim == 4:
      return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    if array.ndim == 2:
      return np.ascontiguousarray(array.T)
  return array


def _torch_shape(flax_path: str, shape: tuple[int, ...]) -> tuple[int, ...]:
  return to_torch_layout(flax_path, np.empty(shape, np.uint8)).shape


def _model_leaves(model: nnx.Module) -> list[tuple[str, tuple[int, ...]]]:
  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
  return [(path_str(p), tuple(np.shape(x)))
          for p, x in jax.tree_util.tree_leaves_with_path(state)]


def load_state_dict(state_dict: Mapping[str, np.ndarray], model: nnx.Module, *,
                    name_of: Callable[[str], str], head_prefix: str, skip_head: bool = False,
                    order: Callable[[str], Any] | None = None,
                    max_listed: int = 20) -> nnx.Module:
  """Loads a torch state dict into `model` IN PLACE, strictly, and returns it.

  The one strict loader behind every torch layout transjax reads (torchvision ResNets in
  `torchvision_resnet`, EfficientNet-PyTorch in `efficientnet_pytorch`).

  Args:
    state_dict: torch name -> array in torch layout; `*.num_batches_tracked` is ignored.
    model: the Flax model to fill (its Params and BatchStats are replaced).
    name_of: Flax path ("stem/conv/kernel") -> torch name ("_conv_stem.weight").
    head_prefix: the torch name of the classifier head ("fc", "_fc").
    skip_head: leave the model's head as initialised and ignore the dict's head tensors.
    order: sort key on torch names that puts the model's tensors in the order torch
      defines them (stem first), for the side-by-side listing; default pytree order.
    max_listed: problems listed in the error message; the rest are counted.

  Raises:
    WeightMismatchError: a model tensor is missing from the dict, a dict tensor has no
      place in the model, or shapes differ; the message names each tensor with the
      shapes involved. When most names differ (another architecture's weights), it
      first sets the model's leading tensors beside the dict's, shapes on both sides.
  """
  def is_head(name):
    return name == head_prefix or name.startswith(head_prefix + ".")

  expected = {}  # torch name -> (flax path, flax shape)
  for path, shape in _model_leaves(model):
    name = name_of(path)
    if skip_head and is_head(name):
      continue
    expected[name] = (path, shape)
  given = {k: v for k, v in state_dict.items()
           if not k.endswith("." + IGNORED_SUFFIX) and not (skip_head and is_head(k))}

  problems = []
  for name, (path, shape) in expected.items():
    if name not in given:
      problems.append(f"missing: {name} (flax {path}, expected torch shape "
                      f"{_torch_shape(path, shape)}, flax shape {shape})")
    elif tuple(np.shape(given[name])) != _torch_shape(path, shape):
      problems.append(f"shape mismatch: {name} (flax {path}): state dict has "
                      f"{tuple(np.shape(given[name]))}, model expects torch shape "
                      f"{_torch_shape(path, shape)} (flax shape {shape})")
  for name in given:
    if name not in expected:
      problems.append(f"unexpected: {name} with shape {tuple(np.shape(given[name]))} "
                      f"(no flax tensor for it)")
  if problems:
    header = f"State dict does not fit the model ({len(problems)} problem(s))"
    matched = sum(name in given for name in expected)
    if matched < len(expected) / 2:
      # Another architecture: a list of 500 missing names says less than the first few
      # tensors of each side next to each other.
      ours = sorted(expected, key=order) if order is not None else list(expected)
      pairs = [f"model {name} {_torch_shape(*expected[name])} vs state dict {other} "
               f"{tuple(np.shape(given[other]))}" for name, other in zip(ours, given)][:5]
      header += (f"; only {matched} of the model's {len(expected)} tensor names are in it "
                 "(weights of another architecture?). First tensors of each, in order:\n  "
                 + "\n  ".join(pairs) + "\nAll problems")
    listed = problems[:max_listed]
    if len(problems) > max_listed:
      listed.append(f"... and {len(problems) - max_listed} more")
    raise WeightMismatchError(header + ":\n  " + "\n  ".join(listed))

  state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))

  def replace(p, leaf):
    path = path_str(p)
    name = name_of(path)
    if name not in expected:
      return leaf
    # A copy: on CPU jnp.asarray may alias the numpy buffer, which for `tensor.numpy()`
    # is the torch tensor's own memory (and torch's BatchNorm updates it in place).
    value = np.array(to_flax_layout(path, np.asarray(given[name])), dtype=leaf.dtype)
    return jnp.asarray(value)

  nnx.update(model, jax.tree_util.tree_map_with_path(replace, state))
  return model


def _to_numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor
    value = value.detach().cpu()
    if str(value.dtype) == "torch.bfloat16":
      value = value.float()
    return value.numpy()
  return np.asarray(value)


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a state dict from `.pth`/`.pt` (torch), `.npz` or `.safetensors`.

  A checkpoint that wraps its weights under "state_dict" or "model" is unwrapped, and a
  "module." prefix (DataParallel) is dropped. A file named with a checksum (torch hub's
  `name-<sha256 prefix>.pth`) is verified first (`verify_checksum`).
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  verify_checksum(path)
  if ext in (".pth", ".pt", ".bin"):
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ImportError(
          f"Reading {path} needs PyTorch (`pip install torch`); or convert it elsewhere "
          "with `np.savez(out, **{k: v.numpy() for k, v in torch.load(p).items()})` and "
          "load the .npz.") from e
    try:
      raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
      # torch's own text is forty lines ending in advice to load it with weights_only=False,
      # which would run the file's code.
      found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
      raise ValueError(
          f"{path} holds pickled Python objects{' (' + found.group(1) + ')' if found else ''} "
          "besides tensors; they are not loaded, since loading them runs code. Save only "
          "the tensors (torch.save(model.state_dict(), path)) or convert them to .npz.") \
          from None
  elif ext == ".npz":
    try:
      with np.load(path, allow_pickle=False) as data:
        raw = {k: data[k] for k in data.files}
    except ValueError as e:  # pickled object arrays are refused: loading them runs code
      raise ValueError(f"{path}: cannot be read safely ({e}); save the weights as plain "
                       "numeric arrays, e.g. np.savez(out, **{name: array}).") from None
  elif ext == ".safetensors":
    try:
      from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ImportError(
          f"Reading {path} needs the `safetensors` package (`pip install safetensors`); "
          "or convert the file to .npz (torch names as keys, torch-layout arrays).") from e
    raw = load_file(path)
  else:
    raise ValueError(f"Unknown state-dict format {ext!r} for {path}; "
                     "use .pth/.pt, .npz or .safetensors.")
  for key in ("state_dict", "model"):
    if isinstance(raw, Mapping) and key in raw and isinstance(raw[key], Mapping):
      raw = raw[key]
  out = {}
  for k, v in raw.items():
    out[k[len("module."):] if k.startswith("module.") else k] = _to_numpy(v)
  return out
