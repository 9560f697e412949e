r"""Pretrain LeNet-5 on MNIST (the source model of the paper's digit experiments, Fig 8a).

    python -m experiments.pretrain --config=configs/lenet_mnist.py:quick --workdir=runs/lenet_mnist

Presets:
  smoke: built-in synthetic shapes, a few hundred steps; no data files needed (seconds).
  quick: 10,000 MNIST training images (1,000 per class), 3 epochs; CPU, under a minute.
  full:  the paper's protocol (Appendix A): all 60,000 images, 100 epochs, batch 64,
         lr 0.01, momentum 0.9, weight decay 5e-4.
MNIST is read from --config.data.data_dir / $TRANSJAX_DATA_DIR (<dir>/mnist/*.gz) or TFDS.
"""

from transjax import cli
from transjax.config import data_spec, training_defaults


def _base():
  c = training_defaults()
  c.name = "lenet_mnist"
  c.model.name = "lenet"
  c.model.input_size = 28
  c.model.in_channels = 1
  c.data.train = data_spec("mnist", "train")
  c.data.test = data_spec("mnist", "test")
  return c


def smoke():
  c = _base()
  c.name = "lenet_synthetic_smoke"
  c.data.train = data_spec("synthetic(num_train=600,num_test=200)", "train")
  c.data.test = data_spec("synthetic(num_train=600,num_test=200)", "test")
  c.num_steps = 60
  c.log_every = c.eval_every = c.checkpoint_every = 20
  c.optim.lr = 0.05
  return c


def quick():
  c = _base()
  c.data.train = data_spec("mnist", "train", ("per_class:1000",))
  c.data.test = data_spec("mnist", "test", ("total:2000",))
  c.num_epochs = 3
  c.log_every, c.eval_every, c.checkpoint_every = 50, 150, 150
  c.optim.lr = 0.05
  return c


def full():
  c = _base()
  c.num_epochs = 100
  c.log_every, c.eval_every, c.checkpoint_every = 100, 2000, 2000
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
