"""Image-folder datasets ("folder:<path>"): layouts, labels, sizes, channels, bad input, and
one short training run on a folder."""

import json
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from transjax import data, train
from transjax.config import ConfigError, data_spec
from transjax.data import folder
from tests.train_helpers import tiny_config


def _write(path, size, colour=True, value=0):
  path.parent.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(value)
  shape = (size[0], size[1], 3) if colour else size
  Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def split_tree(tmp_path):
  """train: cat (3), dog (2); test: dog (1) only, so labels must come from both splits."""
  root = tmp_path / "pets"
  for i in range(3):
    _write(root / "train" / "cat" / f"{i}.png", (10, 12), value=i)
  for i in range(2):
    _write(root / "train" / "dog" / f"{i}.jpg", (10, 12), value=10 + i)
  _write(root / "test" / "dog" / "0.png", (10, 12), value=20)
  (root / "train" / "dog" / "notes.txt").write_text("not an image")
  return root


def test_split_layout_labels_are_consistent_across_splits(split_tree):
  train_ds = data.load(f"folder:{split_tree}", "train")
  test_ds = data.load(f"folder:{split_tree}", "test")
  assert train_ds.class_names == test_ds.class_names == ("cat", "dog")
  assert train_ds.images.shape == (5, 10, 12, 3) and train_ds.images.dtype == np.uint8
  assert train_ds.labels.tolist() == [0, 0, 0, 1, 1]
  assert test_ds.labels.tolist() == [1]
  assert "folder:" in train_ds.provenance.source and "5 images, 2 classes" in train_ds.provenance.source
  # pixels are the file's pixels (PNG is lossless)
  want = np.asarray(Image.open(split_tree / "train" / "cat" / "0.png"))
  np.testing.assert_array_equal(train_ds.images[0], want)
  assert len(data.load(f"folder:{split_tree}", "train[:2]")) == 2


def test_class_layout_is_split_all_and_train_says_how(tmp_path):
  root = tmp_path / "webcam"
  for c in ("b", "a"):
    for i in range(4):
      _write(root / c / f"{i}.png", (8, 8), colour=False, value=i)
  ds = data.load(f"folder:{root}", "all")
  assert ds.class_names == ("a", "b") and ds.images.shape == (8, 8, 8, 1)
  with pytest.raises(folder.FolderError, match="split 'all'.*split_train:0.8"):
    data.load(f"folder:{root}", "train")
  # the documented way to carve train/test: complementary seeded splits
  tr = data.build({"name": f"folder:{root}", "split": "all", "transforms": ("split_train:0.75",)})
  te = data.build({"name": f"folder:{root}", "split": "all", "transforms": ("split_test:0.75",)})
  assert len(tr) + len(te) == 8


def test_variable_sizes_need_image_size_and_mixed_channels_become_rgb(tmp_path):
  root = tmp_path / "mixed"
  _write(root / "train" / "x" / "big.png", (20, 30))
  _write(root / "train" / "x" / "grey.png", (9, 9), colour=False)
  with pytest.raises(folder.FolderError, match="different sizes.*image_size"):
    data.load(f"folder:{root}", "train")
  with mock.patch.object(folder.logging, "warning") as warning:
    ds = data.load(f"folder:{root}", "train", image_size=(16, 16))
  assert ds.images.shape == (2, 16, 16, 3)
  notice = warning.call_args.args[0] % warning.call_args.args[1:]   # one notice line
  assert "2 image size(s) (e.g. 9x9, 20x30) resized to 16x16" in notice
  grey = ds.images[1]
  np.testing.assert_array_equal(grey[..., 0], grey[..., 2])


def test_bad_input_is_one_clear_error(tmp_path, split_tree):
  with pytest.raises(data.DatasetNotFoundError, match="no folder"):
    data.load(f"folder:{tmp_path / 'missing'}", "train")
  (split_tree / "train" / "cat" / "broken.png").write_bytes(b"not a png")
  with pytest.raises(folder.FolderError, match="broken.png is not a readable image"):
    data.load(f"folder:{split_tree}", "train")
  data.validate({"name": "folder:relative/path(1)", "split": "train"})
  with pytest.raises(data.UnknownDatasetError):
    data.validate({"name": "folder:", "split": "train"})


def test_relative_path_is_read_under_data_dir(split_tree):
  ds = data.load("folder:pets", "test", data_dir=str(split_tree.parent))
  assert ds.name == "pets" and len(ds) == 1


def test_training_on_a_folder(tmp_path):
  root = tmp_path / "digits"
  for split, n in (("train", 24), ("test", 8)):
    for c in range(3):
      for i in range(n // 3):
        _write(root / split / f"class{c}" / f"{i}.png", (14, 14), colour=False,
               value=100 * c + i)
  config = tiny_config(num_steps=4, batch_size=8, eval_batch_size=8, log_every=2,
                       eval_every=4, checkpoint_every=4)
  config.data.train = data_spec(f"folder:{root}", "train")
  config.data.test = data_spec(f"folder:{root}", "test")
  result = train.train(config, str(tmp_path / "run"))
  assert np.isfinite(result["final"]["test_loss"])
  run = json.loads((tmp_path / "run" / "run.json").read_text())
  assert "folder:" in run["data"]["train"] and run["data"]["n_train"] == 24
  config.data.train = data_spec(f"folder:{tmp_path / 'nowhere'}", "train")
  with pytest.raises((data.DatasetNotFoundError, ConfigError), match="no folder"):
    train.train(config, str(tmp_path / "run2"))
