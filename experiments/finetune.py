r"""Trains on a target dataset: from scratch, as a fixed feature extractor, or fine-tuned.

    python -m experiments.finetune --config=configs/lenet_mnist_to_usps.py:quick \
        --config.init_from=runs/lenet_mnist --config.mode=finetune --workdir=runs/usps_finetune

config.mode: scratch (random init) | fixed (pretrained backbone frozen, new head trained) |
finetune (all layers trained from the pretrained weights, new head).
"""

from absl import app

from transjax import cli

from experiments import train_common

_CONFIG, _WORKDIR = train_common.define_flags(
    "Fine-tuning config: a file under configs/ and a preset (smoke | quick | full), e.g. "
    "configs/lenet_mnist_to_usps.py:quick; config.mode picks scratch | fixed | finetune "
    "and config.init_from the pretraining run folder (or torchvision weights file).")


def main(argv):
  del argv
  train_common.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
