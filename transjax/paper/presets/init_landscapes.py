r"""Fig 5 + Appendix B.4: per-layer loss landscapes at initialisation, pretrained vs random,
and the convergence of fine-tuning vs training from scratch.

    python -m experiments.paper_init_landscapes --config=configs/paper_init_landscapes.py:quick \
        --workdir=runs/init_landscapes

Presets:
  smoke: built-in data; 9x9 grids on 64 samples, layers conv1, conv2, fc.
  quick: MNIST-pretrained LeNet vs scratch on 600 USPS images (stand-in for SVHN); 21x21
         grids (eta 0.01: the paper's width) on 256 samples, every LeNet layer (conv1, conv2,
         fc1, fc2, fc).
  imagenet: EfficientNet-Lite0 from its ImageNet weights vs scratch on 500 CIFAR-10 images
         at 64 px; 11x11 grids (eta 0.02: the paper's width) on 64 samples, of two lower
         layers (the stem conv and block 1's depthwise conv), the middle block 8 (of 16; the
         analogue of ResNet-50's 25th layer): its depthwise and projection convs, and the
         upper half's blocks 12 and 15 (projection convs; ResNet-50's 25th-48th layers).
  full:  ResNet-50 from ImageNet weights vs scratch on Stanford Cars (TFDS cars196);
         200x200 grid, eta 0.001, 256 samples; the layers of stage 3 (paper: 25th-48th).
"""

from transjax.paper.pairs import pair_fields
from transjax import cli


def _make(preset):
  c = pair_fields(preset, "cars196")
  c.bn_mode = "recalibrated"    # loss-landscape evaluates model.eval() (analysis/batchnorm.py)
  c.num_samples = 64 if preset in ("smoke", "imagenet") else 256
  # The paper's grid width, -0.1 .. 0.1 along each direction (200 x 0.001), at fewer points.
  c.resolution = {"smoke": 9, "quick": 21, "imagenet": 11, "full": 200}[preset]
  c.eta = {"smoke": 0.1, "quick": 0.01, "imagenet": 0.02, "full": 0.001}[preset]
  c.layers = ()                 # () = every weight layer of the model
  c.lower_layers = 2            # the first N layers form the "lower layers" claim
  c.colour_cap = None if preset == "full" else 5.0
  c.loss_threshold = 0.0        # <= 0: 1.1 x the larger of the two final train losses
  if preset == "smoke":
    c.layers = ("conv1", "conv2", "fc")
  if preset == "imagenet":
    c.layers = ("stem/conv", "blocks/1/depthwise/conv", "blocks/8/depthwise/conv",
                "blocks/8/project/conv", "blocks/12/project/conv", "blocks/15/project/conv")
  if preset == "full":
    c.layers = tuple(f"layer3/{b}/conv{k}" for b in range(6) for k in (1, 2, 3))
  return c


def get_config(arg=None):
  return cli.preset(arg, {p: (lambda p=p: _make(p)) for p in ("smoke", "quick", "imagenet", "full")},
                    __file__)
