r"""Trains a model on a source dataset and keeps its checkpoints (the "pretrained" weights).

    python -m experiments.pretrain --config=configs/lenet_mnist.py:quick --workdir=runs/lenet_mnist
"""

from absl import app

from transjax import cli

from experiments import train_common

_CONFIG, _WORKDIR = train_common.define_flags(
    "Pretraining config: a file under configs/ and a preset (smoke | quick | full), e.g. "
    "configs/lenet_mnist.py:quick.")


def main(argv):
  del argv
  train_common.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
