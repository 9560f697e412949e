"""Seeded, resumable batching: same seed same batches, batch_at == iterate, resume."""

import itertools

import numpy as np
import pytest

from transjax import data


@pytest.fixture(scope="module")
def ds():
  return data.load("synthetic(num_train=230,size=12)", "train")


def test_steps_per_epoch():
  assert data.steps_per_epoch(230, 32) == 7
  assert data.steps_per_epoch(230, 32, drop_remainder=False) == 8
  with pytest.raises(ValueError, match="larger than the dataset"):
    data.steps_per_epoch(10, 32)


def test_epoch_permutation_seeded():
  a = data.epoch_permutation(100, seed=1, epoch=2)
  np.testing.assert_array_equal(a, data.epoch_permutation(100, seed=1, epoch=2))
  np.testing.assert_array_equal(np.sort(a), np.arange(100))
  assert not np.array_equal(a, data.epoch_permutation(100, seed=1, epoch=3))
  assert not np.array_equal(a, data.epoch_permutation(100, seed=2, epoch=2))


def test_iterate_batch_format_and_epoch_coverage(ds):
  steps = list(data.iterate(ds, 32, seed=0, num_steps=7))
  assert [s for s, _ in steps] == list(range(7))
  batch = steps[0][1]
  assert batch["image"].dtype == np.float32 and batch["image"].shape == (32, 12, 12, 1)
  assert batch["label"].dtype == np.int32 and batch["label"].shape == (32,)
  assert 0 <= batch["image"].min() and batch["image"].max() <= 1
  seen = np.concatenate([b["image"].reshape(32, -1) for _, b in steps])
  assert len({row.tobytes() for row in seen}) == 7 * 32  # no repeats within an epoch


@pytest.mark.parametrize("augment", [False, True])
def test_same_seed_same_batches_and_batch_at_equals_iterate(ds, augment):
  kwargs = dict(augment=augment, mean=[0.3], std=[0.2])
  a = list(data.iterate(ds, 32, seed=5, num_steps=20, **kwargs))
  b = list(data.iterate(ds, 32, seed=5, num_steps=20, **kwargs))
  c = list(data.iterate(ds, 32, seed=6, num_steps=20, **kwargs))
  for (sa, ba), (_, bb), (_, bc) in zip(a, b, c):
    np.testing.assert_array_equal(ba["image"], bb["image"])
    np.testing.assert_array_equal(ba["label"], bb["label"])
    assert not np.array_equal(ba["image"], bc["image"])
    at = data.batch_at(ds.images, ds.labels, 32, 5, sa, augment=augment,
                       mean=[0.3], std=[0.2])
    np.testing.assert_array_equal(at["image"], ba["image"])
    np.testing.assert_array_equal(at["label"], ba["label"])


def test_resume_equals_tail(ds):
  full = list(data.iterate(ds, 32, seed=0, num_steps=25, augment=True))
  resumed = list(data.iterate(ds, 32, seed=0, start_step=11, num_steps=14, augment=True))
  assert [s for s, _ in resumed] == list(range(11, 25))
  for (s1, b1), (s2, b2) in zip(full[11:], resumed):
    assert s1 == s2
    np.testing.assert_array_equal(b1["image"], b2["image"])
    np.testing.assert_array_equal(b1["label"], b2["label"])


def test_iterate_forever_and_normalisation(ds):
  mean, std = data.channel_stats(ds)
  stream = data.iterate(ds, 64, seed=0, mean=mean, std=std)
  batches = [b for _, b in itertools.islice(stream, 10)]
  x = np.concatenate([b["image"] for b in batches[:3]])
  assert abs(x.mean()) < 0.1 and abs(x.std() - 1) < 0.1


def test_eval_batches_in_order_last_smaller(ds):
  batches = list(data.eval_batches(ds, 100))
  assert [len(b["label"]) for b in batches] == [100, 100, 30]
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), ds.labels)
  np.testing.assert_allclose(batches[0]["image"], ds.images[:100] / 255.0, atol=1e-6)
