"""Finding a dataset by name: local files, then TFDS, then built-in generators.

`load(name, split)` tries, in order:

1. local files under `data_dir` (the argument, else `$TRANSJAX_DATA_DIR`):
   `<data_dir>/mnist/` and `<data_dir>/fashion_mnist/` with the four original IDX .gz
   files (sha256-verified), `<data_dir>/usps/usps.h5`, `<data_dir>/cifar10/*.npz`;
2. TFDS: `tfds.data_source(name, split=..., data_dir=tfds_data_dir or
   <data_dir>/tfds or TFDS's default)`, read without TensorFlow;
3. built-in: "digits" (scikit-learn's 1,797 8x8 digits) and "synthetic" (see
   `synthetic.py`; options in the name: "synthetic(num_classes=5,size=32,seed=1)").

"folder:<path>" reads an image folder (`folder.py`: <path>/<split>/<class>/<image>, or
<path>/<class>/<image> as split "all"); a relative path is read under `data_dir` when it is
there, else from the working directory.

When none has the data, `DatasetNotFoundError` lists every place tried and how to
provide the files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from absl import logging

from transjax.data import folder
from transjax.data import idx
from transjax.data import synthetic
from transjax.data.dataset import Dataset, Provenance

KNOWN_DATASETS: dict[str, str] = {
    "mnist": "MNIST handwritten digits, 28x28 grey, 60k/10k (IDX files or TFDS)",
    "fashion_mnist": "Fashion-MNIST clothing, 28x28 grey, 60k/10k (IDX files or TFDS)",
    "usps": "USPS handwritten digits, 16x16 grey, 7291/2007 (usps/usps.h5)",
    "svhn_cropped": "SVHN cropped house numbers, 32x32 RGB (TFDS)",
    "cifar10": "CIFAR-10, 32x32 RGB, 10 classes (cifar10/*.npz or TFDS)",
    "caltech101": "Caltech-101 object categories, variable-size RGB (TFDS)",
    "caltech_birds2011": "CUB-200-2011 birds, variable-size RGB (TFDS)",
    "cars196": "Stanford Cars, 196 classes, variable-size RGB (TFDS)",
    "food101": "Food-101, variable-size RGB (TFDS)",
    "places365_small": "Places365 scenes, 256x256 RGB (TFDS)",
    "imagenet2012": "ImageNet ILSVRC-2012, variable-size RGB (TFDS, manual download)",
    "digits": "scikit-learn's 1,797 8x8 handwritten digits (built in; 80/20 split)",
    "synthetic": "procedurally generated shapes/gratings, 28x28x1, 10 classes "
                 "(built in; options: synthetic(size=,channels=,num_classes=,"
                 "num_train=,num_test=,seed=,noise=))",
}

TFDS_NAMES = frozenset({"mnist", "fashion_mnist", "svhn_cropped", "cifar10", "caltech101",
                        "caltech_birds2011", "cars196", "food101", "places365_small",
                        "imagenet2012"})

DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_MNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                       "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetNotFoundError(FileNotFoundError):
  """No source had the dataset; the message says where we looked and what to do."""


class UnknownDatasetError(ValueError):
  """The name is not a known dataset; the message lists the known names."""


def default_data_dir() -> str | None:
  """`$TRANSJAX_DATA_DIR`, or None when unset or empty."""
  return os.environ.get("TRANSJAX_DATA_DIR") or None


# A checkout's data sits beside it (the layout of the shared workspace: <root>/<repo> and
# <root>/shared/data); an installed package finds nothing there and relies on the first two.
SHARED_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

DATA_DIR_SEARCH = ("--data_dir (or config data.data_dir), then $TRANSJAX_DATA_DIR, then "
                   "../shared/data beside the repository")


def find_data_dir(data_dir: str | None = None) -> str | None:
  """The data folder a binary or test should read: the one given, else `$TRANSJAX_DATA_DIR`,
  else ../shared/data beside the repository when it exists, else None.

  Binaries and tests share this one fallback so a checkout finds its data without flags. A
  folder that is given is returned even if missing (loading it then says what is missing
  where); a `$TRANSJAX_DATA_DIR` that is not a folder is skipped with a notice.
  """
  if data_dir:
    return str(data_dir)
  env = default_data_dir()
  if env and Path(env).expanduser().is_dir():
    return env
  if env:
    logging.warning("notice: TRANSJAX_DATA_DIR=%s is not a folder; ignored (set it to the "
                    "folder holding mnist/, cifar10/, ...).", env)
  return str(SHARED_DATA_DIR) if SHARED_DATA_DIR.is_dir() else None


def base_name(name: str) -> str:
  """"synthetic(seed=1)" -> "synthetic"; "tfds:foo" -> "tfds:foo"; else `name`."""
  if name.startswith("folder:"):
    return name  # a path may hold "("
  return name.split("(", 1)[0].strip()


def check_name(name: str) -> None:
  """Raises `UnknownDatasetError` unless `name` is loadable by `load`."""
  base = base_name(name)
  if base.startswith("folder:") and len(base) > 7:
    return
  if base in KNOWN_DATASETS or (base.startswith("tfds:") and len(base) > 5):
    if "(" in name and base != "synthetic":
      raise UnknownDatasetError(f"Only 'synthetic' takes options, got {name!r}.")
    if base.startswith("tfds:"):
      _check_tfds_builder(base.removeprefix("tfds:"))
    return
  raise UnknownDatasetError(
      f"Unknown dataset {name!r}. Known: {', '.join(sorted(KNOWN_DATASETS))} "
      "(or 'tfds:<any TFDS name>', or 'folder:<path>' for an image folder).")


def _check_tfds_builder(tfds_name: str) -> None:
  """Refuses a TFDS name that is not one of TFDS's registered builders but is close to
  one (a misspelling, caught before any work instead of at load). Other unregistered
  names pass: a dataset prepared with a builder of one's own is found at load."""
  import difflib  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = re.split(r"[/:]", tfds_name, maxsplit=1)[0]
  registered = tfds.list_builders(with_community_datasets=False)
  if builder in registered:
    return
  close = difflib.get_close_matches(builder, registered, n=3, cutoff=0.8)
  if close:
    raise UnknownDatasetError(
        f"Unknown TFDS dataset {builder!r} (in 'tfds:{tfds_name}'); did you mean "
        f"{' or '.join(repr(c) for c in close)}?")


_SPLIT_RE = re.compile(r"^(\w+)(?:\[(-?\d*%?):(-?\d*%?)\])?$")


def _parse_split(split: str) -> tuple[str, str | None, str | None]:
  m = _SPLIT_RE.match(split.replace(" ", ""))
  if m is None:
    raise ValueError(
        f"Cannot parse split {split!r}; use 'train', 'test', or slices such as "
        "'train[:1000]' or 'test[10%:]'.")
  return m.group(1), m.group(2) or None, m.group(3) or None


def _slice(n: int, start: str | None, stop: str | None) -> slice:
  def bound(b):
    if b is None:
      return None
    if b.endswith("%"):
      return int(round(n * int(b[:-1]) / 100))
    return int(b)
  return slice(bound(start), bound(stop))


# ---------------------------------------------------------------------------
# Local files.


class _NotHere(Exception):
  """A source does not have the data; its message says what was tried."""


def _local_idx(name, base_split, data_dir: Path, *, verify_checksums, allow_download):
  directory = data_dir / name
  if base_split not in idx.IDX_FILES[name]:
    raise _NotHere(f"{directory}: {name} has splits train/test, not {base_split!r}")
  paths = idx.idx_paths(directory, name, base_split)
  missing = [p for p in paths if not p.is_file()]
  if missing and allow_download:
    try:
      idx.fetch_idx_files(directory, name)
    except OSError as e:
      raise _NotHere(
          f"{directory}: download from {idx.CANONICAL_URLS[name]} failed ({e})")
    missing = [p for p in paths if not p.is_file()]
  if missing:
    raise _NotHere(f"{directory}: missing {', '.join(p.name for p in missing)}")
  images, labels = idx.load_idx_split(directory, name, base_split,
                                      verify_checksums=verify_checksums)
  names = DIGIT_NAMES if name == "mnist" else FASHION_MNIST_NAMES
  return images, labels, names, f"idx:{directory}"


def _local_usps(base_split, data_dir: Path):
  path = data_dir / "usps" / "usps.h5"
  if not path.is_file():
    raise _NotHere(f"{path}: missing")
  import h5py  # pylint: disable=g-import-not-at-top
  with h5py.File(path, "r") as f:
    if base_split not in f:
      raise _NotHere(f"{path}: has groups {sorted(f)}, not {base_split!r}")
    data = np.asarray(f[base_split]["data"], np.float32)
    target = np.asarray(f[base_split]["target"])
  images = np.clip(np.round(data * 255.0), 0, 255).astype(np.uint8)
  images = images.reshape(-1, 16, 16, 1)
  return images, target.astype(np.int32), DIGIT_NAMES, f"h5:{path}"


def _local_cifar10(base_split, data_dir: Path):
  directory = data_dir / "cifar10"
  files = sorted(directory.glob("*.npz")) if directory.is_dir() else []
  matching = [f for f in files if base_split in f.stem.lower().split("_")
              or f.stem.lower().endswith(base_split)]
  if not matching:
    if files:
      have = ", ".join(f.name for f in files)
      raise _NotHere(
          f"{directory}: has {have} but no {base_split!r} file. Only the CIFAR-10 "
          f"test split may be available offline: load('cifar10', 'test') and "
          f"carve train/test subsets from it with transforms.split(ds, fraction, "
          f"seed) (spec transforms 'split_train:0.8' / 'split_test:0.8')")
    raise _NotHere(f"{directory}: no cifar10_*_{base_split}.npz file")
  path = matching[0]
  try:
    with np.load(path, allow_pickle=False) as z:
      images = np.asarray(z["x"], np.uint8)
      labels = np.asarray(z["y"]).astype(np.int32)
      names = tuple(str(c) for c in z["classes"]) if "classes" in z else (
          "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
          "ship", "truck")
  except ValueError as e:  # e.g. pickled object arrays, refused by allow_pickle=False
    raise ValueError(f"{path}: cannot be read safely ({e}); store the arrays x, y "
                     "(and classes) as plain numeric/string arrays, e.g. with np.savez.") from None
  except KeyError as e:
    raise ValueError(f"{path}: has no array {e}; a CIFAR-10 .npz holds x (N,32,32,3) "
                     "uint8, y (N,) and optionally classes.") from None
  return images, labels, names, f"npz:{path}"


def _load_local(name, base_split, data_dir: Path, *, verify_checksums, allow_download):
  if name in idx.IDX_FILES:
    return _local_idx(name, base_split, data_dir, verify_checksums=verify_checksums,
                      allow_download=allow_download)
  if name == "usps":
    return _local_usps(base_split, data_dir)
  if name == "cifar10":
    return _local_cifar10(base_split, data_dir)
  raise _NotHere(f"no local-file format for {name!r}")


# ---------------------------------------------------------------------------
# TFDS.


def _stack_images(images: list[np.ndarray], name: str) -> np.ndarray:
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise ValueError(
        f"tfds:{name} images have {len(shapes)} different shapes (e.g. "
        f"{sorted(shapes)[:3]}); pass image_size=(height, width) to load() to resize "
        "them on reading.")
  return np.stack(images)


TFDS_READ_CHUNK = 1024   # records decoded at a time


def read_records(source, name: str, image_size) -> tuple[np.ndarray, np.ndarray]:
  """(images, labels) of every record of a TFDS data source, decoded a chunk at a time.

  With `image_size` (a dataset whose images vary in size), each chunk is resized as it
  is decoded, so memory holds the resized dataset plus one chunk of decoded images, not
  every full-size image at once (Food-101's 75,750 training images, up to 512x512, are
  about 45 GB decoded). Without it, images of different shapes raise (see `_stack_images`).
  """
  n = len(source)
  images, labels = [], []
  for start in range(0, n, TFDS_READ_CHUNK):
    records = source.__getitems__(list(range(start, min(n, start + TFDS_READ_CHUNK))))
    chunk = [np.asarray(r["image"]) for r in records]
    labels.extend(int(r["label"]) for r in records)
    if image_size is not None:
      sizes = {im.shape[:2] for im in chunk}
      if start == 0:
        logging.warning("notice: tfds:%s images vary in size (e.g. %s); resized to "
                        "%dx%d as they are read", name,
                        ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3]),
                        *image_size)
      from transjax.data.transforms import resize_images  # pylint: disable=g-import-not-at-top
      chunk = [resize_images(im[None] if im.ndim == 3 else im[None, ..., None],
                             *image_size)[0] for im in chunk]
    images.extend(chunk)
  if not images:
    return np.zeros((0, 0, 0, 0), np.uint8), np.zeros((0,), np.int32)
  return _stack_images(images, name), np.asarray(labels, np.int32)


def _load_tfds(tfds_name, split, tfds_dir, image_size):
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise _NotHere(f"tensorflow_datasets not importable ({e})")
  where = tfds_dir or "TFDS default data_dir"
  if tfds_dir is not None and not (Path(tfds_dir) / tfds_name).is_dir():
    raise _NotHere(f"tfds: no {Path(tfds_dir) / tfds_name}/ (not prepared there)")
  try:
    source = tfds.data_source(tfds_name, split=split, data_dir=tfds_dir,
                              download=False)
    info = source.dataset_info
  except Exception as e:  # pylint: disable=broad-except
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise _NotHere(f"tfds {tfds_name!r} in {where}: not prepared ({first[:200]})")
  shape = getattr(info.features["image"], "shape", None)
  variable = shape is None or any(d is None for d in tuple(shape)[:2])
  images, labels = read_records(source, tfds_name, image_size if variable else None)
  if images.ndim == 3:
    images = images[..., None]
  label_feature = info.features["label"]
  names = tuple(getattr(label_feature, "names", None)
                or (str(i) for i in range(label_feature.num_classes)))
  return images, labels, names, f"tfds:{tfds_name}:{info.version}"


# ---------------------------------------------------------------------------
# Built-in.


def _load_digits(base_split):
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  if base_split not in ("train", "test"):
    raise ValueError(f"digits has splits 'train' and 'test', not {base_split!r}.")
  bunch = load_digits()
  images = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
  labels = bunch.target.astype(np.int32)
  index = np.arange(len(labels))
  train_idx, test_idx = train_test_split(index, test_size=0.2, random_state=0,
                                         stratify=labels)
  chosen = np.sort(train_idx if base_split == "train" else test_idx)
  return (images[chosen][..., None], labels[chosen], DIGIT_NAMES,
          "sklearn:digits(80/20 stratified, seed 0)")


# ---------------------------------------------------------------------------


def _how_to_provide(name: str, base_split: str, data_dir: Path | None) -> str:
  where = str(data_dir) if data_dir else "<data_dir>"
  lines = []
  if name in idx.IDX_FILES:
    files = ", ".join(idx.IDX_FILES[name][base_split]) if base_split in idx.IDX_FILES[
        name] else ", ".join(idx.CANONICAL_SHA256[name])
    lines.append(f"place the original files {files} in {where}/{name}/ (pass "
                 f"data_dir= or set TRANSJAX_DATA_DIR), or call load(..., "
                 f"allow_download=True) with network access")
  elif name == "usps":
    lines.append(f"place usps.h5 (groups train/test with 'data' (N,256) floats in "
                 f"[0,1] and 'target') at {where}/usps/usps.h5")
  elif name == "cifar10":
    lines.append(f"place an .npz with x uint8 (N,32,32,3), y, classes named "
                 f"cifar10_*_{base_split}.npz in {where}/cifar10/")
  if name in TFDS_NAMES or name.startswith("tfds:"):
    tname = name.removeprefix("tfds:")
    lines.append(f"or prepare it with TFDS (needs TensorFlow, array_record format): "
                 f"`tfds build {tname} --data_dir={where}/tfds "
                 f"--file_format=array_record`")
  if not lines:
    return "no way to provide it offline"
  return "; or ".join(line.removeprefix("or ") for line in lines)


def load(name: str, split: str = "train", data_dir: str | None = None, *,
         tfds_data_dir: str | None = None, allow_download: bool = False,
         verify_checksums: bool = True,
         image_size: tuple[int, int] | None = None) -> Dataset:
  """Loads dataset `name`'s `split` from the first source that has it.

  Args:
    name: a key of `KNOWN_DATASETS`, "synthetic(opt=value,...)", "tfds:<name>"
      for any prepared TFDS dataset, or "folder:<path>" for an image folder.
    split: "train" or "test", optionally sliced like TFDS: "train[:1000]",
      "test[50%:]".
    data_dir: folder with local files; defaults to `$TRANSJAX_DATA_DIR`.
    tfds_data_dir: TFDS data_dir; defaults to `<data_dir>/tfds` when that exists,
      else TFDS's own default.
    allow_download: fetch missing MNIST-format files from their canonical address
      (checksum-verified) into `<data_dir>/<name>/`.
    verify_checksums: check local IDX files against their canonical sha256.
    image_size: (height, width) to resize TFDS or folder images to on reading
      (needed for datasets whose images vary in size).

  Returns:
    A `Dataset` of uint8 images (N, H, W, C) with its provenance.

  Raises:
    UnknownDatasetError: `name` is not known.
    DatasetNotFoundError: no source has it; the message says where we looked.
    idx.ChecksumError: a local file is not the canonical one.
    folder.FolderError: a "folder:" path is not an image folder or holds a bad image.
  """
  check_name(name)
  base = base_name(name)
  if base == "synthetic":
    config = synthetic.parse_name(name)
    split_name, start, stop = _parse_split(split)
    ds = synthetic.generate(config, split_name)
    if start or stop:
      sl = _slice(len(ds), start, stop)
      ds = ds.replace(images=ds.images[sl], labels=ds.labels[sl])
    return ds

  split_name, start, stop = _parse_split(split)
  data_dir = data_dir or default_data_dir()
  data_root = Path(data_dir).expanduser() if data_dir else None
  tried: list[str] = []
  found = None

  if base in ("mnist", "fashion_mnist", "usps", "cifar10"):
    if data_root is None:
      tried.append("local files: no data_dir given and TRANSJAX_DATA_DIR unset")
    else:
      try:
        found = _load_local(base, split_name, data_root,
                            verify_checksums=verify_checksums,
                            allow_download=allow_download)
      except _NotHere as e:
        tried.append(f"local files: {e}")

  tfds_name = base.removeprefix("tfds:")
  if found is None and (base in TFDS_NAMES or base.startswith("tfds:")):
    tfds_dir = tfds_data_dir
    if tfds_dir is None and data_root is not None and (data_root / "tfds").is_dir():
      tfds_dir = str(data_root / "tfds")
    try:
      found = _load_tfds(tfds_name, split, tfds_dir, image_size)
      start = stop = None  # TFDS applied the slice itself.
    except _NotHere as e:
      tried.append(str(e))

  if found is None and base == "digits":
    found = _load_digits(split_name)

  if base.startswith("folder:"):
    path = Path(base.removeprefix("folder:")).expanduser()
    if not path.is_absolute() and data_root is not None and (data_root / path).is_dir():
      path = data_root / path
    if not path.is_dir():
      where = f"under {data_root} or " if data_root is not None and not path.is_absolute() else ""
      raise DatasetNotFoundError(
          f"Dataset {name!r}: no folder {where}{path.resolve()} (a relative path is read "
          "under data_dir / TRANSJAX_DATA_DIR when it is there, else from the working "
          "directory).")
    found = folder.load_split(path, split_name, image_size)

  if found is None:
    raise DatasetNotFoundError(
        f"Dataset {name!r} split {split!r} not found. Tried: " + "; ".join(tried)
        + ". To provide it: " + _how_to_provide(base, split_name, data_root) + ".")

  images, labels, class_names, source = found
  if start or stop:
    sl = _slice(len(labels), start, stop)
    images, labels = images[sl], labels[sl]
  return Dataset(name=base.removeprefix("folder:") if base.startswith("folder:")
                 else tfds_name, images=images, labels=labels,
                 class_names=tuple(class_names), provenance=Provenance(source=source))
