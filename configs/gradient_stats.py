r"""Gradient statistics of one layer and per-layer gradient scale (Fig 7 a-d).

    python -m experiments.gradient_stats --config=configs/gradient_stats.py:quick \
        --config.checkpoints=runs/finetune,runs/scratch --config.which=init --workdir=runs/gstats

Presets: smoke (16 samples), quick (LeNet conv2, 256 samples), full (ResNet-50
layer4.2.conv2, 256 samples).
"""

import ml_collections

from transjax import cli


def _base():
  c = ml_collections.ConfigDict()
  c.checkpoints = "runs/lenet_synthetic_smoke"
  c.which = "final"
  c.split = "train"
  c.num_samples = 256
  c.seed = 0
  # BatchNorm statistics (transjax/analysis/batchnorm.py): batch | recalibrated (on the
  # analysed samples, then fixed) | running (as stored). batch: the gradient SGD takes, in train mode.
  c.bn_mode = "batch"
  c.layer = "conv2"
  c.bins = 100
  return c


def smoke():
  c = _base()
  c.num_samples, c.bins = 16, 20
  return c


def quick():
  return _base()


def full():
  c = _base()
  c.checkpoints = "runs/resnet50_birds_finetune,runs/resnet50_birds_scratch"
  c.layer = "layer4.2.conv2"
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
