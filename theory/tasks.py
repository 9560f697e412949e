"""Source/target task pairs for the theory checks: synthetic with controlled similarity, and real.

A task pair is the paper's (P, Q): inputs on the unit sphere in R^d, labels in [-1, 1].
Synthetic pairs control input similarity (the target input distribution is the source's,
rotated by an angle) and label similarity (target labels mix, with weight alpha, the source's
labelling function and an independent one). Real pairs are binary +-1 tasks on digits
(scikit-learn, always available offline) and MNIST / Fashion-MNIST / USPS when a data
directory holds them, PCA-projected (fitted on the source) and normalised to the sphere.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import math
import os
import pathlib
from typing import Any

import numpy as np

from theory.errors import LabelRangeError, MissingDataError, OffSphereError

DATA_DIR_ENV = "TRANSJAX_DATA_DIR"
_SPHERE_ATOL = 1e-6

REAL_KINDS = {
    "digits_same": "sklearn digits -> disjoint sklearn digits, same labelling (digit < 5)",
    "digits_relabel": "sklearn digits -> disjoint sklearn digits, other labelling (even vs odd)",
    "mnist_usps": "MNIST -> USPS (other domain), same labelling (digit < 5)",
    "mnist_fashion": "MNIST -> Fashion-MNIST (other domain), other labelling (class < 5)",
}


@dataclasses.dataclass(frozen=True)
class TaskPair:
  """A pretraining task P and a target task Q.

  Attributes:
    name: short identifier (used in file names and tables).
    description: human-readable; says when data is a stand-in or projected.
    x_source: (n_P, d) unit-norm inputs.
    y_source: (n_P,) labels in [-1, 1].
    x_target: (n_Q, d) unit-norm inputs.
    y_target: (n_Q,) labels in [-1, 1].
    similarity: the knobs that made this pair (e.g. angle, label_mix), for plots.
  """

  name: str
  description: str
  x_source: np.ndarray
  y_source: np.ndarray
  x_target: np.ndarray
  y_target: np.ndarray
  similarity: dict[str, Any]

  def summary(self) -> dict[str, Any]:
    """JSON-friendly description (no arrays)."""
    return {"name": self.name, "description": self.description,
            "n_source": int(self.x_source.shape[0]), "n_target": int(self.x_target.shape[0]),
            "dim": int(self.x_source.shape[1]), "similarity": dict(self.similarity)}


def check_inputs(x: np.ndarray, y: np.ndarray, name: str, strict: bool = False) -> np.ndarray:
  """Validates one sample; returns x normalised onto the unit sphere.

  Args:
    x: (n, d) inputs.
    y: (n,) labels.
    name: what the sample is, for messages.
    strict: refuse off-sphere inputs instead of normalising them with a warning.

  Returns:
    x with unit-norm rows, float64.

  Raises:
    OffSphereError: a row is off the sphere and strict is set, or a row is zero.
    LabelRangeError: some |y| > 1.
  """
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  if x.ndim != 2 or y.shape != (x.shape[0],):
    raise OffSphereError(f"{name}: expected x of shape (n, d) and y of shape (n,), got "
                         f"{x.shape} and {y.shape}.")
  worst_label = float(np.max(np.abs(y))) if y.size else 0.0
  if worst_label > 1.0 + 1e-12:
    raise LabelRangeError(f"{name}: labels must satisfy |y| <= 1 but max |y| = {worst_label:.4g};"
                          " rescale them into [-1, 1].")
  norms = np.linalg.norm(x, axis=1)
  worst = float(np.max(np.abs(norms - 1.0))) if norms.size else 0.0
  if worst > _SPHERE_ATOL:
    if strict or np.any(norms == 0):
      raise OffSphereError(f"{name}: inputs must lie on the unit sphere but ||x||_2 deviates "
                           f"from 1 by up to {worst:.3g} (min norm {norms.min():.3g}); normalise "
                           "them or run with strict=False.")
    logging.warning("%s: inputs off the unit sphere (max | ||x|| - 1 | = %.3g); normalising.",
                    name, worst)
    x = x / norms[:, None]
  return x


def _sphere_cloud(rng: np.random.Generator, n: int, mean: np.ndarray,
                  spread: float) -> np.ndarray:
  points = mean[None, :] + spread * rng.standard_normal((n, mean.shape[0]))
  return points / np.linalg.norm(points, axis=1, keepdims=True)


def _labelling(direction: np.ndarray, sharpness: float):
  # A smooth single-index function in [-1, 1]; sharpness sets how non-linear it is.
  return lambda x: np.tanh(sharpness * x @ direction)


def synthetic_task(seed: int, dim: int, n_source: int, n_target: int, angle: float,
                   label_mix: float, spread: float = 1.0, sharpness: float = 3.0) -> TaskPair:
  """Builds a synthetic pair with controlled input and label similarity.

  Source inputs are normalised N(e1, spread^2 I) points; target inputs the same
  distribution rotated by `angle` in the (e1, e2) plane. Source labels are g(x) =
  tanh(sharpness v.x); target labels are label_mix g(x) + (1 - label_mix) g'(x) with g'
  built from an independent direction, divided by sqrt(label_mix^2 + (1 - label_mix)^2)
  (same scale for every mix) and, if that leaves some |y| > 1, scaled into [-1, 1].

  Args:
    seed: numpy seed; the same seed gives the same task.
    dim: input dimension d >= 2.
    n_source: n_P.
    n_target: n_Q.
    angle: rotation of the target input distribution, radians (0 = same inputs).
    label_mix: alpha in [0, 1] (1 = same labelling function).
    spread: noise scale around the mean direction (larger = closer to uniform).
    sharpness: slope of the labelling functions.

  Returns:
    The task pair.
  """
  rng = np.random.default_rng(seed)
  source_mean = np.zeros(dim)
  source_mean[0] = 1.0
  target_mean = np.zeros(dim)
  target_mean[0], target_mean[1] = math.cos(angle), math.sin(angle)
  x_source = _sphere_cloud(rng, n_source, source_mean, spread)
  x_target = _sphere_cloud(rng, n_target, target_mean, spread)
  shared = rng.standard_normal(dim)
  independent = rng.standard_normal(dim)
  source_labels = _labelling(shared / np.linalg.norm(shared), sharpness)
  other_labels = _labelling(independent / np.linalg.norm(independent), sharpness)
  y_source = source_labels(x_source)
  y_target = label_mix * source_labels(x_target) + (1 - label_mix) * other_labels(x_target)
  # Keep the label scale independent of the mix (two uncorrelated functions mixed at 1/2
  # would shrink it by sqrt(2)), so deviations reflect similarity, not label magnitude;
  # then scale into [-1, 1] if needed.
  y_target = y_target / math.hypot(label_mix, 1 - label_mix)
  y_target = y_target / max(1.0, float(np.max(np.abs(y_target))))
  name = f"synthetic_angle{math.degrees(angle):.0f}_mix{label_mix:.2f}"
  description = (f"synthetic: inputs normalised N(e1, {spread}^2 I) in R^{dim}, target rotated "
                 f"by {math.degrees(angle):.1f} deg; target labels = {label_mix:.2f} * source "
                 f"labelling + {1 - label_mix:.2f} * independent labelling (tanh single-index), rescaled")
  return TaskPair(name, description, x_source, y_source, x_target, y_target,
                  {"angle_deg": math.degrees(angle), "label_mix": label_mix})


# --------------------------------------------------------------------------- real data


def resolve_data_dir(data_dir: str | None) -> pathlib.Path | None:
  """Returns the data dir from the argument, else env TRANSJAX_DATA_DIR, else None."""
  chosen = data_dir or os.environ.get(DATA_DIR_ENV)
  return pathlib.Path(chosen) if chosen else None


def _read_idx(path: pathlib.Path) -> np.ndarray:
  """Reads a gzip IDX file (ubyte) into a numpy array."""
  with gzip.open(path, "rb") as handle:
    raw = handle.read()
  num_dims = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(num_dims))
  return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * num_dims).reshape(shape)


def _require(data_dir: pathlib.Path | None, relative: list[str], what: str) -> list[pathlib.Path]:
  if data_dir is None:
    raise MissingDataError(f"{what} needs a data directory: pass data_dir or set "
                           f"{DATA_DIR_ENV}; expected files: {', '.join(relative)}.")
  paths = [data_dir / name for name in relative]
  missing = [str(p) for p in paths if not p.exists()]
  if missing:
    raise MissingDataError(f"{what}: missing {', '.join(missing)} (expected files "
                           f"{', '.join(relative)} under {data_dir}).")
  return paths


def _load_idx_dataset(data_dir: pathlib.Path | None, folder: str) -> tuple[np.ndarray, np.ndarray]:
  images, labels = _require(data_dir, [f"{folder}/train-images-idx3-ubyte.gz",
                                       f"{folder}/train-labels-idx1-ubyte.gz"], folder)
  return _read_idx(images).astype(np.float64) / 255.0, _read_idx(labels).astype(np.int64)


def _load_usps(data_dir: pathlib.Path | None) -> tuple[np.ndarray, np.ndarray]:
  (path,) = _require(data_dir, ["usps/usps.h5"], "usps")
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise MissingDataError("reading usps/usps.h5 needs the h5py package.") from error
  with h5py.File(path, "r") as handle:
    return (np.asarray(handle["train/data"], dtype=np.float64).reshape(-1, 16, 16),
            np.asarray(handle["train/target"], dtype=np.int64))


def _to_16x16(images: np.ndarray) -> np.ndarray:
  """Resizes 28x28 images to USPS's 16x16 so both domains share one input space."""
  import scipy.ndimage  # pylint: disable=g-import-not-at-top
  return np.stack([scipy.ndimage.zoom(image, 16 / image.shape[0], order=1) for image in images])


def _pick(rng: np.random.Generator, count: int, n: int, exclude: np.ndarray | None = None):
  pool = np.arange(count) if exclude is None else np.setdiff1d(np.arange(count), exclude)
  return rng.choice(pool, size=n, replace=False)


def _project(source: np.ndarray, target: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
  """PCA fitted on the source (centred), applied to both, then onto the unit sphere."""
  source = source.reshape(source.shape[0], -1)
  target = target.reshape(target.shape[0], -1)
  mean = source.mean(axis=0)
  _, _, components = np.linalg.svd(source - mean, full_matrices=False)
  basis = components[:dim].T
  projected = [(data - mean) @ basis for data in (source, target)]
  return tuple(p / np.linalg.norm(p, axis=1, keepdims=True) for p in projected)


def real_task(kind: str, seed: int, dim: int, n_source: int, n_target: int,
              data_dir: str | None = None) -> TaskPair:
  """Builds a binary +-1 real-data pair (see REAL_KINDS).

  Args:
    kind: one of REAL_KINDS.
    seed: numpy seed for the subsample.
    dim: PCA dimension d.
    n_source: n_P.
    n_target: n_Q.
    data_dir: folder with mnist/, fashion_mnist/, usps/ (or env TRANSJAX_DATA_DIR); not
      needed for the digits kinds.

  Returns:
    The task pair.

  Raises:
    MissingDataError: the kind needs files that are not there.
    ValueError: unknown kind.
  """
  if kind not in REAL_KINDS:
    raise ValueError(f"unknown real task kind {kind!r}; choose from {sorted(REAL_KINDS)}.")
  rng = np.random.default_rng(seed)
  folder = resolve_data_dir(data_dir)
  if kind.startswith("digits"):
    import sklearn.datasets  # pylint: disable=g-import-not-at-top
    digits = sklearn.datasets.load_digits()
    images, labels = digits.data / 16.0, digits.target
    source_idx = _pick(rng, len(labels), n_source)
    target_idx = _pick(rng, len(labels), n_target, exclude=source_idx)
    x_s, c_s, x_t, c_t = images[source_idx], labels[source_idx], images[target_idx], labels[target_idx]
    y_t = np.where(c_t < 5, 1.0, -1.0) if kind == "digits_same" else np.where(c_t % 2 == 0, 1.0, -1.0)
  else:
    mnist_x, mnist_y = _load_idx_dataset(folder, "mnist")
    if kind == "mnist_usps":
      other_x, other_y = _load_usps(folder)
    else:
      other_x, other_y = _load_idx_dataset(folder, "fashion_mnist")
    source_idx = _pick(rng, len(mnist_y), n_source)
    target_idx = _pick(rng, len(other_y), n_target)
    x_s, c_s = _to_16x16(mnist_x[source_idx]), mnist_y[source_idx]
    x_t, c_t = other_x[target_idx], other_y[target_idx]
    if x_t.shape[-1] != 16:
      x_t = _to_16x16(x_t)
    y_t = np.where(c_t < 5, 1.0, -1.0)
  y_s = np.where(c_s < 5, 1.0, -1.0)
  x_source, x_target = _project(x_s, x_t, dim)
  description = (f"real: {REAL_KINDS[kind]}; binary +-1 labels; images PCA-projected to d={dim} "
                 "(fitted on the source) and normalised to the unit sphere")
  if kind == "mnist_usps":
    description += "; MNIST resized to 16x16 to match USPS"
  return TaskPair(kind, description, x_source, y_s, x_target, y_t, {"kind": kind})
