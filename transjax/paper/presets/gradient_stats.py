r"""Fig 7: gradient histograms, weight projection on gradient singular directions, gradient
scale per layer (taps); pretrained vs random initialisation, at the start of fine-tuning.

    python -m experiments.paper_gradient_stats --config=configs/paper_gradient_stats.py:quick \
        --workdir=runs/gradient_stats

Presets:
  smoke: built-in data, 64 samples.
  quick: MNIST-pretrained LeNet vs scratch on 600 USPS images (stand-in for SVHN), 256 samples,
         histogram of conv2 (the paper: the 25th layer of ResNet-50).
  imagenet: EfficientNet-Lite0 from its ImageNet weights vs scratch on 500 CIFAR-10 images
         at 64 px, 128 samples, histogram of block 8's projection conv (the middle block).
  full:  ResNet-50 from ImageNet weights vs scratch on CUB-200 (TFDS caltech_birds2011).
"""

from transjax.paper.pairs import pair_fields
from transjax import cli


def _make(preset):
  c = pair_fields(preset, "caltech_birds2011")
  c.bn_mode = "batch"           # the gradient SGD takes, in train mode (analysis/batchnorm.py)
  c.num_samples = {"smoke": 64, "quick": 256, "imagenet": 128, "full": 256}[preset]
  c.layer = {"full": "layer3/0/conv2", "imagenet": "blocks/8/project/conv"}.get(
      preset, "conv2")                                             # histogram / SVD layer
  # Layers whose relative gradient and projection the claims average (the histogram and
  # projection figures show `layer`): imagenet every projection conv, LeNet every hidden
  # layer, full the third conv of each stage-3 block; () = `layer` only.
  c.layers = {"smoke": (), "quick": ("conv1", "conv2", "fc1", "fc2"),
              "imagenet": tuple(f"blocks/{i}/project/conv" for i in range(16)),
              "full": tuple(f"layer3/{b}/conv3" for b in range(6))}[preset]
  c.num_batches = 1 if preset == "smoke" else 4   # sample batches (seeds 0..) averaged
  c.top_directions = 5          # singular directions averaged in the projection claim
  c.bins = 60
  return c


def get_config(arg=None):
  return cli.preset(arg, {p: (lambda p=p: _make(p)) for p in ("smoke", "quick", "imagenet", "full")},
                    __file__)
