r"""Top-k Hessian eigenvalues and trace of trained models (the paper's Fig 3a).

    python -m experiments.hessian --config=configs/hessian.py:quick \
        --config.checkpoints=runs/lenet_mnist,runs/lenet_usps --workdir=runs/hessian

Presets: smoke (seconds: top-3, 32 samples), quick (CPU minutes: LeNet, top-20, 256
samples), full (paper scale: ResNet-50 runs, top-20, 256 samples). `checkpoints` is a
comma-separated list of training run folders; `which` picks "final", "init" or a step.
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
  # analysed samples, then fixed) | running (as stored). recalibrated: PyHessian's model.eval() on statistics that fit the data.
  c.bn_mode = "recalibrated"
  c.layers = ""            # comma-separated layer names; "" = all parameters
  c.method = "lanczos"     # lanczos | power
  c.top_k = 20
  c.tol = 1e-3
  c.max_steps = 0          # 0: the solver's default
  c.trace_probes = 50      # 0: skip the Hutchinson trace
  return c


def smoke():
  c = _base()
  c.num_samples, c.top_k, c.trace_probes = 32, 3, 4
  return c


def quick():
  return _base()


def full():
  c = _base()
  c.checkpoints = "runs/resnet50_cars196"
  c.tol = 1e-4
  c.trace_probes = 100
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
