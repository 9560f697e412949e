r"""Fine-tune an ImageNet-pretrained ResNet-50 on a target (paper Table 1, Appendix A).

    python -m experiments.finetune --config=configs/resnet50_finetune.py:full \
        --config.init_from=/path/to/resnet50-torchvision.pth --config.data.train.name=cars196 \
        --config.data.test.name=cars196 --workdir=runs/cars_finetune

Presets:
  full:  ResNet-50 at 224x224, torchvision ImageNet weights (config.init_from: a .pth state
         dict, or the same tensors as .npz/.safetensors), new head, batch 32, lr 0.01,
         momentum 0.9, 200 epochs, lr x0.1 at 2/3 of training (the paper chose the decay
         time by cross-validation), TFDS data (default cars196; caltech101,
         caltech_birds2011, food101 as in the paper). Needs an accelerator and the data.
  fixed: the same with the backbone frozen and the paper's 512-unit BN+LeakyReLU head.
  quick: a small ResNet-18 on CIFAR-10 (local test split carved into train/test) from
         scratch, as a CPU-sized check of the same pipeline; CIFAR-10 is a stand-in.
"""

from transjax import cli
from transjax.config import data_spec, resnet50_protocol, training_defaults


def full():
  c = training_defaults()
  c.name = "resnet50_finetune"
  c.mode = "finetune"
  c.init_from = ""             # required: torchvision resnet50 ImageNet weights
  resnet50_protocol(c)
  c.data.train = data_spec("cars196", "train")
  c.data.test = data_spec("cars196", "test")
  c.log_every, c.eval_every, c.checkpoint_every = 100, 2000, 2000
  return c


def fixed():
  c = full()
  c.name = "resnet50_fixed"
  c.mode = "fixed"
  c.model.head = "mlp"
  c.optim.schedule = "constant"
  c.optim.decay_at = ()
  return c


def quick():
  c = training_defaults()
  c.name = "resnet18_cifar_quick"
  c.model.name = "resnet_tiny"
  c.model.input_size = 32
  c.model.in_channels = 3
  c.data.train = data_spec("cifar10", "test", ("split_train:0.8", "stand_in:CIFAR-10 train split"))
  c.data.test = data_spec("cifar10", "test", ("split_test:0.8", "stand_in:CIFAR-10 test split"))
  c.batch_size = 32
  c.num_epochs = 1
  c.log_every, c.eval_every, c.checkpoint_every = 50, 250, 250
  return c


def get_config(arg=None):
  return cli.preset(arg, {"quick": quick, "full": full, "fixed": fixed}, __file__)
