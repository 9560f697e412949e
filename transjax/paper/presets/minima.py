r"""Fig 3 + Fig 10: Hessian eigenvalues and landscapes at the minima, pretrained vs random.

    python -m experiments.paper_minima --config=configs/paper_minima.py:quick --workdir=runs/minima

Presets:
  smoke: built-in data only (synthetic-shapes source, sklearn digits target); 9x9 grid,
         top-3 eigenvalues on 64 samples; seconds.
  quick: MNIST-pretrained LeNet vs scratch on 600 USPS images (stand-in for SVHN); 31x31
         grid (eta 0.033), top-20 eigenvalues on 256 samples; a few minutes on 2 CPU cores.
  imagenet: EfficientNet-Lite0 from its ImageNet weights vs scratch on 500 CIFAR-10 images
         at 64 px (transjax/paper/sources.py); 11x11 grid (eta 0.033), top-20 eigenvalues on
         256 samples.
Every preset but smoke trains and measures the pair with seeds 0, 1, 2; the instruments use
BatchNorm statistics recalibrated on the analysed samples (bn_mode) and also the stored
running statistics (bn_compare), reported where the verdicts differ.
  full:  the paper: ResNet-50 from torchvision ImageNet weights (config.source_weights) vs
         scratch on Stanford Cars (TFDS cars196); 200x200 grid, eta 0.001, 256 samples,
         top-20. Needs an accelerator and the data.
The fine-tuning pair is shared with the other analysis experiments through
`<shared_dir>/targets/` (identical configs train once).
"""

from transjax import cli
from transjax.paper.pairs import pair_fields


def _make(preset):
  c = pair_fields(preset, "cars196")
  c.bn_mode = "recalibrated"    # PyHessian / loss-landscape evaluate model.eval() (batchnorm.py)
  c.num_samples = {"smoke": 64, "quick": 256, "imagenet": 256, "full": 256}[preset]
  c.top_k = {"smoke": 3, "quick": 20, "imagenet": 20, "full": 20}[preset]
  c.resolution = {"smoke": 9, "quick": 31, "imagenet": 11, "full": 200}[preset]
  c.eta = {"smoke": 0.1, "quick": 0.033, "imagenet": 0.033, "full": 0.001}[preset]
  c.lanczos_max_steps = 0       # Krylov steps at most; 0: 8 * top_k + 40 (analysis.hessian)
  c.colour_cap = None if preset == "full" else 5.0
  return c


def get_config(arg=None):
  return cli.preset(arg, {p: (lambda p=p: _make(p)) for p in ("smoke", "quick", "imagenet", "full")},
                    __file__)
