"""A model's weights from anywhere: fresh, a run folder, a weights file, another model's.

    graphdef, params, state, note = initial_weights(config, num_classes)   # per config.init_from
    config, graphdef, params, state = restore_run_weights("runs/pretrain", "final")

Every path that copies weights into a model is strict: a missing tensor or a shape that
does not fit raises one `pretrained.WeightMismatchError` naming the tensor and both shapes.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from transjax import checkpoint as ckpt
from transjax import functional
from transjax import imagenet
from transjax import optim
from transjax import params as params_lib
from transjax import pretrained
from transjax import results as results_lib
from transjax.models import build_model


def build_from_config(config: ml_collections.ConfigDict, num_classes: int) -> nnx.Module:
  m = config.model
  model = build_model(m.name, num_classes, in_channels=m.in_channels, input_size=m.input_size,
                      head=m.head, seed=config.seed)
  if m.get("bn_momentum", 0.0):
    for _, module in nnx.iter_modules(model):
      if isinstance(module, nnx.BatchNorm):
        module.momentum = float(m.bn_momentum)
  return model


def param_count(config: ml_collections.ConfigDict, num_classes: int) -> int:
  """The number of trainable parameters `build_from_config` gives, from shapes alone (no
  weights are initialised)."""
  model = nnx.eval_shape(lambda: build_from_config(config, num_classes))
  _, params, _ = functional.split(model)
  return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(params)))


def transfer_weights(source: Any, target: Any, *, skip_prefix: str | None, what: str) -> Any:
  """Copies `source` leaves into `target` by path; every path must exist with its shape.

  Leaves under `skip_prefix` (the head, when it is re-initialised) keep the target's.
  """
  src = dict(params_lib.named_leaves(source))
  out, problems = [], []
  for path, leaf in params_lib.named_leaves(target):
    if skip_prefix and params_lib.under(path, skip_prefix):
      out.append(leaf)
    elif path not in src:
      problems.append(f"{path}: missing from the loaded weights")
      out.append(leaf)
    elif np.shape(src[path]) != np.shape(leaf):
      problems.append(f"{path}: loaded shape {tuple(np.shape(src[path]))} but the model has "
                      f"{tuple(np.shape(leaf))}")
      out.append(leaf)
    else:
      out.append(jnp.asarray(src[path], dtype=leaf.dtype))
  if problems:
    raise pretrained.WeightMismatchError(f"{what} do not fit the model: " + "; ".join(problems))
  return jax.tree.unflatten(jax.tree.structure(target), out)


def restore_run_weights(run_dir: str, which: str | int = "final") -> tuple[ml_collections.ConfigDict, nnx.GraphDef, Any, Any]:
  """(config, graphdef, params, state) of a training run at "final", "init" or a step."""
  config_path = os.path.join(run_dir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{run_dir} is not a transjax run folder (no config.json).")
  config = ml_collections.ConfigDict(results_lib.read_json(config_path))
  run_json = os.path.join(run_dir, "run.json")
  if not os.path.exists(run_json):
    raise FileNotFoundError(
        f"{run_dir} has config.json but no run.json: that run stopped (or is still) before "
        "its data and model were set up. Run the training into it again, or point at a "
        "finished run folder.")
  num_classes = int(results_lib.read_json(run_json)["num_classes"])
  graphdef, params, state = functional.split(build_from_config(config, num_classes))
  like = {"params": params, "state": state}
  if which == "init":
    tree = ckpt.restore_tree(os.path.join(run_dir, "init"), like)
    return config, graphdef, tree["params"], tree["state"]
  steps = ckpt.checkpoint_steps(run_dir)
  if not steps:
    raise FileNotFoundError(f"{run_dir} has no checkpoint yet.")
  step = steps[-1] if which == "final" else int(which)
  if step not in steps:
    raise FileNotFoundError(f"{run_dir} has no checkpoint at step {step}; it has {steps}.")
  with ckpt.CheckpointStore(run_dir, max_to_keep=None) as store:
    try:
      raw = store.restore(step, optim.train_state_like(params, state, config))
    except Exception as e:  # pylint: disable=broad-except  (Orbax raises bare Exception)
      # An analysis reads another run's folder: it reports, and leaves repair to training.
      raise ckpt.UnreadableCheckpointError(
          f"{run_dir}: checkpoint step {step} cannot be read ({ckpt.reason(e)}). Run its "
          "training again on the same folder: it sets the step aside and resumes from the "
          "newest readable one.") from e
  return config, graphdef, raw["params"], raw["state"]


def initial_weights(config, num_classes) -> tuple[nnx.GraphDef, Any, Any, str]:
  """The model's starting weights: random, or loaded per config.init_from."""
  graphdef, params, state = functional.split(build_from_config(config, num_classes))
  if not config.init_from:
    return graphdef, params, state, f"random (seed {config.seed})"
  source = config.init_from
  skip = optim.HEAD if config.new_head else None
  # ImageNet weights by name ("imagenet:efficientnet_lite0"), and EfficientNet-PyTorch
  # weight files for EfficientNet models: transjax.imagenet resolves and loads them.
  if imagenet.handles(source, config.model.name):
    model = functional.merge(graphdef, params, state)
    model, note = imagenet.initial_weights(source, config.model.name, model,
                                           skip_head=bool(config.new_head))
    graphdef, params, state = functional.split(model)
    return graphdef, params, state, note
  if os.path.isdir(source):
    _, _, src_params, src_state = restore_run_weights(source, config.init_which)
    what = f"Weights of run {source} ({config.init_which})"
    params = transfer_weights(src_params, params, skip_prefix=skip, what=what)
    state = transfer_weights(src_state, state, skip_prefix=skip, what=what)
    return graphdef, params, state, f"run {source} ({config.init_which})"
  if os.path.isfile(source):
    model = functional.merge(graphdef, params, state)
    model = pretrained.load_torchvision_resnet(source, model, skip_head=bool(config.new_head))
    graphdef, params, state = functional.split(model)
    return graphdef, params, state, f"torchvision weights {source}"
  raise FileNotFoundError(f"config.init_from = {source!r} is neither a run folder nor a file.")
