r"""Trains a model on a source dataset and keeps its checkpoints (the "pretrained" weights).

    python -m experiments.pretrain --config=configs/lenet_mnist.py:quick --workdir=runs/lenet_mnist
"""

from experiments import train_common

if __name__ == "__main__":
  train_common.main(
      "Pretraining config: a file under configs/ and a preset (smoke | quick | full), e.g. "
      "configs/lenet_mnist.py:quick.")
