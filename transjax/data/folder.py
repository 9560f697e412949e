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
"""

from __future__ import annotations

import concurrent.futures
import os
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
