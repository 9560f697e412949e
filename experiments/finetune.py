r"""Transfer to a target: `experiments.train` (the one training binary) under this name, the
same flags and behaviour; kept because the README's commands and many run scripts use it.

    python -m experiments.finetune --config=configs/lenet_mnist_to_usps.py:quick \
        --config.init_from=runs/lenet_mnist --config.mode=finetune --workdir=runs/usps_finetune

config.mode: scratch (random init) | fixed (pretrained backbone frozen, new head trained) |
finetune (all layers trained from the pretrained weights, new head).
"""

from experiments import train

if __name__ == "__main__":
  train.main()
