"""A model's starting weights, per `config.init_from`: fresh, or loaded from anywhere.

    graphdef, params, state, note = initial_weights(config, num_classes)

`config.init_from` is empty (random, seeded), an `imagenet:` name or an EfficientNet-PyTorch
file for an EfficientNet model (`named`), a run folder (`run_folder`), or a torchvision
ResNet file (`torchvision_resnet`). Every path that copies weights into a model is strict:
a missing tensor or a shape that does not fit raises one `WeightMismatchError` naming the
tensor and both shapes.
"""

from __future__ import annotations

import os
from typing import Any

from flax import nnx

from transjax import functional
from transjax import optim
from transjax.weights import build
from transjax.weights import named
from transjax.weights import run_folder
from transjax.weights import torchvision_resnet


def initial_weights(config, num_classes) -> tuple[nnx.GraphDef, Any, Any, str]:
  """The model's starting weights: random, or loaded per config.init_from."""
  graphdef, params, state = functional.split(build.build_from_config(config, num_classes))
  if not config.init_from:
    return graphdef, params, state, f"random (seed {config.seed})"
  source = config.init_from
  skip = optim.HEAD if config.new_head else None
  # ImageNet weights by name ("imagenet:efficientnet_lite0"), and EfficientNet-PyTorch
  # weight files for EfficientNet models: `named` resolves and loads them.
  if named.handles(source, config.model.name):
    model = functional.merge(graphdef, params, state)
    model, note = named.initial_weights(source, config.model.name, model,
                                        skip_head=bool(config.new_head))
    graphdef, params, state = functional.split(model)
    return graphdef, params, state, note
  if os.path.isdir(source):
    _, _, src_params, src_state = run_folder.restore_run_weights(source, config.init_which)
    what = f"Weights of run {source} ({config.init_which})"
    params = run_folder.transfer_weights(src_params, params, skip_prefix=skip, what=what)
    state = run_folder.transfer_weights(src_state, state, skip_prefix=skip, what=what)
    return graphdef, params, state, f"run {source} ({config.init_which})"
  if os.path.isfile(source):
    model = functional.merge(graphdef, params, state)
    model = torchvision_resnet.load_torchvision_resnet(source, model,
                                                       skip_head=bool(config.new_head))
    graphdef, params, state = functional.split(model)
    return graphdef, params, state, f"torchvision weights {source}"
  raise FileNotFoundError(f"config.init_from = {source!r} is neither a run folder nor a file.")
