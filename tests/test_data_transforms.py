"""Named transforms and config specs: exactness, stratification, seeding, messages."""

from pathlib import Path

import numpy as np
import pytest

from transjax import data


@pytest.fixture(scope="module")
def data_dir(real_data_dir) -> Path:
  return Path(real_data_dir)


@pytest.fixture(scope="module")
def shapes():
  return data.load("synthetic(num_train=600)", "train")


def make_dataset(counts, shape=(6, 5, 1), dtype=np.uint8, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.concatenate([np.full(k, c) for c, k in enumerate(counts)])
  images = rng.integers(0, 256, (len(labels),) + shape).astype(dtype)
  return data.Dataset("toy", images, labels, tuple(f"c{i}" for i in range(len(counts))),
                      data.Provenance("toy"))


def test_upside_down_is_an_exact_flip(shapes):
  flipped = data.upside_down(shapes)
  np.testing.assert_array_equal(flipped.images, shapes.images[:, ::-1])
  np.testing.assert_array_equal(flipped.labels, shapes.labels)
  np.testing.assert_array_equal(data.upside_down(flipped).images, shapes.images)
  assert flipped.provenance.transforms == ("upside_down",)
  assert shapes.provenance.transforms == ()  # the input is untouched


def test_subset_per_class_stratified_and_seeded(shapes):
  a = data.subset_per_class(shapes, 7, seed=0)
  b = data.subset_per_class(shapes, 7, seed=0)
  c = data.subset_per_class(shapes, 7, seed=1)
  np.testing.assert_array_equal(a.class_counts(), [7] * 10)
  np.testing.assert_array_equal(a.images, b.images)
  assert not np.array_equal(a.images, c.images)
  assert a.provenance.transforms == ("per_class(7, seed=0)",)


def test_subset_per_class_too_few_names_class_and_counts():
  ds = make_dataset([10, 3, 10])
  with pytest.raises(ValueError) as e:
    data.subset_per_class(ds, 5, seed=0)
  assert "'c1' has 3" in str(e.value) and "5" in str(e.value)


def test_subset_total_stratified_and_seeded():
  ds = make_dataset([50, 50, 4, 50])
  sub = data.subset_total(ds, 100, seed=0)
  assert len(sub) == 100
  counts = sub.class_counts()
  assert counts[2] == 4 and counts.max() - np.delete(counts, 2).min() <= 1
  np.testing.assert_array_equal(sub.images, data.subset_total(ds, 100, seed=0).images)
  assert not np.array_equal(sub.images, data.subset_total(ds, 100, seed=1).images)
  with pytest.raises(ValueError) as e:
    data.subset_total(ds, 1000, seed=0)
  assert "1000" in str(e.value) and "154" in str(e.value)


def test_split_is_stratified_disjoint_and_complete():
  ds = make_dataset([100, 60, 40])
  first, rest = data.split(ds, 0.75, seed=3)
  assert len(first) + len(rest) == len(ds) and len(first) == 150
  np.testing.assert_array_equal(first.class_counts(), [75, 45, 30])
  both = np.concatenate([first.images, rest.images]).reshape(len(ds), -1)
  assert len({row.tobytes() for row in both}) == len({r.tobytes() for r in
                                                      ds.images.reshape(len(ds), -1)})
  by_count, _ = data.split(ds, 30, seed=3)
  assert len(by_count) == 30
  again, _ = data.split(ds, 0.75, seed=3)
  np.testing.assert_array_equal(first.images, again.images)


def test_cifar10_carve_train_test(data_dir):
  spec = {"name": "cifar10", "split": "test", "transforms": ("split_train:0.8",)}
  train = data.build(spec, data_dir=str(data_dir), seed=0)
  test = data.build(dict(spec, transforms=("split_test:0.8",)), data_dir=str(data_dir))
  np.testing.assert_array_equal(train.class_counts(), [800] * 10)
  np.testing.assert_array_equal(test.class_counts(), [200] * 10)
  train_keys = {im.tobytes() for im in train.images}
  assert not any(im.tobytes() in train_keys for im in test.images)


def test_select_classes_relabels():
  ds = make_dataset([3, 4, 5, 6])
  sel = data.select_classes(ds, [3, 1])
  assert sel.class_names == ("c3", "c1")
  np.testing.assert_array_equal(sel.class_counts(), [6, 4])
  by_name = data.select_classes(ds, ["c3", "c1"])
  np.testing.assert_array_equal(by_name.labels, sel.labels)
  kept = data.select_classes(ds, [1], relabel=False)
  assert kept.num_classes == 4 and set(kept.labels) == {1}
  with pytest.raises(ValueError, match="no class 'c9'"):
    data.select_classes(ds, ["c9"])


def test_colour_labels_rgb_deterministic_and_in_range(data_dir):
  cifar = data.load("cifar10", "test[:2000]", str(data_dir))
  a = data.colour_of_upper_part_labels(cifar, num_classes=4)
  b = data.colour_of_upper_part_labels(cifar, num_classes=4)
  np.testing.assert_array_equal(a.labels, b.labels)
  assert a.num_classes == 4 and a.labels.min() >= 0 and a.labels.max() < 4
  assert len(set(a.labels.tolist())) >= 3
  np.testing.assert_array_equal(a.images, cifar.images)
  assert all("hue" in name for name in a.class_names)


def test_colour_labels_follow_the_upper_half():
  images = np.zeros((3, 8, 8, 3), np.uint8)
  images[0, :4] = (255, 0, 0)    # red top
  images[1, :4] = (0, 255, 0)    # green top
  images[2, :4] = (0, 0, 255)    # blue top
  images[:, 4:] = (255, 0, 0)    # the lower half must not matter
  ds = data.Dataset("c", images, np.zeros(3, np.int32), ("x",), data.Provenance("t"))
  labels = data.colour_of_upper_part_labels(ds, num_classes=3).labels
  np.testing.assert_array_equal(labels, [0, 1, 2])


def test_colour_labels_grey_uses_brightness_quantiles(shapes):
  out = data.colour_of_upper_part_labels(shapes, num_classes=4)
  assert np.all(np.abs(out.class_counts() - len(shapes) / 4) <= 2)


def test_resize_and_pad_and_channels():
  ds = make_dataset([2, 2], shape=(28, 28, 1))
  big = data.resize(ds, 56, 56)
  assert big.image_shape == (56, 56, 1) and big.images.dtype == np.uint8
  const = ds.replace(images=np.full_like(ds.images, 77))
  np.testing.assert_array_equal(data.resize(const, 13, 40).images, 77)
  padded = data.pad_to(ds, 32, 32)
  np.testing.assert_array_equal(padded.images[:, 2:30, 2:30], ds.images)
  assert padded.images[:, :2].sum() == 0 and padded.images[:, :, 30:].sum() == 0
  rgb = data.to_rgb(ds)
  assert rgb.image_shape == (28, 28, 3)
  np.testing.assert_array_equal(data.to_grey(rgb).images, ds.images)
  with pytest.raises(ValueError, match="larger than the target"):
    data.pad_to(ds, 20, 20)


def test_resize_matches_jax_image_resize():
  import jax
  rng = np.random.default_rng(0)
  x = rng.random((2, 20, 24, 3)).astype(np.float32)
  ds = data.Dataset("f", x, np.zeros(2, np.int32), ("a",), data.Provenance("t"))
  for h, w in [(40, 48), (10, 12), (32, 32)]:
    expected = np.asarray(jax.image.resize(x, (2, h, w, 3), "linear"))
    np.testing.assert_allclose(data.resize(ds, h, w).images, expected, atol=1e-5)


def test_to_model_input_rule():
  mnist_like = make_dataset([2], shape=(28, 28, 1))
  lenet = data.to_model_input(mnist_like, 32, 32, 1)
  assert lenet.provenance.transforms == ("pad(32x32)",)
  usps_like = make_dataset([2], shape=(16, 16, 1))
  resized = data.to_model_input(usps_like, 32, 32, 3)
  assert resized.provenance.transforms == ("resize(32x32)", "rgb")
  assert resized.image_shape == (32, 32, 3)


def test_normalize_and_channel_stats(shapes):
  mean, std = data.channel_stats(shapes)
  assert mean.shape == (1,) and 0 < mean[0] < 1
  x = shapes.images.astype(np.float64) / 255
  np.testing.assert_allclose(mean, x.mean(), rtol=1e-5)
  np.testing.assert_allclose(std, x.std(), rtol=1e-4)
  norm = data.normalize(shapes, mean, std)
  assert norm.images.dtype == np.float32
  np.testing.assert_allclose(norm.images.mean(), 0, atol=1e-4)
  np.testing.assert_allclose(norm.images.std(), 1, atol=1e-3)


def test_random_crop_flip_seeded():
  images = np.arange(2 * 8 * 8 * 1, dtype=np.float32).reshape(2, 8, 8, 1)
  a = data.random_crop_flip(images, np.random.default_rng(0))
  b = data.random_crop_flip(images, np.random.default_rng(0))
  np.testing.assert_array_equal(a, b)
  assert a.shape == images.shape
  same = data.random_crop_flip(images, np.random.default_rng(0), pad=0, flip=False)
  np.testing.assert_array_equal(same, images)


def test_apply_named_and_stand_in(shapes):
  out = shapes
  for spec in ("per_class:5", "upside_down", "resize:14,14", "pad:16,16", "rgb",
               "classes:0,2", "stand_in:SVHN"):
    out = data.apply_named(out, spec, seed=0)
  assert out.image_shape == (16, 16, 3) and len(out) == 10 and out.num_classes == 2
  assert out.provenance.stand_in_for == "SVHN"
  line = out.provenance.describe(out.name)
  assert line.startswith("synthetic (stand-in for SVHN) from synthetic:shapes(")
  assert "per_class(5, seed=0), upside_down, resize(14x14), pad(16x16), rgb" in line
  assert data.apply_named(shapes, "colour_labels:3", 0).num_classes == 3
  assert len(data.apply_named(shapes, "total:50", 0)) == 50


def test_spec_build_and_validate(data_dir):
  spec = {"name": "usps", "split": "train", "transforms": ("per_class:60", "stand_in:SVHN"),
          "data_dir": None}
  ds = data.build(spec, data_dir=str(data_dir), seed=0)
  assert len(ds) == 600 and ds.provenance.stand_in_for == "SVHN"
  np.testing.assert_array_equal(ds.class_counts(), [60] * 10)
  again = data.build(spec, data_dir=str(data_dir), seed=0)
  np.testing.assert_array_equal(ds.images, again.images)


def test_spec_accepts_configdict():
  ml_collections = pytest.importorskip("ml_collections")
  spec = ml_collections.ConfigDict({"name": "synthetic(num_train=100)",
                                    "transforms": ("upside_down",)})
  assert len(data.build(spec)) == 100


@pytest.mark.parametrize("spec,match", [
    ({"name": "mnist", "splt": "train"}, "Unknown dataset spec keys \\['splt'\\]"),
    ({"name": "svhn"}, "Known: .*svhn_cropped"),
    ({"name": "mnist", "transforms": ("upsidedown",)}, "Unknown transform 'upsidedown'"),
    ({"name": "mnist", "transforms": ("per_class",)}, "needs an argument"),
    ({"name": "mnist", "transforms": ("resize:28",)}, "Bad argument"),
    ({"name": "mnist", "transforms": "upside_down"}, "sequence of strings"),
    ({"split": "train"}, "no 'name'"),
])
def test_spec_validate_errors(spec, match):
  with pytest.raises(ValueError, match=match):
    data.validate(spec)
