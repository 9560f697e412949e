r"""Pretrain LeNet-5 on MNIST (the source model of the paper's digit experiments, Fig 8a).

    python -m experiments.pretrain --config=configs/lenet_mnist.py:quick --workdir=runs/lenet_mnist

Presets:
  smoke: built-in synthetic shapes, a few hundred steps; no data files needed (seconds).
  quick: 10,000 MNIST training images (1,000 per class), 3 epochs; CPU, under a minute.
  full:  the paper's protocol (Appendix A): all 60,000 images, 100 epochs, batch 64,
         lr 0.01, momentum 0.9, weight decay 5e-4.
quick and full are the MNIST source of the paper experiments (transjax.paper.sources).
MNIST is read from --config.data.data_dir / $TRANSJAX_DATA_DIR (<dir>/mnist/*.gz) or TFDS.
"""

from transjax import cli
from transjax.config import data_spec, training_defaults
from transjax.paper.sources import lenet_digits_config


def smoke():
  c = training_defaults()
  c.name = "lenet_synthetic_smoke"
  c.model.name, c.model.input_size, c.model.in_channels = "lenet", 28, 1
  c.data.train = data_spec("synthetic(num_train=600,num_test=200)", "train")
  c.data.test = data_spec("synthetic(num_train=600,num_test=200)", "test")
  c.num_steps = 60
  c.log_every = c.eval_every = c.checkpoint_every = 20
  c.optim.lr = 0.05
  return c


def quick():
  return lenet_digits_config("lenet_mnist", "mnist")


def full():
  return lenet_digits_config("lenet_mnist", "mnist", full=True)


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
