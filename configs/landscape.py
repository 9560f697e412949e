r"""Loss landscape around a checkpoint, whole model or one layer (Fig 3b, Fig 5, B.4).

    python -m experiments.landscape --config=configs/landscape.py:quick \
        --config.checkpoints=runs/lenet_mnist --workdir=runs/landscape --layer=conv2 --center=init

Presets: smoke (9x9, 16 samples), quick (51x51, 256 samples, eta 0.004 on CPU),
full (the paper: 200x200 grid, p,q = -100..99, eta 0.001, 256 samples, ResNet-50).
"""

import ml_collections

from transjax import cli


def _base():
  c = ml_collections.ConfigDict()
  c.checkpoints = "runs/lenet_synthetic_smoke"
  c.which = "final"            # the centre: final | init | a step (the --center flag overrides)
  c.split = "train"
  c.num_samples = 256
  c.seed = 0
  # BatchNorm statistics (transjax/analysis/batchnorm.py): batch | recalibrated (on the
  # analysed samples, then fixed) | running (as stored). recalibrated: loss-landscape's net.eval() on statistics that fit the data.
  c.bn_mode = "recalibrated"
  c.layer = ""                 # "" = all parameters; else one layer (--layer overrides)
  c.dims = 2                   # 1 or 2
  c.resolution = 51
  c.eta = 0.004
  c.include_bias_bn = False
  c.orthogonal = False
  c.chunk_size = 0             # 0: from the memory budget
  c.memory_budget_mb = 0       # 0: half the device memory (2 GiB on CPU)
  c.vectorize = "vmap"         # vmap (fast) | map (one point's memory at a time)
  return c


def smoke():
  c = _base()
  c.num_samples, c.resolution, c.eta = 16, 9, 0.02
  return c


def quick():
  return _base()


def full():
  c = _base()
  c.checkpoints = "runs/resnet50_cars196"
  c.resolution, c.eta = 200, 0.001
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
