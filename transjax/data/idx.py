"""MNIST-format IDX files: reading, sha256 verification, optional download.

The canonical sha256 of the eight original MNIST and Fashion-MNIST files are hard-coded
below (they equal TFDS's `url_checksums/mnist.txt` and `fashion_mnist.txt`). Verification
is lazy and cached per (path, size, mtime) in-process, so loading the same files again
costs no hashing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

# name -> {split -> (images file, labels file)}
IDX_FILES: dict[str, dict[str, tuple[str, str]]] = {
    name: {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    for name in ("mnist", "fashion_mnist")
}

CANONICAL_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# Canonical download addresses (the ones TFDS uses).
CANONICAL_URLS: dict[str, str] = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
               0x0D: ">f4", 0x0E: ">f8"}

# (resolved path, size, mtime_ns) -> sha256 hex digest, filled lazily.
_VERIFIED: dict[tuple[str, int, int], str] = {}


class ChecksumError(ValueError):
  """A file's sha256 differs from the canonical one."""


def sha256_of(path: str | os.PathLike) -> str:
  """The sha256 hex digest of a file, cached per (path, size, mtime) in-process."""
  p = Path(path).resolve()
  st = p.stat()
  key = (str(p), st.st_size, st.st_mtime_ns)
  digest = _VERIFIED.get(key)
  if digest is None:
    h = hashlib.sha256()
    with open(p, "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    digest = h.hexdigest()
    _VERIFIED[key] = digest
  return digest


def verify_checksum(path: str | os.PathLike, expected_sha256: str) -> None:
  """Raises `ChecksumError` when the file's sha256 is not `expected_sha256`."""
  actual = sha256_of(path)
  if actual != expected_sha256:
    raise ChecksumError(
        f"Checksum mismatch for {path}: sha256 is {actual}, expected "
        f"{expected_sha256} (the canonical file). The file is corrupt or not the "
        "original; replace it with the original download, or load it anyway with "
        "--config.data.verify_checksums=False (verify_checksums=False in a dataset "
        "spec or in data.load).")


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an IDX file (gzip-compressed when the name ends in .gz) into an array."""
  path = Path(path)
  opener = gzip.open if path.suffix == ".gz" else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise ValueError(
        f"{path} is truncated or corrupt ({type(e).__name__}: {e or 'unexpected end'}); "
        "replace it with the original download (with checksums on, the default, "
        "a damaged file is caught by its sha256).") from None
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r}).")
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  ndim = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  offset = 4 + 4 * ndim
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(data) - offset != expected:
    raise ValueError(
        f"{path}: IDX header says shape {shape} ({expected} bytes) but the body "
        f"has {len(data) - offset} bytes.")
  return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).astype(
      dtype.newbyteorder("="))


def idx_paths(directory: str | os.PathLike, name: str, split: str) -> tuple[Path, Path]:
  """Expected (images, labels) paths of `name`'s `split` under `directory`."""
  images_file, labels_file = IDX_FILES[name][split]
  directory = Path(directory)
  return directory / images_file, directory / labels_file


def load_idx_split(directory: str | os.PathLike, name: str, split: str, *,
                   verify_checksums: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Loads (images (N,28,28,1) uint8, labels (N,) int32) of an MNIST-format split."""
  images_path, labels_path = idx_paths(directory, name, split)
  if verify_checksums:
    for p in (images_path, labels_path):
      verify_checksum(p, CANONICAL_SHA256[name][p.name])
  images = read_idx(images_path)
  labels = read_idx(labels_path)
  if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
    raise ValueError(
        f"{directory}: {name} {split} files have shapes {images.shape} and "
        f"{labels.shape}; expected (N, 28, 28) images and (N,) labels.")
  return images[..., None].astype(np.uint8), labels.astype(np.int32)


def fetch_idx_files(directory: str | os.PathLike, name: str, *,
                    timeout: float = 30.0) -> list[Path]:
  """Downloads the missing MNIST-format files of `name` into `directory`.

  Each file is fetched from its canonical address, checked against its canonical
  sha256, and only then moved into place. Returns the paths it wrote. Raises
  `OSError` (urllib's) when the network is unreachable, `ChecksumError` on a bad
  download.
  """
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  written = []
  for filename, sha in CANONICAL_SHA256[name].items():
    target = directory / filename
    if target.exists():
      continue
    url = CANONICAL_URLS[name] + filename
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
    try:
      with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
              url, timeout=timeout) as response:
        shutil.copyfileobj(response, out)
      verify_checksum(tmp, sha)
      os.replace(tmp, target)
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
    written.append(target)
  return written
