"""Seeded, resumable batching.

The training stream is infinite and a pure function of (seed, step): epoch
`e = step // steps_per_epoch` visits the examples in the order
`np.random.default_rng((seed, e)).permutation(n)`, and batch `step` is slice
`step % steps_per_epoch` of it. So the same seed gives the same batches, and a run
restored at step k continues exactly where it stopped (`iterate(..., start_step=k)`).
Augmentation of batch `step` draws from `default_rng((seed, step, 1))`, also a pure
function of the step.

Images handed to models are float32 in [0, 1], then normalised per channel with
(mean, std) when given.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from transjax.data.dataset import Dataset
from transjax.data.transforms import random_crop_flip, to_unit_float


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool = True) -> int:
  """Batches in one pass over n examples (the last partial one dropped by default)."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}.")
  steps = n // batch_size if drop_remainder else -(-n // batch_size)
  if steps == 0:
    raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} "
                     "examples) with drop_remainder=True.")
  return steps


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the n examples."""
  return np.random.default_rng((seed, epoch)).permutation(n)


def prepare_images(images: np.ndarray, mean, std) -> np.ndarray:
  """What a model receives: float32 in [0, 1], then (x - mean) / std when given."""
  x = to_unit_float(images)
  if mean is not None or std is not None:
    c = x.shape[-1]
    m = np.zeros(c, np.float32) if mean is None else np.asarray(mean, np.float32)
    s = np.ones(c, np.float32) if std is None else np.asarray(std, np.float32)
    x = (x - m.reshape(-1)) / s.reshape(-1)
  return x.astype(np.float32, copy=False)


def _augment_fn(augment) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
  if augment is None or augment is False:
    return None
  if augment is True:
    return random_crop_flip
  if callable(augment):
    return augment
  raise ValueError(f"augment must be None, a bool or a callable, got {augment!r}.")


def batch_at(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
             step: int, *, augment=None, drop_remainder: bool = True,
             mean=None, std=None) -> dict[str, np.ndarray]:
  """Batch number `step` of the infinite seeded stream.

  Args:
    images: (N, H, W, C) uint8 (scaled to [0, 1]) or float32 (used as is).
    labels: (N,) integers.
    batch_size: examples per batch.
    seed: the stream's seed.
    step: which batch; epoch = step // steps_per_epoch.
    augment: None/False, True (random crop with 4 px padding + horizontal flip), or a
      callable (images, rng) -> images.
    drop_remainder: whether each epoch drops its last partial batch (when False the
      last batch of each epoch is smaller).
    mean, std: per-channel normalisation in [0, 1] scale, or None.

  Returns:
    {"image": float32 (B, H, W, C), "label": int32 (B,)}.
  """
  n = len(labels)
  per_epoch = steps_per_epoch(n, batch_size, drop_remainder)
  epoch, k = divmod(int(step), per_epoch)
  index = epoch_permutation(n, seed, epoch)[k * batch_size:(k + 1) * batch_size]
  batch_images = images[index]
  fn = _augment_fn(augment)
  if fn is not None:
    batch_images = fn(batch_images, np.random.default_rng((seed, int(step), 1)))
  return {"image": prepare_images(batch_images, mean, std),
          "label": np.asarray(labels[index], np.int32)}


def iterate(ds: Dataset, batch_size: int, seed: int, start_step: int = 0,
            num_steps: int | None = None, *, augment=False, mean=None, std=None,
            drop_remainder: bool = True,
            rows: slice | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """Yields (step, batch) from `start_step` for `num_steps` steps (None: forever).

  Batch `step` equals `batch_at(ds.images, ds.labels, batch_size, seed, step, ...)`,
  so iteration resumed at step k yields exactly the tail of a full iteration.

  `rows`: only these rows of each batch are read and prepared (one process's share of a
  global batch, `transjax.distributed.local_rows`); the example order is the global
  one. Augmented rows then draw from a generator of their own (seeded with the first
  row too), so an augmented run's batches depend on how it is split; an unaugmented
  run's do not.
  """
  n = len(ds)
  per_epoch = steps_per_epoch(n, batch_size, drop_remainder)
  fn = _augment_fn(augment)
  step = int(start_step)
  end = None if num_steps is None else step + int(num_steps)
  epoch, order = None, None
  while end is None or step < end:
    e, k = divmod(step, per_epoch)
    if e != epoch:  # one permutation per epoch, not per step
      epoch, order = e, epoch_permutation(n, seed, e)
    index = order[k * batch_size:(k + 1) * batch_size]
    key = (seed, step, 1)
    if rows is not None and rows.indices(len(index))[:2] != (0, len(index)):
      index, key = index[rows], key + (rows.indices(len(index))[0],)
    batch_images = ds.images[index]
    if fn is not None:
      batch_images = fn(batch_images, np.random.default_rng(key))
    yield step, {"image": prepare_images(batch_images, mean, std),
                 "label": ds.labels[index].astype(np.int32)}
    step += 1


def eval_batches(ds: Dataset, batch_size: int, *, mean=None, std=None,
                 rows: slice | None = None) -> Iterator[dict[str, np.ndarray]]:
  """All examples in order, once; the last batch is smaller when N % batch_size != 0.

  A smaller last batch costs one extra jit compilation per dataset; callers that
  care can pad it themselves. No mask is returned. `rows`: only these rows of each
  batch (one process's share, as in `iterate`); the last batch's share can be short
  or empty.
  """
  lo, hi = (0, batch_size) if rows is None else rows.indices(batch_size)[:2]
  for start in range(0, len(ds), batch_size):
    end = min(start + hi, start + batch_size, len(ds))
    part = slice(min(start + lo, end), end)
    yield {"image": prepare_images(ds.images[part], mean, std),
           "label": ds.labels[part].astype(np.int32)}
