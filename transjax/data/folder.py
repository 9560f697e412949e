"""Image folders: the layout torchvision's ImageFolder reads, and the one Office-31,
CUB-200, MIT-Indoor and most of one's own data come in.

    <root>/<split>/<class>/<image>     split "train", "test", ... (any folder name)
    <root>/<class>/<image>             no split folders: all images are split "all"; carve
                                       train/test with the transforms split_train:0.8 /
                                       split_test:0.8 (same seed: complementary)

Classes are the sorted names of the class folders, taken over every split folder of the
root, so a class missing from one split keeps the same label in the others. Images are
decoded with Pillow in threads; grey images stay one channel unless the split mixes grey
and colour, then all are RGB. Images of different sizes need `image_size` (H, W): each is
resized as it is read, so a folder of large photos never sits in memory at full size.

`target(entry)` turns a folder into the (train, test) dataset specs of an experiment target
named after the folder: a split folder trains on train/ and tests on test/; a flat folder is
split per class by a fixed seed, and its test part is held out (never trained on).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import time
from pathlib import Path

import numpy as np
from absl import logging

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm",
                              ".tif", ".tiff", ".webp"})
ALL = "all"
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F", "P;L"})


class FolderError(ValueError):
  """The folder is not an image-folder dataset, or a file in it is not an image."""


def _images_in(directory: Path) -> list[Path]:
  return sorted(p for p in directory.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_files(directory: Path) -> dict[str, list[Path]]:
  """{class name: its images} for the subfolders that hold images directly."""
  out = {}
  for d in sorted(directory.iterdir()):
    if d.is_dir() and (files := _images_in(d)):
      out[d.name] = files
  return out


def layout(root: Path, split: str) -> tuple[Path, dict[str, list[Path]], tuple[str, ...]]:
  """(folder of `split`, {class: images} of that split, class names over all splits).

  Every folder is listed once.

  Raises:
    FolderError: `root` has neither a `split` folder nor (for split "all") class folders.
  """
  if not root.is_dir():
    raise FolderError(f"{root} is not a folder.")
  direct = _class_files(root)  # subfolders holding images: the classes of split "all"
  if split == ALL:
    if not direct:
      raise FolderError(
          f"{root} has no class folders with images (split {ALL!r} reads "
          f"<root>/<class>/<image>; extensions {sorted(IMAGE_EXTENSIONS)}).")
    return root, direct, tuple(direct)
  splits = {d.name: _class_files(d) for d in sorted(root.iterdir())
            if d.is_dir() and d.name not in direct}
  splits = {name: files for name, files in splits.items() if files}
  if split not in splits:
    hint = (f"its subfolders hold images directly, so they are classes of the one "
            f"split {ALL!r}: use split {ALL!r} and carve train/test with the "
            "transforms 'split_train:0.8' / 'split_test:0.8'"
            if direct else f"split folders found: {list(splits) or 'none'}")
    raise FolderError(f"{root} has no {split}/ folder of class folders; {hint}.")
  classes = sorted({c for files in splits.values() for c in files})
  return root / split, splits[split], tuple(classes)


def _decode(path: Path, image_size: tuple[int, int] | None) -> np.ndarray:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from transjax.data.transforms import resize_images  # pylint: disable=import-outside-toplevel
  try:
    with Image.open(path) as im:
      im = im.convert("L" if im.mode in _GREY_MODES else "RGB")
      array = np.asarray(im, np.uint8)
  except (OSError, ValueError) as e:
    raise FolderError(f"{path} is not a readable image: {e}") from None
  except Image.DecompressionBombError as e:  # not an OSError: it escaped as a traceback
    raise FolderError(f"{path} is refused as a possible decompression bomb: {e} If the "
                      "image is genuine, shrink it (or raise PIL.Image.MAX_IMAGE_PIXELS)."
                      ) from None
  array = array[..., None] if array.ndim == 2 else array
  original = array.shape[:2]
  if image_size is not None and original != tuple(image_size):
    array = resize_images(array[None], *image_size)[0]
  return array, original


def load_split(root: str | os.PathLike, split: str, image_size: tuple[int, int] | None = None,
               *, num_threads: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
  """(images uint8 (N, H, W, C), labels int32, class names, source) of one split.

  Raises:
    FolderError: not an image folder, an unreadable image, or images of different sizes
      without `image_size`.
  """
  directory, class_files, classes = layout(Path(root), split)
  label_of = {c: i for i, c in enumerate(classes)}
  files = [path for paths in class_files.values() for path in paths]
  labels = [label_of[name] for name, paths in class_files.items() for _ in paths]
  start = last = time.perf_counter()
  images = []
  with concurrent.futures.ThreadPoolExecutor(num_threads or os.cpu_count()) as pool:
    originals = set()
    for i, (array, original) in enumerate(pool.map(lambda p: _decode(p, image_size), files)):
      images.append(array)
      originals.add(original)
      if time.perf_counter() - last > 10:
        last = time.perf_counter()
        logging.info("%s: read %d/%d images (%.0f/s)", directory, i + 1, len(files),
                     (i + 1) / (last - start))
  resized = sorted(o for o in originals if image_size is not None and o != tuple(image_size))
  if resized:
    logging.warning("notice: %s: %d image size(s) (e.g. %s) resized to %dx%d as they are read",
                    directory, len(resized), ", ".join(f"{h}x{w}" for h, w in resized[:3]),
                    *image_size)
  if len({a.shape[-1] for a in images}) > 1:
    images = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in images]
  shapes = {a.shape for a in images}
  if len(shapes) > 1:
    raise FolderError(
        f"{directory}: images have {len(shapes)} different sizes (e.g. "
        f"{sorted(shapes)[:3]}); give image_size=(height, width) to resize them on "
        "reading (training configs do: the model's input size).")
  return (np.stack(images), np.asarray(labels, np.int32), classes,
          f"folder:{directory} ({len(files)} images, {len(classes)} classes)")


# ---------------------------------------------------------------------------
# An image folder as an experiment target.

TRAIN, TEST = "train", "test"
FLAT_TRAIN_FRACTION = 0.8   # a flat folder's share trained on; the rest is its test set
FLAT_SPLIT_SEED = 0         # fixed, so every run (any training seed) holds out the same images


@dataclasses.dataclass(frozen=True)
class FolderTarget:
  """An image folder as an experiment target.

  Attributes:
    name: the target's name in every output (the folder's name unless given).
    path: the folder, absolute.
    kind: "split" (<path>/train/, <path>/test/) or "flat" (<path>/<class>/).
    train: the dataset spec trained on.
    test: the dataset spec tested on, disjoint from `train`.
    note: one line for outputs: where train and test come from.
  """
  name: str
  path: str
  kind: str
  train: dict
  test: dict
  note: str


def layout_kind(root: Path) -> str:
  """"split" when `root` has train/ and test/ folders of class folders, "flat" when its
  subfolders hold images directly.

  Raises:
    FolderError: neither, or a split folder without test/ (a target needs held-out images).
  """
  if not root.is_dir():
    raise FolderError(f"{root} is not a folder.")
  direct = _class_files(root)
  splits = [d.name for d in sorted(root.iterdir())
            if d.is_dir() and d.name not in direct and _class_files(d)]
  if TRAIN in splits and TEST in splits:
    return "split"
  if direct and not splits:
    return "flat"
  if splits:
    raise FolderError(
        f"{root} has split folders {splits} but a target needs both {TRAIN}/ and {TEST}/ "
        f"(each <class>/<image>); rename them, or put the class folders directly in {root} "
        f"to have {int(100 * (1 - FLAT_TRAIN_FRACTION))}% held out as the test set.")
  raise FolderError(
      f"{root} has no class folders with images: a target folder is <root>/<class>/<image> "
      f"or <root>/{TRAIN}/<class>/<image> and <root>/{TEST}/<class>/<image> (extensions "
      f"{', '.join(sorted(IMAGE_EXTENSIONS))}).")


def target_name(path: str | os.PathLike) -> str:
  """The folder's name as a target name: letters, digits and _ (others become _)."""
  name = re.sub(r"\W+", "_", Path(path).expanduser().resolve().name).strip("_")
  return name or "folder"


def target(entry: str, data_dir: str | None = None) -> FolderTarget:
  """The target an image folder makes: `entry` is "<path>" or "<name>=<path>".

  A relative path is read under `data_dir` when it is there, else from the working
  directory. A split folder (train/, test/) trains on train/ and is tested on test/. A flat
  folder (<class>/<image>) is split per class: FLAT_TRAIN_FRACTION of each class is trained
  on and the rest is the test set, by the fixed seed FLAT_SPLIT_SEED, so the held-out images
  are the same for every run and never trained on.

  Raises:
    FolderError: not an image folder (the message says which layouts are read).
  """
  name, sep, raw = entry.partition("=")
  if not sep or not re.fullmatch(r"\w+", name.strip()) or Path(entry).expanduser().exists():
    name, raw = "", entry
  raw = raw.strip()
  if not raw:
    raise FolderError(f"Image-folder target {entry!r} names no folder; write <path> or "
                      "<name>=<path>.")
  path = Path(raw).expanduser()
  if not path.is_absolute() and data_dir and (Path(data_dir).expanduser() / path).is_dir():
    path = Path(data_dir).expanduser() / path
  path = path.resolve()
  if not path.is_dir():
    raise FolderError(f"Image-folder target {entry!r}: no folder {path} (a relative path is "
                      f"read under the data folder {data_dir or '(none given)'}, else the "
                      "working directory).")
  kind = layout_kind(path)
  name = name.strip() or target_name(path)
  spec_name = f"folder:{path}"
  if kind == "split":
    return FolderTarget(
        name, str(path), kind, {"name": spec_name, "split": TRAIN},
        {"name": spec_name, "split": TEST},
        f"{name}: image folder {path}, trained on {TRAIN}/ and tested on {TEST}/")
  f = FLAT_TRAIN_FRACTION
  held_out = int(round(100 * (1 - f)))
  return FolderTarget(
      name, str(path), kind,
      {"name": spec_name, "split": ALL, "transforms": (f"split_train:{f}",),
       "seed": FLAT_SPLIT_SEED},
      {"name": spec_name, "split": ALL, "transforms": (f"split_test:{f}",),
       "seed": FLAT_SPLIT_SEED},
      f"{name}: flat image folder {path} (no train/ test/), split per class with seed "
      f"{FLAT_SPLIT_SEED}: {100 - held_out}% trained on, {held_out}% held out as the test set "
      "(the same images for every run, never trained on)")
