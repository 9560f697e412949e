r"""Fig 6 + Fig 11: loss variation along the gradient during training, pretrained vs random.

    python -m experiments.paper_gradient_variation \
        --config=configs/paper_gradient_variation.py:quick --workdir=runs/gradient_variation

Presets (the measurement settings per preset are in
transjax/paper/gradient_variation.py:variation_settings, shared by the target pair):
  smoke: built-in data; every 10 steps, 8 points along the gradient, 64 samples.
  quick: MNIST-pretrained LeNet vs scratch on 600 USPS images (stand-in for SVHN); every 20
         steps, 20 points, 256 samples.
  imagenet: EfficientNet-Lite0 from its ImageNet weights vs scratch on 500 CIFAR-10 images
         at 64 px; every 25 steps, 10 points, 128 samples.
  full:  ResNet-50 from ImageNet weights vs scratch on CUB-200 (TFDS caltech_birds2011);
         100 steps along the gradient (the paper), 256 samples.
"""

from transjax.paper.pairs import pair_fields
from transjax import cli


def _make(preset):
  c = pair_fields(preset, "caltech_birds2011")
  c.bn_mode = "batch"    # the training loss along SGD's gradient (analysis/batchnorm.py)
  return c


def get_config(arg=None):
  return cli.preset(arg, {p: (lambda p=p: _make(p)) for p in ("smoke", "quick", "imagenet", "full")},
                    __file__)
