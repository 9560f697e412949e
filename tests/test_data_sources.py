"""Loaders against the real files in shared/data: checksums, label counts, TFDS == IDX."""

import gzip
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from transjax import data
from transjax.data import idx


@pytest.fixture(scope="module")
def data_dir(real_data_dir) -> Path:
  return Path(real_data_dir)


def test_sha256sums_match_hard_coded_canonical(data_dir):
  listed = {}
  for line in (data_dir / "SHA256SUMS").read_text().splitlines():
    digest, path = line.split()
    listed[path.removeprefix("./")] = digest
  for name, files in idx.CANONICAL_SHA256.items():
    for filename, digest in files.items():
      assert listed[f"{name}/{filename}"] == digest
      assert idx.sha256_of(data_dir / name / filename) == digest


def test_checksum_verification_is_cached(data_dir):
  path = data_dir / "mnist" / "train-images-idx3-ubyte.gz"
  idx.sha256_of(path)
  start = time.perf_counter()
  for _ in range(100):
    idx.verify_checksum(path, idx.CANONICAL_SHA256["mnist"][path.name])
  assert time.perf_counter() - start < 0.5


def test_mnist_idx_train_counts(data_dir):
  ds = data.load("mnist", "train", str(data_dir))
  assert ds.images.shape == (60000, 28, 28, 1) and ds.images.dtype == np.uint8
  assert ds.labels.dtype == np.int32
  counts = ds.class_counts()
  assert counts[1] == 6742
  np.testing.assert_array_equal(
      counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
  assert ds.provenance.source == f"idx:{data_dir / 'mnist'}"
  assert ds.class_names == tuple("0123456789")


def test_fashion_mnist_test_counts(data_dir):
  ds = data.load("fashion_mnist", "test", str(data_dir))
  assert len(ds) == 10000
  np.testing.assert_array_equal(ds.class_counts(), [1000] * 10)
  assert ds.class_names[0] == "T-shirt/top"


def test_usps_h5(data_dir):
  train = data.load("usps", "train", str(data_dir))
  test = data.load("usps", "test", str(data_dir))
  assert (len(train), len(test)) == (7291, 2007)
  assert train.images.shape[1:] == (16, 16, 1) and train.images.dtype == np.uint8
  assert train.images.max() == 255 and train.num_classes == 10
  assert train.provenance.source.startswith("h5:")


def test_cifar10_test_npz_and_train_error(data_dir):
  ds = data.load("cifar10", "test", str(data_dir))
  assert ds.images.shape == (10000, 32, 32, 3)
  np.testing.assert_array_equal(ds.class_counts(), [1000] * 10)
  assert ds.class_names[0] == "airplane" and ds.class_names[-1] == "truck"
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.load("cifar10", "train", str(data_dir),
              tfds_data_dir=str(data_dir / "no_tfds_here"))
  assert "cifar10_jpeg_test.npz" in str(e.value) and "split" in str(e.value)


def test_split_slicing_on_local_files(data_dir):
  full = data.load("mnist", "test", str(data_dir))
  part = data.load("mnist", "test[100:300]", str(data_dir))
  np.testing.assert_array_equal(part.images, full.images[100:300])
  assert len(data.load("mnist", "test[:10%]", str(data_dir))) == 1000


@pytest.mark.parametrize("name,split", [("mnist", "test"), ("fashion_mnist", "train")])
def test_tfds_equals_idx(data_dir, tmp_path, name, split):
  # TFDS stores the examples in its own (shuffled) order: match them by pixels.
  from_tfds = data.load(name, f"{split}[:300]", str(tmp_path),
                        tfds_data_dir=str(data_dir / "tfds"))
  assert from_tfds.provenance.source == f"tfds:{name}:3.0.1"
  assert from_tfds.images.shape == (300, 28, 28, 1) and from_tfds.num_classes == 10
  from_idx = data.load(name, split, str(data_dir))
  labels_of = {}
  for image, label in zip(from_idx.images, from_idx.labels):
    labels_of.setdefault(image.tobytes(), set()).add(int(label))
  for image, label in zip(from_tfds.images, from_tfds.labels):
    assert int(label) in labels_of[image.tobytes()]


def test_tfds_found_under_data_dir_tfds(data_dir, tmp_path):
  # No IDX files in tmp_path, but <data_dir>/tfds is the fallback TFDS folder.
  (tmp_path / "tfds").symlink_to(data_dir / "tfds")
  ds = data.load("mnist", "test[:20]", str(tmp_path))
  assert ds.provenance.source.startswith("tfds:mnist")


def _copy_mnist_test(data_dir: Path, target: Path) -> Path:
  folder = target / "mnist"
  folder.mkdir(parents=True)
  for filename in idx.IDX_FILES["mnist"]["test"]:
    shutil.copy(data_dir / "mnist" / filename, folder / filename)
  return folder


def test_checksum_mismatch(data_dir, tmp_path):
  folder = _copy_mnist_test(data_dir, tmp_path)
  labels_path = folder / "t10k-labels-idx1-ubyte.gz"
  raw = bytearray(gzip.decompress(labels_path.read_bytes()))
  raw[8] = (raw[8] + 1) % 10  # first label changed; still a valid IDX file
  labels_path.chmod(0o644)
  labels_path.write_bytes(gzip.compress(bytes(raw)))
  with pytest.raises(idx.ChecksumError) as e:
    data.load("mnist", "test", str(tmp_path))
  assert str(labels_path.resolve()) in str(e.value) or str(labels_path) in str(e.value)
  assert idx.CANONICAL_SHA256["mnist"]["t10k-labels-idx1-ubyte.gz"] in str(e.value)
  unchecked = data.load("mnist", "test", str(tmp_path), verify_checksums=False)
  assert unchecked.labels[0] == raw[8]


def test_data_dir_without_files(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.load("mnist", "train", str(tmp_path), tfds_data_dir=str(tmp_path / "tfds"))
  message = str(e.value)
  assert "train-images-idx3-ubyte.gz" in message
  assert "train-labels-idx1-ubyte.gz" in message
  assert str(tmp_path / "mnist") in message
  assert "tfds build mnist" in message
  assert isinstance(e.value, FileNotFoundError)


def test_usps_missing_names_file(tmp_path):
  with pytest.raises(data.DatasetNotFoundError, match="usps.h5"):
    data.load("usps", "train", str(tmp_path))


def test_download_offline_says_what_to_place(tmp_path, monkeypatch):
  def unreachable(*args, **kwargs):
    raise urllib.error.URLError("network unreachable")
  monkeypatch.setattr(urllib.request, "urlopen", unreachable)
  with pytest.raises(data.DatasetNotFoundError) as e:
    data.load("fashion_mnist", "test", str(tmp_path), allow_download=True,
              tfds_data_dir=str(tmp_path / "tfds"))
  assert "download" in str(e.value) and "t10k-images-idx3-ubyte.gz" in str(e.value)


def test_env_var_data_dir(data_dir, monkeypatch):
  monkeypatch.setenv("TRANSJAX_DATA_DIR", str(data_dir))
  assert data.default_data_dir() == str(data_dir)
  assert len(data.load("usps", "test")) == 2007


def test_find_data_dir_given_then_env_then_beside_the_repository(tmp_path, monkeypatch):
  """The one fallback of binaries and tests: a given folder wins (even a missing one, so
  loading names it), then $TRANSJAX_DATA_DIR when it is a folder, then ../shared/data."""
  beside = tmp_path / "shared" / "data"
  monkeypatch.setattr(data.sources, "SHARED_DATA_DIR", beside)
  monkeypatch.setenv("TRANSJAX_DATA_DIR", str(tmp_path))
  assert data.find_data_dir("/given/missing") == "/given/missing"
  assert data.find_data_dir() == str(tmp_path)
  monkeypatch.setenv("TRANSJAX_DATA_DIR", str(tmp_path / "typo"))
  assert data.find_data_dir() is None           # a typo is skipped (with a notice) ...
  beside.mkdir(parents=True)
  assert data.find_data_dir() == str(beside)    # ... and the checkout's data is used
  monkeypatch.delenv("TRANSJAX_DATA_DIR")
  assert data.find_data_dir() == str(beside)


def test_a_benchmark_never_times_stand_in_images_without_naming_the_folder_and_fix(tmp_path):
  """benchmark_analysis.load_batch falls back to Gaussian images only with a notice that
  names the folder it tried, why it failed and the flag that fixes it."""
  from unittest import mock  # pylint: disable=import-outside-toplevel
  from experiments import benchmark_analysis  # pylint: disable=import-outside-toplevel
  with mock.patch.object(benchmark_analysis.logging, "warning") as warning:
    batch, desc = benchmark_analysis.load_batch(4, str(tmp_path / "empty"))
  assert desc == "synthetic Gaussian images (stand-in)" and batch["image"].shape == (4, 28, 28, 1)
  notice = warning.call_args.args[0] % warning.call_args.args[1:]
  assert str(tmp_path / "empty") in notice and "t10k-images-idx3-ubyte.gz" in notice
  assert "--data_dir=<folder holding mnist/>" in notice and "TRANSJAX_DATA_DIR" in notice


def test_a_relative_folder_is_read_under_data_dir_when_there_else_here(tmp_path, monkeypatch):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  for root in (tmp_path / "data" / "pics", tmp_path / "cwd" / "mine"):
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "a" / "0.png")
  monkeypatch.chdir(tmp_path / "cwd")
  data_dir = str(tmp_path / "data")
  assert data.load("folder:pics", "all", data_dir).provenance.source.startswith(
      f"folder:{tmp_path / 'data' / 'pics'}")
  assert len(data.load("folder:mine", "all", data_dir)) == 1
  with pytest.raises(data.DatasetNotFoundError, match="no folder under .*data or .*nowhere"):
    data.load("folder:nowhere", "all", data_dir)


def test_unknown_dataset_lists_known_names():
  with pytest.raises(data.UnknownDatasetError) as e:
    data.load("mnits")
  for name in ("mnist", "svhn_cropped", "caltech101", "digits", "synthetic"):
    assert name in str(e.value)


def test_misspelled_tfds_name_is_refused_before_loading_and_custom_ones_pass():
  from transjax.data import sources  # pylint: disable=import-outside-toplevel
  with pytest.raises(data.UnknownDatasetError, match="did you mean 'fashion_mnist'"):
    sources.check_name("tfds:fashion_mnst")
  with pytest.raises(data.UnknownDatasetError, match="did you mean 'mnist'"):
    sources.check_name("tfds:mnsit:3.0.1")
  for name in ("tfds:mnist", "tfds:cars196:2.1.0", "tfds:my_prepared_dataset"):
    sources.check_name(name)  # registered, or found (or not) at load


def test_known_datasets_include_full_preset_names():
  for name in ("mnist", "fashion_mnist", "svhn_cropped", "cifar10", "caltech101",
               "caltech_birds2011", "cars196", "food101", "places365_small",
               "imagenet2012", "digits", "synthetic"):
    assert name in data.KNOWN_DATASETS


def test_digits_builtin():
  train, test = data.load("digits", "train"), data.load("digits", "test")
  assert len(train) + len(test) == 1797 and len(test) == 360
  assert train.images.shape[1:] == (8, 8, 1) and train.images.max() == 255
  assert np.all(np.abs(train.class_counts() / len(train)
                       - test.class_counts() / len(test)) < 0.02)


def test_synthetic_deterministic_and_configurable():
  a = data.load("synthetic", "train")
  b = data.load("synthetic", "train")
  assert a.images.shape == (2000, 28, 28, 1) and len(data.load("synthetic", "test")) == 500
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)
  c = data.load("synthetic(seed=1)", "train")
  assert not np.array_equal(a.images, c.images)
  d = data.load("synthetic(size=32,channels=3,num_classes=4,num_train=100)", "train")
  assert d.images.shape == (100, 32, 32, 3) and d.num_classes == 4
  np.testing.assert_array_equal(d.class_counts(), [25] * 4)
  assert "seed=0" in a.provenance.source
  with pytest.raises(ValueError, match="Unknown synthetic option"):
    data.load("synthetic(colour=3)")


def test_synthetic_is_learnable_by_a_linear_probe():
  from sklearn.linear_model import RidgeClassifier
  train = data.load("synthetic(num_train=1000)", "train")
  test = data.load("synthetic", "test")
  clf = RidgeClassifier(alpha=10.0).fit(train.images.reshape(len(train), -1) / 255.0,
                                        train.labels)
  assert clf.score(test.images.reshape(len(test), -1) / 255.0, test.labels) > 0.3


def test_dataset_validation_messages():
  images = np.zeros((3, 4, 4, 1), np.uint8)
  prov = data.Provenance("test")
  with pytest.raises(ValueError, match="3 images but 2 labels"):
    data.Dataset("x", images, np.zeros(2, np.int32), ("a", "b"), prov)
  with pytest.raises(ValueError, match=r"\[0, 2\)"):
    data.Dataset("x", images, np.array([0, 1, 2]), ("a", "b"), prov)
  with pytest.raises(ValueError, match="uint8 or float32"):
    data.Dataset("x", images.astype(np.float64), np.zeros(3, int), ("a",), prov)
  with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
    data.Dataset("x", images[..., 0], np.zeros(3, int), ("a",), prov)


def test_provenance_describe():
  prov = data.Provenance("h5:/d/usps.h5", stand_in_for="SVHN",
                         transforms=("per_class(60)", "resize(28x28)"))
  assert prov.describe("USPS") == ("USPS (stand-in for SVHN) from h5:/d/usps.h5; "
                                   "transforms: per_class(60), resize(28x28)")


class _VariableSizeSource:
  """The two methods of a TFDS data source `read_records` uses, over images of 3 sizes;
  it counts the records decoded per call."""

  def __init__(self, n):
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (25, 50), (33, 33)]
    self.records = [{"image": rng.integers(0, 256, sizes[i % 3] + (3,), dtype=np.uint8),
                     "label": i % 4} for i in range(n)]
    self.calls = []

  def __len__(self):
    return len(self.records)

  def __getitems__(self, index):
    self.calls.append(len(index))
    return [self.records[i] for i in index]


def test_tfds_records_of_varying_sizes_are_resized_a_chunk_at_a_time(monkeypatch):
  from transjax.data import sources as sources_lib
  from transjax.data.transforms import resize_images
  monkeypatch.setattr(sources_lib, "TFDS_READ_CHUNK", 4)
  source = _VariableSizeSource(10)
  images, labels = sources_lib.read_records(source, "fake", (16, 16))
  assert source.calls == [4, 4, 2]          # never every record at once
  assert images.shape == (10, 16, 16, 3) and images.dtype == np.uint8
  assert labels.tolist() == [i % 4 for i in range(10)]
  np.testing.assert_array_equal(images[1],
                                resize_images(source.records[1]["image"][None], 16, 16)[0])
  with pytest.raises(ValueError, match="different shapes.*image_size"):
    sources_lib.read_records(_VariableSizeSource(5), "fake", None)
