"""A finished (or running) training run, loaded back for analysis.

    run = load_run("runs/pretrain", which="final")    # or "init", or a step
    loss, aux = run.loss_fn(run.params, run.state, run.batch("train", 256), False)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
import numpy as np
from flax import nnx

from transjax import checkpoint as ckpt
from transjax import functional
from transjax import weights as weights_lib
from transjax.data import Dataset, batching
from transjax.data.run_data import load_data, sample_batch


@dataclasses.dataclass
class LoadedRun:
  """A run's model at one point of training, with its data at the model's input."""
  run_dir: str
  which: str | int
  config: ml_collections.ConfigDict
  graphdef: nnx.GraphDef
  params: Any
  state: Any
  loss_fn: functional.LossFn
  train_data: Dataset          # float32, normalised as in training
  test_data: Dataset

  def batch(self, split: str = "train", n: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed sample set of `n` examples (stratified, seeded) as one batch."""
    return sample_batch(self.train_data if split == "train" else self.test_data, n, seed)

  @property
  def name(self) -> str:
    return f"{self.config.name} ({self.which})"


def _normalized(ds: Dataset, mean, std) -> Dataset:
  return ds.replace(images=batching.prepare_images(ds.images, mean, std))


def load_run(run_dir: str, which: str | int = "final") -> LoadedRun:
  """Loads a run folder's model at "final" (last checkpoint), "init" or a step."""
  config, graphdef, params, state = weights_lib.restore_run_weights(run_dir, which)
  data = load_data(config)
  return LoadedRun(
      run_dir=os.path.abspath(run_dir), which=which, config=config, graphdef=graphdef,
      params=params, state=state, loss_fn=functional.make_loss_fn(graphdef),
      train_data=_normalized(data.train, data.mean, data.std),
      test_data=_normalized(data.test, data.mean, data.std))


def list_checkpoint_steps(run_dir: str) -> list[int]:
  return ckpt.checkpoint_steps(run_dir)
