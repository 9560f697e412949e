"""Datasets for transjax: loading by name, named transforms, seeded batching.

    from transjax import data
    ds = data.build({"name": "usps", "transforms": ("per_class:60", "stand_in:SVHN")})
    for step, batch in data.iterate(ds, batch_size=64, seed=0, num_steps=100): ...
"""

from transjax.data import batching
from transjax.data import folder
from transjax.data import idx
from transjax.data import sources
from transjax.data import spec
from transjax.data import synthetic
from transjax.data import transforms
from transjax.data.batching import batch_at
from transjax.data.batching import epoch_permutation
from transjax.data.batching import eval_batches
from transjax.data.batching import iterate
from transjax.data.batching import steps_per_epoch
from transjax.data.dataset import Dataset
from transjax.data.dataset import Provenance
from transjax.data.idx import ChecksumError
from transjax.data.sources import DatasetNotFoundError
from transjax.data.sources import KNOWN_DATASETS
from transjax.data.sources import UnknownDatasetError
from transjax.data.sources import default_data_dir
from transjax.data.sources import find_data_dir
from transjax.data.sources import load
from transjax.data.spec import build
from transjax.data.spec import validate
from transjax.data.transforms import apply_named
from transjax.data.transforms import channel_stats
from transjax.data.transforms import colour_of_upper_part_labels
from transjax.data.transforms import normalize
from transjax.data.transforms import pad_to
from transjax.data.transforms import random_crop_flip
from transjax.data.transforms import resize
from transjax.data.transforms import select_classes
from transjax.data.transforms import split
from transjax.data.transforms import subset_per_class
from transjax.data.transforms import subset_total
from transjax.data.transforms import to_grey
from transjax.data.transforms import to_model_input
from transjax.data.transforms import to_rgb
from transjax.data.transforms import upside_down

__all__ = [
    "ChecksumError", "Dataset", "DatasetNotFoundError", "KNOWN_DATASETS", "Provenance",
    "UnknownDatasetError", "apply_named", "batch_at", "batching", "build", "channel_stats",
    "colour_of_upper_part_labels", "default_data_dir", "epoch_permutation", "eval_batches",
    "find_data_dir", "folder", "idx", "iterate", "load", "normalize", "pad_to",
    "random_crop_flip", "resize", "select_classes", "sources", "spec", "split",
    "steps_per_epoch", "subset_per_class", "subset_total", "synthetic", "to_grey",
    "to_model_input", "to_rgb", "transforms", "upside_down", "validate",
]
