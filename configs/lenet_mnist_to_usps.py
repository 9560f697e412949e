r"""Fine-tune the MNIST-pretrained LeNet-5 on a small digit target (paper Fig 8a, Table 1).

    python -m experiments.pretrain --config=configs/lenet_mnist.py:quick --workdir=runs/lenet_mnist
    python -m experiments.finetune --config=configs/lenet_mnist_to_usps.py:quick \
        --config.init_from=runs/lenet_mnist --config.mode=finetune --workdir=runs/usps_finetune

The paper fine-tunes on 600 SVHN images; SVHN is not available offline, so the quick
preset uses USPS (another digit domain) as a named stand-in for SVHN. The full preset
uses SVHN through TFDS (`svhn_cropped`, converted to grey 28x28).

Presets:
  smoke: built-in sklearn digits as the target, from a smoke-pretrained run; seconds.
  quick: 600 USPS training images (60 per class), full USPS test set, 30 epochs.
  full:  600 SVHN images (TFDS svhn_cropped), paper protocol: 100 epochs, batch 64,
         lr 0.01, momentum 0.9, weight decay 5e-4.
"""

from transjax import cli
from transjax.config import data_spec, training_defaults


def _base():
  c = training_defaults()
  c.name = "lenet_mnist_to_usps"
  c.mode = "finetune"
  c.init_from = "runs/lenet_mnist"
  c.model.name = "lenet"
  c.model.input_size = 28
  c.model.in_channels = 1
  c.data.train = data_spec("usps", "train", ("per_class:60", "stand_in:SVHN"))
  c.data.test = data_spec("usps", "test", ("stand_in:SVHN",))
  return c


def smoke():
  c = _base()
  c.name = "lenet_digits_smoke"
  c.init_from = "runs/smoke_pretrain"
  c.data.train = data_spec("digits", "train", ("per_class:20",))
  c.data.test = data_spec("digits", "test")
  c.num_steps = 40
  c.batch_size = 32
  c.log_every = c.eval_every = c.checkpoint_every = 20
  return c


def quick():
  c = _base()
  c.num_epochs = 30
  c.log_every, c.eval_every, c.checkpoint_every = 30, 90, 270
  return c


def full():
  c = _base()
  c.name = "lenet_mnist_to_svhn"
  c.data.train = data_spec("svhn_cropped", "train", ("per_class:60", "grey"))
  c.data.test = data_spec("svhn_cropped", "test", ("grey",))
  c.num_epochs = 100
  c.log_every, c.eval_every, c.checkpoint_every = 50, 500, 500
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
