"""Named transforms that build the paper's derived tasks from a `Dataset`.

Each transform returns a NEW dataset and records its name in the provenance, so a
result always says how its data was made: "per_class(60)", "upside_down",
"colour_labels(4)", "resize(28x28)". `apply_named(ds, "per_class:60", seed)` is the
string form that configs use.

Pixel conventions: uint8 images live in [0, 255]; float32 images produced by
`normalize` are whatever the normalisation made them. Geometric transforms keep the
dtype (uint8 results are rounded and clipped).
"""

from __future__ import annotations

import colorsys
import dataclasses
from typing import Sequence

import numpy as np

from transjax.data.dataset import Dataset

# Per-channel input normalisations on transjax's [0, 1] pixel scale (RGB), by the name
# `config.data.normalize` gives them. "imagenet": torchvision's ImageNet statistics, which
# its pretrained ResNets expect. "efficientnet": EfficientNet-Lite's (x - 127) / 128 on
# [0, 255], which its ImageNet weights expect (`transjax.weights.named`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET_MEAN = (127 / 255,) * 3
EFFICIENTNET_STD = (128 / 255,) * 3

# ---------------------------------------------------------------------------
# Orientation and subsets.


def upside_down(ds: Dataset) -> Dataset:
  """Flips every image vertically (rows reversed), keeping labels (paper §5.1)."""
  return ds.with_transform("upside_down", images=np.ascontiguousarray(ds.images[:, ::-1]))


def _take(ds: Dataset, index: np.ndarray, transform_name: str) -> Dataset:
  index = np.sort(np.asarray(index, np.int64))
  return ds.with_transform(transform_name, images=ds.images[index],
                           labels=ds.labels[index])


def _stratified_counts(class_counts: np.ndarray, n: int, rng: np.random.Generator):
  """Splits n over classes as evenly as possible, within each class's supply."""
  take = np.zeros_like(class_counts)
  remaining = n
  available = class_counts.copy()
  while remaining > 0:
    open_classes = np.flatnonzero(available > take)
    if open_classes.size == 0:
      break
    share = remaining // open_classes.size
    if share == 0:
      chosen = rng.choice(open_classes, remaining, replace=False)
      take[chosen] += 1
      break
    add = np.minimum(share, available[open_classes] - take[open_classes])
    take[open_classes] += add
    remaining -= int(add.sum())
  return take


def _stratified_index(labels: np.ndarray, num_classes: int, counts: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if counts[c]:
      chosen.append(rng.choice(members, int(counts[c]), replace=False))
  return np.concatenate(chosen) if chosen else np.zeros((0,), np.int64)


def subset_per_class(ds: Dataset, n_per_class: int, seed: int) -> Dataset:
  """`n_per_class` examples of every class, chosen with `seed` (paper: 60 per class).

  Raises:
    ValueError: some class has fewer than `n_per_class` examples (names the class
      and both counts).
  """
  counts = ds.class_counts()
  short = [(ds.class_names[c], int(counts[c])) for c in range(ds.num_classes)
           if counts[c] < n_per_class]
  if short:
    detail = ", ".join(f"class {name!r} has {k}" for name, k in short)
    raise ValueError(
        f"subset_per_class({n_per_class}) of {ds.name}: {detail}, fewer than the "
        f"{n_per_class} requested.")
  rng = np.random.default_rng(seed)
  take = np.full(ds.num_classes, n_per_class)
  index = _stratified_index(ds.labels, ds.num_classes, take, rng)
  return _take(ds, index, f"per_class({n_per_class}, seed={seed})")


def subset_total(ds: Dataset, n: int, seed: int) -> Dataset:
  """`n` examples, spread over classes as evenly as their sizes allow, seeded.

  Raises:
    ValueError: `n` exceeds the dataset's size (message has both numbers).
  """
  if n > len(ds) or n < 0:
    raise ValueError(
        f"subset_total({n}) of {ds.name}: asked for {n} examples but the dataset "
        f"has {len(ds)}.")
  rng = np.random.default_rng(seed)
  take = _stratified_counts(ds.class_counts(), n, rng)
  index = _stratified_index(ds.labels, ds.num_classes, take, rng)
  return _take(ds, index, f"total({n}, seed={seed})")


def split(ds: Dataset, fraction_or_n: float | int, seed: int) -> tuple[Dataset, Dataset]:
  """A stratified, seeded split into (first, rest).

  `fraction_or_n` is the size of the first part: a float in (0, 1) is a fraction of
  the dataset, an int is a count. Each class is split in the same proportion (up to
  rounding), so carving train/test from the CIFAR-10 test file keeps classes balanced.
  """
  if isinstance(fraction_or_n, (float, np.floating)):
    if not 0 < fraction_or_n < 1:
      raise ValueError(f"split fraction must be in (0, 1), got {fraction_or_n}.")
    n_first = int(round(len(ds) * fraction_or_n))
  else:
    n_first = int(fraction_or_n)
  if not 0 <= n_first <= len(ds):
    raise ValueError(
        f"split({fraction_or_n}) of {ds.name}: first part of {n_first} examples "
        f"but the dataset has {len(ds)}.")
  rng = np.random.default_rng(seed)
  counts = ds.class_counts()
  # Largest-remainder rounding of the per-class shares, ties broken by the seed.
  exact = counts * (n_first / max(len(ds), 1))
  take = np.floor(exact).astype(np.int64)
  short = n_first - int(take.sum())
  if short:
    order = np.lexsort((rng.random(len(counts)), -(exact - take)))
    take[order[:short]] += 1
  first = _stratified_index(ds.labels, ds.num_classes, take, rng)
  rest = np.setdiff1d(np.arange(len(ds)), first)
  tag = f"split({fraction_or_n}, seed={seed})"
  return _take(ds, first, tag + "[first]"), _take(ds, rest, tag + "[rest]")


def select_classes(ds: Dataset, classes: Sequence[int] | Sequence[str],
                   relabel: bool = True) -> Dataset:
  """Keeps only `classes` (indices or names); relabels them 0..k-1 in the given order."""
  index_of = {name: i for i, name in enumerate(ds.class_names)}
  ids = []
  for c in classes:
    if isinstance(c, str) and not c.lstrip("-").isdigit():
      if c not in index_of:
        raise ValueError(f"select_classes: {ds.name} has no class {c!r}; classes "
                         f"are {list(ds.class_names)}.")
      ids.append(index_of[c])
    else:
      if not 0 <= int(c) < ds.num_classes:
        raise ValueError(f"select_classes: class {c} not in [0, "
                         f"{ds.num_classes}) for {ds.name}.")
      ids.append(int(c))
  if len(set(ids)) != len(ids):
    raise ValueError(f"select_classes: repeated classes in {list(classes)}.")
  keep = np.flatnonzero(np.isin(ds.labels, ids))
  labels = ds.labels[keep]
  names = ds.class_names
  if relabel:
    mapping = np.full(ds.num_classes, -1, np.int32)
    mapping[ids] = np.arange(len(ids), dtype=np.int32)
    labels = mapping[labels]
    names = tuple(ds.class_names[i] for i in ids)
  return ds.with_transform(f"classes({','.join(str(i) for i in ids)})",
                           images=ds.images[keep], labels=labels, class_names=names)


# ---------------------------------------------------------------------------
# Relabelling by colour (paper §5.1, "Caltech-color").


def colour_of_upper_part_labels(ds: Dataset, num_classes: int = 4) -> Dataset:
  """Relabels each image by the colour of its upper half (paper §5.1).

  RGB: the mean colour of the top `H // 2` rows is converted to HSV and its hue is
  binned into `num_classes` equal bins, the first centred on red (hue 0). Grey
  images: the mean brightness of the upper half is binned at the dataset's own
  quantiles, so the classes are balanced. Deterministic; no seed.
  """
  if num_classes < 2:
    raise ValueError(f"colour_of_upper_part_labels: num_classes must be >= 2, got "
                     f"{num_classes}.")
  h = ds.image_shape[0]
  upper = ds.images[:, : max(h // 2, 1)].astype(np.float64)
  if ds.images.dtype == np.uint8:
    upper /= 255.0
  mean = upper.mean(axis=(1, 2))  # (N, C)
  if ds.image_shape[2] == 3:
    hue = np.array([colorsys.rgb_to_hsv(*m)[0] for m in np.clip(mean, 0, 1)])
    width = 1.0 / num_classes
    labels = (np.floor((hue + width / 2) / width).astype(np.int64)) % num_classes
    names = []
    for k in range(num_classes):
      a = (k * 360.0 / num_classes - 180.0 / num_classes) % 360
      b = (k * 360.0 / num_classes + 180.0 / num_classes) % 360
      names.append(f"upper hue {a:.0f}-{b:.0f}deg")
  else:
    brightness = mean.mean(axis=1)
    edges = np.quantile(brightness, np.linspace(0, 1, num_classes + 1)[1:-1])
    labels = np.searchsorted(edges, brightness, side="right")
    names = [f"upper brightness q{k}/{num_classes}" for k in range(num_classes)]
  return ds.with_transform(f"colour_labels({num_classes})",
                           labels=labels.astype(np.int32), class_names=tuple(names))


# ---------------------------------------------------------------------------
# Geometry and channels.


def _linear_weights(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) bilinear weights, half-pixel centres, antialiased when shrinking."""
  scale = n_out / n_in
  radius = max(1.0, 1.0 / scale)
  centres = (np.arange(n_out) + 0.5) / scale - 0.5
  dist = np.abs(np.arange(n_in)[None, :] - centres[:, None]) / radius
  w = np.clip(1.0 - dist, 0.0, None)
  return w / w.sum(axis=1, keepdims=True)


def resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize of (N, H, W, C) images; uint8 in gives uint8 out (rounded)."""
  n, h, w, c = images.shape
  if (h, w) == (height, width):
    return images
  wy = _linear_weights(h, height).astype(np.float32)
  wx = _linear_weights(w, width).astype(np.float32)
  out = np.empty((n, height, width, c), images.dtype)
  for start in range(0, n, 4096):  # bounded memory on big datasets
    chunk = images[start:start + 4096].astype(np.float32)
    res = np.einsum("yh,nhwc,xw->nyxc", wy, chunk, wx, optimize=True)
    if images.dtype == np.uint8:
      res = np.clip(np.round(res), 0, 255)
    out[start:start + 4096] = res
  return out


def resize(ds: Dataset, height: int, width: int) -> Dataset:
  """Bilinear resize to (height, width), antialiased when shrinking; dtype kept."""
  return ds.with_transform(f"resize({height}x{width})",
                           images=resize_images(ds.images, height, width))


def pad_to(ds: Dataset, height: int, width: int) -> Dataset:
  """Centred zero padding to (height, width), e.g. 28x28 -> 32x32 for LeNet."""
  _, h, w, _ = ds.images.shape
  if h > height or w > width:
    raise ValueError(f"pad_to({height}, {width}): images of {ds.name} are {h}x{w}, "
                     "larger than the target; use resize.")
  top, left = (height - h) // 2, (width - w) // 2
  pads = ((0, 0), (top, height - h - top), (left, width - w - left), (0, 0))
  return ds.with_transform(f"pad({height}x{width})", images=np.pad(ds.images, pads))


def to_rgb(ds: Dataset) -> Dataset:
  """Grey (C=1) to RGB by repeating the channel; RGB input is returned unchanged."""
  if ds.image_shape[2] == 3:
    return ds
  if ds.image_shape[2] != 1:
    raise ValueError(f"to_rgb: expected 1 or 3 channels, got {ds.image_shape[2]}.")
  return ds.with_transform("rgb", images=np.repeat(ds.images, 3, axis=3))


def to_grey(ds: Dataset) -> Dataset:
  """RGB to grey with ITU-R BT.601 luma weights; grey input is returned unchanged."""
  if ds.image_shape[2] == 1:
    return ds
  if ds.image_shape[2] != 3:
    raise ValueError(f"to_grey: expected 1 or 3 channels, got {ds.image_shape[2]}.")
  grey = ds.images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
  if ds.images.dtype == np.uint8:
    grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
  return ds.with_transform("grey", images=grey[..., None])


def to_model_input(ds: Dataset, height: int, width: int, channels: int) -> Dataset:
  """Makes any dataset fit a model's (height, width, channels) input.

  Rule: images already at the size are left alone; images smaller by at most 4 px
  on each side (e.g. 28x28 into LeNet's classic 32x32) are centred and zero-padded,
  as LeCun et al. did; any other size is bilinearly resized. Then grey is repeated to
  RGB, or RGB reduced to luma grey, to match `channels`.
  """
  h, w, _ = ds.image_shape
  if (h, w) != (height, width):
    if h <= height <= h + 8 and w <= width <= w + 8:
      ds = pad_to(ds, height, width)
    else:
      ds = resize(ds, height, width)
  if channels == 3:
    ds = to_rgb(ds)
  elif channels == 1:
    ds = to_grey(ds)
  else:
    raise ValueError(f"to_model_input: channels must be 1 or 3, got {channels}.")
  return ds


# ---------------------------------------------------------------------------
# Normalisation and augmentation.


def to_unit_float(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [0, 1]; float32 is returned as is."""
  if images.dtype == np.uint8:
    return images.astype(np.float32) * np.float32(1.0 / 255.0)
  return images.astype(np.float32, copy=False)


def channel_stats(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel (mean, std) of the images in [0, 1] scale, each shape (C,)."""
  c = ds.image_shape[2]
  total = np.zeros(c)
  total_sq = np.zeros(c)
  count = 0
  for start in range(0, len(ds), 8192):
    x = to_unit_float(ds.images[start:start + 8192]).astype(np.float64)
    total += x.sum(axis=(0, 1, 2))
    total_sq += (x ** 2).sum(axis=(0, 1, 2))
    count += x[..., 0].size
  mean = total / max(count, 1)
  std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean ** 2, 0.0))
  return mean.astype(np.float32), std.astype(np.float32)


def normalize(ds: Dataset, mean, std) -> Dataset:
  """float32 images: [0, 1] scale, then (x - mean) / std per channel."""
  mean = np.asarray(mean, np.float32).reshape(-1)
  std = np.asarray(std, np.float32).reshape(-1)
  images = (to_unit_float(ds.images) - mean) / std
  return ds.with_transform(
      f"normalize(mean={np.round(mean, 4).tolist()}, std={np.round(std, 4).tolist()})",
      images=images.astype(np.float32))


def random_crop_flip(images: np.ndarray, rng: np.random.Generator, pad: int = 4,
                     flip: bool = True) -> np.ndarray:
  """Batch augmentation: zero-pad by `pad`, random crop back, random horizontal flip.

  Args:
    images: (B, H, W, C) batch (any dtype).
    rng: the generator that draws the crop offsets and flips.
    pad: padding on each side before cropping.
    flip: whether to flip each image left-right with probability 1/2.
  """
  b, h, w, _ = images.shape
  out = images
  if pad:
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, b)
    dx = rng.integers(0, 2 * pad + 1, b)
    rows = dy[:, None] + np.arange(h)[None]
    cols = dx[:, None] + np.arange(w)[None]
    out = padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
  if flip:
    flips = rng.random(b) < 0.5
    out = np.where(flips[:, None, None, None], out[:, :, ::-1], out)
  return out


# ---------------------------------------------------------------------------
# The string form that configs use.

TRANSFORM_NAMES: dict[str, str] = {
    "upside_down": "vertical flip",
    "per_class": "per_class:N — N examples of every class (seeded)",
    "total": "total:N — N examples, stratified (seeded)",
    "split_train": "split_train:F — the first part of a stratified split (F fraction "
                   "or count; seeded)",
    "split_test": "split_test:F — the rest of the same split",
    "resize": "resize:H,W — bilinear",
    "pad": "pad:H,W — centred zero padding",
    "rgb": "grey -> RGB",
    "grey": "RGB -> grey",
    "model_input": "model_input:H,W,C — see to_model_input",
    "colour_labels": "colour_labels:K — relabel by colour of the upper half",
    "classes": "classes:0,1,2 — keep and relabel these classes (indices or names)",
    "stand_in": "stand_in:NAME — record that this dataset stands in for NAME",
}


def _number(text: str) -> float | int:
  return float(text) if any(ch in text for ch in ".eE") else int(text)


def check_named(spec: str) -> None:
  """Raises ValueError unless `spec` is a well-formed named transform."""
  name, _, arg = spec.partition(":")
  name = name.strip()
  if name not in TRANSFORM_NAMES:
    raise ValueError(f"Unknown transform {spec!r}. Known: "
                     + "; ".join(TRANSFORM_NAMES.values()) + ".")
  needs_arg = name not in ("upside_down", "rgb", "grey")
  if needs_arg and not arg.strip():
    raise ValueError(f"Transform {spec!r} needs an argument: {TRANSFORM_NAMES[name]}.")
  if not needs_arg and arg.strip():
    raise ValueError(f"Transform {name!r} takes no argument, got {spec!r}.")
  try:
    if name in ("per_class", "total", "colour_labels"):
      int(arg)
    elif name in ("split_train", "split_test"):
      _number(arg)
    elif name in ("resize", "pad"):
      h, w = (int(v) for v in arg.split(","))
    elif name == "model_input":
      h, w, c = (int(v) for v in arg.split(","))
  except ValueError as e:
    raise ValueError(f"Bad argument in transform {spec!r} ({e}): "
                     f"{TRANSFORM_NAMES[name]}.") from None


def apply_named(ds: Dataset, spec: str, seed: int) -> Dataset:
  """Applies one transform given as a string, e.g. "per_class:60" or "resize:28,28".

  Known forms are listed in `TRANSFORM_NAMES`. `seed` drives the seeded ones.
  """
  check_named(spec)
  name, _, arg = spec.partition(":")
  name, arg = name.strip(), arg.strip()
  if name == "upside_down":
    return upside_down(ds)
  if name == "per_class":
    return subset_per_class(ds, int(arg), seed)
  if name == "total":
    return subset_total(ds, int(arg), seed)
  if name in ("split_train", "split_test"):
    first, rest = split(ds, _number(arg), seed)
    return first if name == "split_train" else rest
  if name == "resize":
    h, w = (int(v) for v in arg.split(","))
    return resize(ds, h, w)
  if name == "pad":
    h, w = (int(v) for v in arg.split(","))
    return pad_to(ds, h, w)
  if name == "rgb":
    return to_rgb(ds)
  if name == "grey":
    return to_grey(ds)
  if name == "model_input":
    h, w, c = (int(v) for v in arg.split(","))
    return to_model_input(ds, h, w, c)
  if name == "colour_labels":
    return colour_of_upper_part_labels(ds, int(arg))
  if name == "classes":
    items = [v.strip() for v in arg.split(",") if v.strip()]
    return select_classes(ds, [int(v) if v.lstrip("-").isdigit() else v
                               for v in items])
  if name == "stand_in":
    return ds.replace(provenance=dataclasses.replace(ds.provenance, stand_in_for=arg))
  raise AssertionError(name)
