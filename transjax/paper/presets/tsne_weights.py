r"""Fig 4: t-SNE of the final weights over several targets x {two pretrained sources, random}.

    python -m experiments.paper_tsne_weights --config=configs/paper_tsne_weights.py:quick \
        --workdir=runs/tsne_weights

Presets:
  smoke: built-in data; two synthetic-shapes sources (the smoke "mnist" and
         "fashion_mnist"), targets sklearn digits and a synthetic task; 20 steps each.
  quick: MNIST- and Fashion-MNIST-pretrained LeNets vs random init on three targets: 600
         USPS images (stand-in for SVHN), 600 grey CIFAR-10 images (stand-in for
         Caltech-101) and 600 Fashion-MNIST test images; 30 epochs each.
  imagenet: EfficientNet-Lite0 from its ImageNet weights vs random init on 500 images each of
         CIFAR-10, USPS and Fashion-MNIST at 64 px (grey as RGB).
  full:  ResNet-50 from ImageNet and from Places365 weights vs random init on CUB-200,
         Stanford Cars, Caltech-101 and Food-101 (TFDS).
"""

from transjax.paper.pairs import pair_fields
from transjax import cli


def _make(preset):
  c = pair_fields(preset, "cars196")
  c.sources = ("mnist", "fashion_mnist")
  c.targets = {"smoke": ("digits", "synthetic"),
               "quick": ("usps", "cifar_grey", "fashion_small"),
               "imagenet": ("cifar10", "usps", "fashion_mnist"),
               "full": ("caltech_birds2011", "cars196", "caltech101", "food101")}[preset]
  c.source_weights_by_name = ""   # full: comma-separated weights files, one per source
  c.perplexity = 3.0
  c.include_head = False          # heads are re-initialised per target; compare the backbone
  if preset == "imagenet":
    c.sources = ("imagenet",)
    c.perplexity = 2.0
  if preset == "full":
    c.sources = ("imagenet", "places365")
    c.source_weights_by_name = ("weights/resnet50-0676ba61.pth,"
                                "weights/resnet50_places365.pth")
  return c


def get_config(arg=None):
  return cli.preset(arg, {p: (lambda p=p: _make(p)) for p in ("smoke", "quick", "imagenet", "full")},
                    __file__)
