"""Weights of transjax's own training runs: restored from a run folder, copied into a model.

    config, graphdef, params, state = restore_run_weights("runs/pretrain", "final")
    params = transfer_weights(src_params, params, skip_prefix="fc", what="Weights of run X")

A run folder holds config.json, run.json and Orbax checkpoints in the trainer's layout
(`optim.train_state_like`). Copying is strict: a missing tensor or a shape that does not fit
raises one `WeightMismatchError` naming the tensor and both shapes.
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
from transjax import optim
from transjax import params as params_lib
from transjax import results as results_lib
from transjax.weights import build
from transjax.weights import state_dict as state_dict_lib


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
    raise state_dict_lib.WeightMismatchError(
        f"{what} do not fit the model: " + "; ".join(problems))
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
  graphdef, params, state = functional.split(build.build_from_config(config, num_classes))
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
