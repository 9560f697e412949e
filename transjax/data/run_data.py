"""A training run's data: the train and test sets its config names, at the model's input.

    data = load_data(config)      # RunData(train, test, mean, std), images uint8 or float
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import numpy as np

from transjax import config as config_lib
from transjax.data import spec as data_spec
from transjax.data import batching, transforms
from transjax.data.dataset import Dataset


@dataclasses.dataclass(frozen=True)
class RunData:
  """A run's datasets at the model's input size (uint8 or float), and normalisation."""
  train: Dataset
  test: Dataset
  mean: np.ndarray | None
  std: np.ndarray | None

  @property
  def num_classes(self) -> int:
    return max(self.train.num_classes, self.test.num_classes)

  def describe(self) -> dict[str, Any]:
    stand_ins = sorted({d.provenance.stand_in_for for d in (self.train, self.test)
                        if d.provenance.stand_in_for})
    return {"train": self.train.provenance.describe(), "test": self.test.provenance.describe(),
            "n_train": len(self.train), "n_test": len(self.test), "stand_in_for": stand_ins}


def load_data(config: ml_collections.ConfigDict) -> RunData:
  """Builds the train and test sets named by the config, sized for the model."""
  data_dir = config.data.data_dir or None
  size, channels = config.model.input_size, config.model.in_channels
  sets = []
  for split in ("train", "test"):
    spec = dict(config.data[split])
    if config.data.tfds_data_dir and "tfds_data_dir" not in spec:
      spec["tfds_data_dir"] = config.data.tfds_data_dir
    # TFDS datasets of natural images come in many sizes; resize them as they are read.
    spec.setdefault("image_size", (size, size))
    ds = data_spec.build(spec, data_dir=data_dir, seed=config.seed)
    sets.append(transforms.to_model_input(ds, size, size, channels))
  train, test = sets
  if config.data.normalize == "train":
    mean, std = transforms.channel_stats(train)
  elif config.data.normalize == "imagenet":
    mean = np.asarray(config_lib.IMAGENET_MEAN[:channels], np.float32)
    std = np.asarray(config_lib.IMAGENET_STD[:channels], np.float32)
  else:
    mean = std = None
  return RunData(train, test, mean, std)


def sample_batch(ds: Dataset, n: int, seed: int = 0, *, mean=None,
                 std=None) -> dict[str, np.ndarray]:
  """A fixed sample set of `n` examples (stratified, seeded) as one batch at the model's
  input: float32, normalised by `mean`/`std` as in training (the paper's 256 samples)."""
  if n < len(ds):
    ds = transforms.subset_total(ds, n, seed)
  return {"image": batching.prepare_images(ds.images, mean, std),
          "label": ds.labels.astype(np.int32)}
