r"""Loss variation along the gradient over a training trajectory (Fig 6, Fig 11).

    python -m experiments.gradient_variation --config=configs/gradient_variation.py:quick \
        --config.checkpoints=runs/finetune,runs/scratch --workdir=runs/gradvar

Each run folder's saved checkpoints (`steps`: "all" or comma-separated steps) are measured
with both protocols. Presets: smoke (10 steps along the gradient, 16 samples), quick
(100 steps, 256 samples), full (ResNet-50 runs, 100 steps, 256 samples).
"""

import ml_collections

from transjax import cli


def _base():
  c = ml_collections.ConfigDict()
  c.checkpoints = "runs/lenet_synthetic_smoke"
  c.steps = "all"
  c.split = "train"
  c.num_samples = 256
  c.seed = 0
  # BatchNorm statistics (transjax/analysis/batchnorm.py): batch | recalibrated (on the
  # analysed samples, then fixed) | running (as stored). batch: the training loss along SGD's gradient.
  c.bn_mode = "batch"
  c.protocols = "gradient,fixed"
  c.lr = 0.01              # "gradient" protocol: step = lr * g
  c.step_length = 0.01     # "fixed" protocol: each step moves this far
  c.num_steps = 100
  c.layers = ""
  return c


def smoke():
  c = _base()
  c.num_samples, c.num_steps = 16, 10
  return c


def quick():
  return _base()


def full():
  c = _base()
  c.checkpoints = "runs/resnet50_birds_finetune,runs/resnet50_birds_scratch"
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
