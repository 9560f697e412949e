"""Building a dataset from its config spec.

A spec is a plain dict or an `ml_collections.ConfigDict`:

    {"name": "usps", "split": "train",
     "transforms": ("per_class:60", "stand_in:SVHN"), "data_dir": None}

`validate(spec)` checks keys, the dataset name and every transform string before
anything is loaded, so a typo in a config fails in a second, not after a download.
`build(spec, seed=...)` loads the split and applies the transforms in order; every
seeded transform uses the same seed, so "split_train:0.8" and "split_test:0.8" with the
same seed are complementary.
"""

from __future__ import annotations

from typing import Any, Mapping

from transjax.data import sources
from transjax.data import transforms as transforms_lib
from transjax.data.dataset import Dataset

SPEC_KEYS: dict[str, str] = {
    "name": "dataset name (see sources.KNOWN_DATASETS), 'tfds:<name>' or "
            "'folder:<path>'; required",
    "split": "'train' (default), 'test', or a TFDS-style slice 'train[:1000]'",
    "transforms": "sequence of named transforms, e.g. ('per_class:60', 'resize:32,32')",
    "data_dir": "local data folder; overrides build(data_dir=...) when set",
    "tfds_data_dir": "TFDS data_dir",
    "allow_download": "fetch missing MNIST-format files (default False)",
    "verify_checksums": "verify local IDX files (default True)",
    "image_size": "(H, W) to resize variable-size TFDS or folder images to on reading",
    "seed": "seed for the seeded transforms; overrides build(seed=...) when set",
}


def _as_dict(spec: Any) -> dict[str, Any]:
  if hasattr(spec, "to_dict"):
    spec = spec.to_dict()
  if isinstance(spec, str):
    return {"name": spec}
  if not isinstance(spec, Mapping):
    raise TypeError(f"A dataset spec is a dict or ConfigDict, got "
                    f"{type(spec).__name__}: {spec!r}.")
  return dict(spec)


def validate(spec: Any) -> None:
  """Raises one clear error for unknown keys, dataset names or transforms."""
  spec = _as_dict(spec)
  unknown = sorted(set(spec) - set(SPEC_KEYS))
  if unknown:
    raise ValueError(f"Unknown dataset spec keys {unknown}. Known keys: "
                     + "; ".join(f"{k}: {v}" for k, v in SPEC_KEYS.items()) + ".")
  if "name" not in spec or not spec["name"]:
    raise ValueError(f"Dataset spec {spec!r} has no 'name'.")
  sources.check_name(spec["name"])
  transforms = spec.get("transforms") or ()
  if isinstance(transforms, str):
    raise ValueError(f"spec 'transforms' must be a sequence of strings, got the "
                     f"string {transforms!r}; write ({transforms!r},).")
  for t in transforms:
    if not isinstance(t, str):
      raise ValueError(f"Transform {t!r} in spec is not a string.")
    transforms_lib.check_named(t)


def build(spec: Any, *, data_dir: str | None = None, seed: int = 0) -> Dataset:
  """Loads `spec`'s dataset and applies its transforms in order.

  Args:
    spec: dict / ConfigDict with keys in `SPEC_KEYS` (or just a dataset name).
    data_dir: local data folder used when the spec's own `data_dir` is unset; else
      `sources.find_data_dir()` ($TRANSJAX_DATA_DIR, then ../shared/data beside the
      repository), the fallback every binary shares.
    seed: seed of the seeded transforms, unless the spec sets `seed`.
  """
  validate(spec)
  spec = _as_dict(spec)
  image_size = spec.get("image_size")
  ds = sources.load(
      spec["name"], spec.get("split") or "train",
      spec.get("data_dir") or data_dir or sources.find_data_dir(),
      tfds_data_dir=spec.get("tfds_data_dir"),
      allow_download=bool(spec.get("allow_download", False)),
      verify_checksums=bool(spec.get("verify_checksums", True)),
      image_size=tuple(image_size) if image_size else None)
  seed = spec["seed"] if spec.get("seed") is not None else seed
  for t in spec.get("transforms") or ():
    ds = transforms_lib.apply_named(ds, t, seed)
  return ds
