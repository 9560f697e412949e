"""A training run's data: the train and test sets its config names, at the model's input.

    data = load_data(config)      # RunData(train, test, mean, std), images uint8 or float
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from transjax.data import spec as data_spec
from transjax.data import batching, sources, transforms
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
  # The one fallback every binary shares: config.data.data_dir, $TRANSJAX_DATA_DIR, then
  # ../shared/data beside the repository (said once when that last one is used).
  data_dir = sources.find_data_dir(config.data.data_dir or None)
  built_in = ("digits", "synthetic")
  if (data_dir and not config.data.data_dir and not sources.default_data_dir()
      and any(sources.base_name(dict(config.data[s]).get("name") or "") not in built_in
              for s in ("train", "test"))):
    _notice(f"data folder {data_dir} (found beside the repository; set "
            "config.data.data_dir or $TRANSJAX_DATA_DIR to read another)")
  size, channels = config.model.input_size, config.model.in_channels
  sets = []
  for split in ("train", "test"):
    spec = dict(config.data[split])
    if config.data.tfds_data_dir and "tfds_data_dir" not in spec:
      spec["tfds_data_dir"] = config.data.tfds_data_dir
    if not config.data.get("verify_checksums", True):
      spec.setdefault("verify_checksums", False)
    # TFDS datasets of natural images come in many sizes; resize them as they are read.
    spec.setdefault("image_size", (size, size))
    ds = data_spec.build(spec, data_dir=data_dir, seed=config.seed)
    converted = transforms.to_model_input(ds, size, size, channels)
    for line in conversion_notices(split, ds, converted):
      _notice(line)
    sets.append((ds, converted))
  (raw_train, train), (raw_test, test) = sets
  for line in pair_notices(raw_train, raw_test):
    _notice(line)
  if config.data.normalize == "train":
    mean, std = transforms.channel_stats(train)
  elif config.data.normalize == "imagenet":
    mean = np.asarray(transforms.IMAGENET_MEAN[:channels], np.float32)
    std = np.asarray(transforms.IMAGENET_STD[:channels], np.float32)
  elif config.data.normalize == "efficientnet":
    mean = np.asarray(transforms.EFFICIENTNET_MEAN[:channels], np.float32)
    std = np.asarray(transforms.EFFICIENTNET_STD[:channels], np.float32)
  else:
    mean = std = None
  return RunData(train, test, mean, std)


_NOTICED: set[str] = set()  # each notice once per process (a paper experiment trains many runs)


def _notice(line: str) -> None:
  if line not in _NOTICED:
    _NOTICED.add(line)
    logging.warning("notice: %s", line)


def _shape_text(shape: tuple[int, int, int]) -> str:
  h, w, c = shape
  return f"{h}x{w} {'grey' if c == 1 else 'RGB' if c == 3 else f'{c}-channel'}"


def conversion_notices(split: str, ds: Dataset, converted: Dataset) -> list[str]:
  """One line per conversion `to_model_input` applied to `ds` (size, channels), else []."""
  added = converted.provenance.transforms[len(ds.provenance.transforms):]
  if not added:
    return []
  what = {"grey": "RGB -> grey (luma)", "rgb": "grey -> RGB (channel repeated)"}
  steps = [what.get(t, t.replace("resize", "resized ").replace("pad", "zero-padded "))
           for t in added]
  return [f"data.{split} {ds.name} ({ds.provenance.source}) is {_shape_text(ds.image_shape)}; "
          f"the model takes {_shape_text(converted.image_shape)}, so it is converted: "
          f"{', '.join(steps)}. Set config.model.input_size / in_channels, or add "
          "explicit transforms, to change this."]


def pair_notices(train: Dataset, test: Dataset) -> list[str]:
  """A line when the train and test sets differ in source or image size (before conversion)."""
  out = []
  # An image folder's splits are read from its subfolders (sources differ); its name is
  # the folder, so the same name is the same dataset.
  same_folder = train.provenance.source.startswith("folder:") and train.name == test.name
  if train.name != test.name or (train.provenance.source != test.provenance.source
                                 and not same_folder):
    out.append(f"data.train is {train.name} from {train.provenance.source} but data.test is "
               f"{test.name} from {test.provenance.source}; the test error measures another "
               "dataset than the one trained on.")
  if train.image_shape != test.image_shape:
    out.append(f"data.train images are {_shape_text(train.image_shape)} but data.test images "
               f"are {_shape_text(test.image_shape)}; both are converted to the model's input.")
  return out


def sample_batch(ds: Dataset, n: int, seed: int = 0, *, mean=None,
                 std=None) -> dict[str, np.ndarray]:
  """A fixed sample set of `n` examples (stratified, seeded) as one batch at the model's
  input: float32, normalised by `mean`/`std` as in training (the paper's 256 samples)."""
  if n < len(ds):
    ds = transforms.subset_total(ds, n, seed)
  return {"image": batching.prepare_images(ds.images, mean, std),
          "label": ds.labels.astype(np.int32)}
