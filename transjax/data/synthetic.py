"""A procedurally generated image classification task that needs no files.

Ten classes of rendered shapes and oriented gratings (disk, ring, square, square
outline, triangle, plus, cross, horizontal / vertical / diagonal stripes), each drawn at
a random position, scale and contrast (and colour, for RGB) over a random background,
with additive Gaussian noise. The same seed gives the same images, bit for bit. A small
CNN learns it far above chance in a few hundred steps, which is what tests and
`quick` configs need.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from transjax.data.dataset import Dataset, Provenance

CLASS_NAMES = ("disk", "ring", "square", "square_outline", "triangle", "plus", "cross",
               "horizontal_stripes", "vertical_stripes", "diagonal_stripes")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Options of the synthetic task.

  Attributes:
    height, width, channels: image shape (channels 1 or 3).
    num_classes: 2..10; the first `num_classes` of `CLASS_NAMES`.
    num_train, num_test: examples per split (classes balanced up to one example).
    seed: base seed; train and test draw from different streams of it.
    noise: standard deviation of the additive Gaussian noise, in [0, 1] units.
  """

  height: int = 28
  width: int = 28
  channels: int = 1
  num_classes: int = 10
  num_train: int = 2000
  num_test: int = 500
  seed: int = 0
  noise: float = 0.08

  def __post_init__(self):
    if not 2 <= self.num_classes <= len(CLASS_NAMES):
      raise ValueError(
          f"synthetic: num_classes must be in [2, {len(CLASS_NAMES)}], got "
          f"{self.num_classes}.")
    if self.channels not in (1, 3):
      raise ValueError(f"synthetic: channels must be 1 or 3, got {self.channels}.")
    if min(self.height, self.width) < 8:
      raise ValueError("synthetic: images must be at least 8x8.")

  def describe(self) -> str:
    defaults = SyntheticConfig()
    changed = [f"{f.name}={getattr(self, f.name)}"
               for f in dataclasses.fields(self)
               if getattr(self, f.name) != getattr(defaults, f.name)
               or f.name == "seed"]
    return f"synthetic:shapes({','.join(changed)})"


_OPTION_TYPES = {f.name: f.type for f in dataclasses.fields(SyntheticConfig)}


def parse_name(name: str) -> SyntheticConfig:
  """Parses "synthetic" or "synthetic(num_classes=5,channels=3,seed=1,size=32)".

  `size=S` sets both height and width.
  """
  m = re.fullmatch(r"synthetic(?:\((.*)\))?", name.strip())
  if m is None:
    raise ValueError(f"Not a synthetic dataset name: {name!r}.")
  options = {}
  for item in filter(None, (s.strip() for s in (m.group(1) or "").split(","))):
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep:
      raise ValueError(f"synthetic option {item!r} is not key=value.")
    if key == "size":
      options["height"] = options["width"] = int(value)
    elif key == "noise":
      options["noise"] = float(value)
    elif key in _OPTION_TYPES:
      options[key] = int(value)
    else:
      raise ValueError(
          f"Unknown synthetic option {key!r}; known: size, "
          f"{', '.join(_OPTION_TYPES)}.")
  return SyntheticConfig(**options)


def _masks(cls: np.ndarray, u: np.ndarray, v: np.ndarray, phase: np.ndarray) -> np.ndarray:
  """Foreground masks (N, H, W) of classes `cls` at shape coordinates (u, v)."""
  r = np.sqrt(u ** 2 + v ** 2)
  box = np.maximum(np.abs(u), np.abs(v))
  freq = 2.5 * np.pi
  shapes = [
      r < 1.0,
      (r < 1.0) & (r > 0.55),
      box < 0.85,
      (box < 0.9) & (box > 0.55),
      (v < 0.8) & (v > -0.9) & (np.abs(u) < (0.8 - v) * 0.6),
      ((np.abs(u) < 0.28) | (np.abs(v) < 0.28)) & (box < 1.0),
      ((np.abs(u - v) < 0.4) | (np.abs(u + v) < 0.4)) & (box < 0.9),
      (np.sin(freq * v + phase) > 0) & (r < 1.1),
      (np.sin(freq * u + phase) > 0) & (r < 1.1),
      (np.sin(freq * (u + v) / np.sqrt(2) + phase) > 0) & (r < 1.1),
  ]
  out = np.zeros(u.shape, bool)
  for c, mask in enumerate(shapes):
    sel = np.asarray(cls).reshape(-1) == c
    out[sel] = mask[sel]
  return out


def generate(config: SyntheticConfig, split: str = "train") -> Dataset:
  """Generates the `split` ("train" or "test") of the synthetic task."""
  if split not in ("train", "test"):
    raise ValueError(f"synthetic has splits 'train' and 'test', not {split!r}.")
  n = config.num_train if split == "train" else config.num_test
  rng = np.random.default_rng((config.seed, 0 if split == "train" else 1))
  k, h, w = config.num_classes, config.height, config.width
  labels = rng.permutation(np.arange(n) % k).astype(np.int32)
  size = min(h, w)
  scale = rng.uniform(0.22, 0.36, n) * size
  cy = rng.uniform(0.4, 0.6, n) * h
  cx = rng.uniform(0.4, 0.6, n) * w
  phase = rng.uniform(0, 2 * np.pi, n)
  yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
  v = (yy[None] - cy[:, None, None]) / scale[:, None, None]
  u = (xx[None] - cx[:, None, None]) / scale[:, None, None]
  mask = _masks(labels[:, None, None], u, v, phase[:, None, None])[..., None]
  c = config.channels
  if c == 1:
    background = rng.uniform(0.0, 0.3, (n, 1))
    foreground = rng.uniform(0.6, 1.0, (n, 1))
  else:
    background = rng.uniform(0.0, 0.4, (n, c))
    foreground = np.clip(background + rng.choice([-1, 1], (n, c))
                         * rng.uniform(0.3, 0.6, (n, c)), 0, 1)
  images = np.where(mask, foreground[:, None, None, :], background[:, None, None, :])
  images = images + config.noise * rng.standard_normal(images.shape)
  images = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
  return Dataset(
      name="synthetic",
      images=images,
      labels=labels,
      class_names=CLASS_NAMES[:k],
      provenance=Provenance(source=config.describe()),
  )
