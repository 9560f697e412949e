"""The `Dataset` container and its `Provenance` record.

A dataset is a plain, immutable bundle of arrays: images (N, H, W, C), integer labels,
class names, and a provenance record that says where the data came from and which
named transforms produced it. Every result that a dataset feeds names it through
`Provenance.describe()`, so an offline stand-in can never pass for the real thing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Provenance:
  """Where a dataset came from and what was done to it.

  Attributes:
      source: the concrete source, e.g. "idx:/data/mnist", "tfds:mnist:3.0.1",
          "sklearn:digits", "synthetic:shapes(seed=0)", "h5:/data/usps/usps.h5".
      stand_in_for: the dataset this one replaces in an experiment (e.g. "SVHN" when
          USPS stands in for it), or None.
      transforms: names of the transforms applied, in order.
  """

  source: str
  stand_in_for: str | None = None
  transforms: tuple[str, ...] = ()

  def describe(self, name: str | None = None) -> str:
    """One line for reports.

    Example: "usps (stand-in for SVHN) from h5:/d/usps.h5; transforms: per_class(60)".
    """
    head = name or "dataset"
    if self.stand_in_for:
      head += f" (stand-in for {self.stand_in_for})"
    line = f"{head} from {self.source}"
    if self.transforms:
      line += "; transforms: " + ", ".join(self.transforms)
    return line


@dataclasses.dataclass(frozen=True)
class Dataset:
  """An in-memory image classification dataset.

  Attributes:
      name: short name, e.g. "mnist".
      images: (N, H, W, C) uint8 in [0, 255] or float32.
      labels: (N,) int32 in [0, num_classes).
      class_names: one name per class; its length defines `num_classes`.
      provenance: where the data came from and which transforms made it.
  """

  name: str
  images: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  provenance: Provenance

  def __post_init__(self):
    images = np.asarray(self.images)
    labels = np.asarray(self.labels)
    if images.ndim != 4:
      raise ValueError(
          f"Dataset {self.name!r}: images must be (N, H, W, C), got shape"
          f" {images.shape}.")
    if images.dtype not in (np.uint8, np.float32):
      raise ValueError(
          f"Dataset {self.name!r}: images must be uint8 or float32, got"
          f" {images.dtype}.")
    if labels.ndim != 1:
      raise ValueError(
          f"Dataset {self.name!r}: labels must be (N,), got shape {labels.shape}.")
    if len(images) != len(labels):
      raise ValueError(
          f"Dataset {self.name!r}: {len(images)} images but {len(labels)} labels.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(
          f"Dataset {self.name!r}: labels must be integers, got {labels.dtype}.")
    labels = labels.astype(np.int32, copy=False)
    class_names = tuple(str(c) for c in self.class_names)
    if not class_names:
      raise ValueError(f"Dataset {self.name!r}: class_names is empty.")
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
      raise ValueError(
          f"Dataset {self.name!r}: labels must lie in [0, {len(class_names)}),"
          f" got min {labels.min()} max {labels.max()}.")
    if not isinstance(self.provenance, Provenance):
      raise TypeError(
          f"Dataset {self.name!r}: provenance must be a Provenance, got"
          f" {type(self.provenance).__name__}.")
    object.__setattr__(self, "images", images)
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "class_names", class_names)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])  # type: ignore[return-value]

  def __len__(self) -> int:
    return len(self.labels)

  def replace(self, **changes: Any) -> "Dataset":
    """A copy with some fields replaced (validated again)."""
    return dataclasses.replace(self, **changes)

  def with_transform(self, transform_name: str, /, **changes: Any) -> "Dataset":
    """A copy with `changes` applied and `transform_name` recorded in provenance."""
    provenance = changes.pop("provenance", self.provenance)
    provenance = dataclasses.replace(
            provenance, transforms=provenance.transforms + (transform_name,))
    return dataclasses.replace(self, provenance=provenance, **changes)

  def describe(self) -> str:
    """One line for reports: name, stand-in, source, transforms and size."""
    return (f"{self.provenance.describe(self.name)}; {len(self)} examples,"
                    f" {self.num_classes} classes, images {self.image_shape}"
                    f" {self.images.dtype}")

  def class_counts(self) -> np.ndarray:
    """Number of examples of each class, shape (num_classes,)."""
    return np.bincount(self.labels, minlength=self.num_classes)
