r"""Paper Fig 9: transferability against pretraining epochs.

    python -m experiments.paper_pretrain_epochs --config=configs/paper_pretrain_epochs.py:quick \
        --workdir=runs/pretrain_epochs --config.data_dir=/path/to/data

One pretraining run keeps a checkpoint at each of config.checkpoint_steps (multiples of
config.keep_period); each checkpoint is fine-tuned on the target (config.num_seeds times).

Presets:
  smoke: synthetic shapes -> sklearn digits; seconds.
  quick: LeNet pretrained on 1,000 MNIST images (100 per class) for ~100 epochs (1,600
         steps; the paper's LeNet protocol; a small source so that late epochs specialise
         to it), checkpoints at 1.6 .. 102 epochs, each fine-tuned on 600 USPS digits
         (stand-in for a small digit target) for 150 steps, 2 seeds. MNIST -> USPS rather
         than CIFAR-10 split A -> split B: with CIFAR the LeNet source over-fits (its own
         test accuracy falls after ~6 epochs), so a later drop in target accuracy would not
         separate "source keeps improving, transfer declines" from plain over-fitting.
  full:  ResNet-50 pretrained on Food-101 from scratch, fine-tuned from checkpoints at
         several epochs on CUB-200 (caltech_birds2011), as in the paper.
"""

import ml_collections

from transjax import cli
from transjax.config import data_spec, resnet50_protocol, training_defaults
from transjax.paper import overrides


def _lenet():
  r = training_defaults()
  r.model.name = "lenet"
  r.model.input_size = 28
  r.model.in_channels = 1
  return r


def _base(preset):
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.shared_dir = ""          # "" -> <workdir>/sources (holds the compile cache here)
  c.data_dir = ""            # "" -> $TRANSJAX_DATA_DIR
  c.num_seeds = 2
  c.keep_period = 25         # pretraining checkpoints kept at every multiple
  c.checkpoint_steps = ()    # pretraining steps fine-tuned from (the last ends pretraining)
  c.pretrain = _lenet()
  c.pretrain.name = "pretrain"
  c.finetune = _lenet()
  return overrides.add_fields(c)   # train_overrides, data_stand_ins: see overrides.py


def smoke():
  c = _base("smoke")
  c.num_seeds = 1
  c.keep_period = 10
  c.checkpoint_steps = (10, 20, 40)
  synth = "synthetic(num_train=200,num_test=100,seed=41)"
  c.pretrain.data.train = data_spec(synth, "train")
  c.pretrain.data.test = data_spec(synth, "test")
  c.pretrain.batch_size = 32
  c.pretrain.optim.lr = 0.05
  c.finetune.data.train = data_spec("digits", "train", ("per_class:20",))
  c.finetune.data.test = data_spec("digits", "test", ("total:100",))
  c.finetune.batch_size = 32
  c.finetune.optim.lr = 0.05
  c.finetune.num_steps = 20
  c.finetune.log_every = c.finetune.eval_every = c.finetune.checkpoint_every = 20
  return c


def quick():
  c = _base("quick")
  c.keep_period = 25
  c.checkpoint_steps = (25, 50, 100, 200, 400, 800, 1600)   # 1,000 images / batch 64: 15.6 steps per epoch
  c.pretrain.data.train = data_spec("mnist", "train", ("per_class:100",))
  c.pretrain.data.test = data_spec("mnist", "test", ("total:2000",))
  target = "stand_in:a small digit target (600 images)"
  c.finetune.data.train = data_spec("usps", "train", ("per_class:60", target))
  c.finetune.data.test = data_spec("usps", "test", (target,))
  c.finetune.num_steps = 150
  c.finetune.optim.lr = 0.02
  c.finetune.log_every = c.finetune.eval_every = c.finetune.checkpoint_every = 150
  return c


def full():
  c = _base("full")
  c.num_seeds = 1
  c.keep_period = 5000
  c.checkpoint_steps = (5000, 10000, 20000, 40000, 80000, 160000)
  resnet50_protocol(c.pretrain, fine_tune_epochs=None)
  resnet50_protocol(c.finetune)
  c.pretrain.data.train = data_spec("food101", "train")
  c.pretrain.data.test = data_spec("food101", "validation")
  c.pretrain.optim.lr = 0.1
  c.finetune.data.train = data_spec("caltech_birds2011", "train")
  c.finetune.data.test = data_spec("caltech_birds2011", "test")
  c.finetune.log_every, c.finetune.eval_every, c.finetune.checkpoint_every = 100, 2000, 2000
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
