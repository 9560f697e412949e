r"""Trains on a target dataset: from scratch, as a fixed feature extractor, or fine-tuned.

    python -m experiments.finetune --config=configs/lenet_mnist_to_usps.py:quick \
        --config.init_from=runs/lenet_mnist --config.mode=finetune --workdir=runs/usps_finetune

config.mode: scratch (random init) | fixed (pretrained backbone frozen, new head trained) |
finetune (all layers trained from the pretrained weights, new head).
"""

from experiments import train_common

if __name__ == "__main__":
  train_common.main(
      "Fine-tuning config: a file under configs/ and a preset (smoke | quick | full), e.g. "
      "configs/lenet_mnist_to_usps.py:quick; config.mode picks scratch | fixed | finetune "
      "and config.init_from the pretraining run folder (or torchvision weights file).")
