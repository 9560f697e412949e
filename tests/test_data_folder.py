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


# ---------------------------------------------------------------- an image folder as a target


def _flat_tree(root, per_class=5, size=(8, 8)):
  """Classes cat, dog with `per_class` distinct PNGs each (pixel values encode the file)."""
  for c, cls in enumerate(("cat", "dog")):
    for i in range(per_class):
      _write(root / cls / f"{i}.png", size, value=1000 + 100 * c + i)
  return root


def _keys(ds):
  return {img.tobytes() for img in ds.images}


def test_a_flat_folder_target_holds_out_the_same_test_part_for_every_seed(tmp_path):
  root = _flat_tree(tmp_path / "my pets")
  t = folder.target(str(root))
  assert (t.name, t.kind) == ("my_pets", "flat") and t.name in t.note
  assert "20% held out as the test set" in t.note and "never trained on" in t.note
  everything = _keys(data.load(f"folder:{root}", "all"))
  assert len(everything) == 10
  tests = []
  for seed in (0, 7):   # the run's seed does not move the held-out part
    train_ds, test_ds = data.build(t.train, seed=seed), data.build(t.test, seed=seed)
    assert not _keys(train_ds) & _keys(test_ds)
    assert _keys(train_ds) | _keys(test_ds) == everything
    assert len(test_ds) == 2 and test_ds.class_counts().tolist() == [1, 1]
    assert any("split(0.8, seed=0)" in x for x in test_ds.provenance.transforms)
    tests.append(_keys(test_ds))
  assert tests[0] == tests[1]


def test_a_split_folder_target_and_its_errors(tmp_path, split_tree):
  t = folder.target(f"mine={split_tree}")
  assert (t.name, t.kind) == ("mine", "split")
  assert t.train["split"] == "train" and t.test["split"] == "test"
  assert not _keys(data.build(t.train)) & _keys(data.build(t.test))
  assert folder.target("pets", data_dir=str(split_tree.parent)).path == str(split_tree)
  with pytest.raises(folder.FolderError, match="no folder"):
    folder.target(str(tmp_path / "missing"))
  _write(tmp_path / "half" / "train" / "a" / "0.png", (4, 4))
  with pytest.raises(folder.FolderError, match=r"needs both train/ and test/"):
    folder.target(str(tmp_path / "half"))


def test_a_folder_is_an_added_target_of_the_transfer_experiment(tmp_path):
  """The smoke preset plus a flat folder: the folder's target is trained (never on its
  held-out images) and named after the folder in results, summary and run folders."""
  from transjax.paper import transfer_targets  # pylint: disable=import-outside-toplevel
  from transjax.paper.presets import transfer_targets as presets  # pylint: disable=import-outside-toplevel
  root = _flat_tree(tmp_path / "pets", per_class=10, size=(12, 12))
  c = presets.get_config("smoke")
  c.folder_targets = str(root)
  added = transfer_targets.with_folder_targets(c)
  assert added.target_names == ("shapes", "digits", "pets")      # added, not substituted
  assert added.targets.pets.train.to_dict() == folder.target(str(root)).train
  # Trained alone (the preset's targets are trained by the smoke test already).
  c.shared_dir = str(tmp_path / "shared")
  c.target_names, c.modes = (), ("finetune", "scratch")
  c.train_overrides = "num_steps=2,batch_size=8,log_every=1,eval_every=1,checkpoint_every=2"
  results = transfer_targets.run(c, str(tmp_path / "work"))
  assert results["targets"] == ["pets"]
  assert set(results["table"]["pets"]) == {"finetune", "scratch"}
  assert "pets" in results["table2"]
  assert "pets: flat image folder" in results["data"]["pets"]
  assert "split(0.8, seed=0)[first]" in results["data"]["pets"]
  assert "Image-folder target pets: flat image folder" in results["summary"]
  run = json.loads((tmp_path / "work" / "runs" / "pets" / "finetune" / "seed0" / "run.json")
                   .read_text())
  assert run["data"]["n_train"] == 16 and run["data"]["n_test"] == 4
  c.folder_targets = f"{root},{root}"
  with pytest.raises(ValueError, match="already has; name it"):
    transfer_targets.with_folder_targets(c)
