r"""Pretraining: `experiments.train` (the one training binary) under this name, the same
flags and behaviour; kept because the README's commands and many run scripts use it.

    python -m experiments.pretrain --config=configs/lenet_mnist.py:quick --workdir=runs/lenet_mnist

Trains a model on a source dataset and keeps its checkpoints (the "pretrained" weights).
"""

from experiments import train

if __name__ == "__main__":
  train.main()
