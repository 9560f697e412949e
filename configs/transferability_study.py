r"""The transferability study: do the scores rank a model zoo as fine-tuning does?

    python -m experiments.transferability_study \
        --config=configs/transferability_study.py:quick --workdir=runs/transferability_quick

Presets:
  smoke: no data files (built-in synthetic shapes and scikit-learn digits), 4 LeNet
         candidates from 2 short pretraining runs, 2 targets of 100 training images,
         2 learning rates x 2 seeds of 30 steps, 5 of the scores; under a minute on 2
         CPU cores (most of it JAX compiling).
  quick: the study of issue 27 on 2 CPU cores in about 60-90 minutes (see below).

quick, and how it is sized for about 60-90 minutes on 2 cores (LeNet: ~3 ms a training step,
resnet_tiny: ~70 ms, measured by benchmark_train; on a machine shared with other jobs, a load
of ~11 on 2 cores, the first run measured ~10 minutes of pretraining, ~20 s a pair for the
scores and the probe, 1-4 s a LeNet fine-tune):
  zoo: LeNet-5 pretrained here on MNIST, Fashion-MNIST, USPS, shapes (the synthetic shapes
    task) and grey CIFAR-10 (split A of its test file), each read at 3 pretraining lengths
    (checkpoints at 100, 500 and 2,000 steps of one run, batch 64), plus the wider
    resnet_tiny (16-64 channels, BatchNorm) pretrained on MNIST and grey CIFAR-10 for 600
    steps: 17 candidates (LeNet 25-45 s a source, resnet_tiny ~4 min). The ImageNet EfficientNet-Lite
    candidates are left out (`imagenet` is empty): a Lite network at the 64 px it needs
    takes ~1 s a training step on these cores, so fine-tuning even one on 5 targets x
    (3 learning rates + 2 seeds) x 150 steps would take hours; `rank_models` scores them.
  targets: USPS, Fashion-MNIST, MNIST (their test files), grey CIFAR-10 (split B) and
    shapes: 500 training, 200 validation, 1,000 test images each, 10 classes; a candidate
    pretrained on a target's data is never fine-tuned or scored on it (13-14 candidates a
    target, 68 pairs in all).
  fine-tuning: 150 SGD steps (momentum 0.9, weight decay 5e-4, batch 64, ~19 epochs of
    the 500 images), learning rate from (0.003, 0.01, 0.03) by validation accuracy at the
    first seed, then 2 more seeds at the chosen rate: 5 runs a pair, 340 runs.
  scores: every score of `transferability.SCORES` and the two empirical-NTK theory scores
    (head layer) on the 500 training images the fine-tuning sees; linear probe: logistic
    regression on the frozen features, C from (0.1, 1, 10) by validation accuracy.
"""

import ml_collections

from transjax import cli
from transjax.config import data_spec


def _lenet_source(name, domain, train, test, checkpoints, *, model="lenet", lr=0.01):
  return {"name": name, "domain": domain, "model": model, "input_size": 28,
          "in_channels": 1, "train": train, "test": test,
          "checkpoints": tuple(checkpoints), "lr": lr, "batch_size": 64}


def _target(name, domain, data, num_train, num_val, num_test):
  return {"name": name, "domain": domain, "data": data, "num_train": num_train,
          "num_val": num_val, "num_test": num_test}


_ALL_SCORES = ("logme", "leep", "nce", "hscore", "shrinkage_hscore", "sfda", "nleep", "gbc",
               "transrate", "parc", "knn", "theory_deviation", "theory_generalisation",
               "ntk_deviation", "ntk_generalisation")


def _base():
  c = ml_collections.ConfigDict()
  c.sources = ()            # pretrained here: see _lenet_source
  c.imagenet = ()           # "imagenet:efficientnet_lite0", ...: candidates as they are
  c.image_size = 64         # input side of the imagenet candidates
  c.targets = ()
  c.finetune = ml_collections.ConfigDict()
  c.finetune.lrs = (0.003, 0.01, 0.03)
  c.finetune.seeds = (0, 1, 2)
  c.finetune.num_steps = 150
  c.finetune.batch_size = 64
  c.finetune.momentum = 0.9
  c.finetune.weight_decay = 5e-4
  c.probe_cs = (0.1, 1.0, 10.0)   # inverse L2 strengths of the linear probe
  c.scores = _ALL_SCORES
  c.ntk_layers = "fc"             # layers free in the ntk_* scores' kernel
  c.bootstrap = 1000              # resamples for the intervals
  c.data_dir = ""                 # local data (empty: $TRANSJAX_DATA_DIR)
  c.seed = 0                      # target samples and splits
  return c


def smoke():
  c = _base()
  shapes = "synthetic(num_train=300,num_test=100,seed=11)"
  noisy = "synthetic(num_train=300,num_test=100,seed=12,noise=0.3)"
  c.sources = (
      _lenet_source("shapes", "shapes", data_spec(shapes, "train"), data_spec(shapes, "test"),
                    (20, 40), lr=0.05),
      _lenet_source("noisy_shapes", "noisy_shapes", data_spec(noisy, "train"),
                    data_spec(noisy, "test"), (20, 40), lr=0.05),
  )
  c.targets = (
      _target("digits", "digits", data_spec("digits", "train"), 100, 50, 100),
      _target("noisy_shapes", "noisy_shapes",
              data_spec("synthetic(num_train=400,num_test=10,seed=21,noise=0.3)", "train"),
              100, 50, 100),
  )
  c.finetune.lrs = (0.01, 0.05)
  c.finetune.seeds = (0, 1)
  c.finetune.num_steps = 30
  c.finetune.batch_size = 32
  c.probe_cs = (1.0,)
  # A baseline, LEEP (source head), the control and both theory forms: every score's first
  # call compiles (all fifteen: ~40 s here); tests/test_transferability*.py test them all.
  c.scores = ("logme", "leep", "knn", "theory_deviation", "ntk_deviation")
  c.bootstrap = 100
  return c


def quick():
  c = _base()
  lengths = (100, 500, 2000)
  per_class = ("per_class:1000",)
  cifar_a = ("split_train:0.5", "grey")
  shapes_train = data_spec("synthetic(num_train=10000,num_test=1000,seed=11)", "train")
  shapes_test = data_spec("synthetic(num_train=10000,num_test=1000,seed=11)", "test")
  c.sources = (
      _lenet_source("mnist", "mnist", data_spec("mnist", "train", per_class),
                    data_spec("mnist", "test", ("total:1000",)), lengths),
      _lenet_source("fashion_mnist", "fashion_mnist",
                    data_spec("fashion_mnist", "train", per_class),
                    data_spec("fashion_mnist", "test", ("total:1000",)), lengths),
      _lenet_source("usps", "usps", data_spec("usps", "train"),
                    data_spec("usps", "test"), lengths),
      _lenet_source("shapes", "shapes", shapes_train, shapes_test, lengths),
      _lenet_source("cifar10_grey", "cifar10", data_spec("cifar10", "test", cifar_a),
                    data_spec("cifar10", "test", ("split_test:0.5", "grey", "total:1000")),
                    lengths),
      _lenet_source("mnist_wide", "mnist", data_spec("mnist", "train", per_class),
                    data_spec("mnist", "test", ("total:1000",)), (600,),
                    model="resnet_tiny", lr=0.05),
      _lenet_source("cifar10_grey_wide", "cifar10", data_spec("cifar10", "test", cifar_a),
                    data_spec("cifar10", "test", ("split_test:0.5", "grey", "total:1000")), (600,),
                    model="resnet_tiny", lr=0.05),
  )
  c.targets = (
      _target("usps", "usps", data_spec("usps", "test"), 500, 200, 1000),
      _target("fashion_mnist", "fashion_mnist", data_spec("fashion_mnist", "test"),
              500, 200, 1000),
      _target("cifar10_grey", "cifar10",
              data_spec("cifar10", "test", ("split_test:0.5", "grey")), 500, 200, 1000),
      _target("shapes", "shapes",
              data_spec("synthetic(num_train=10,num_test=2000,seed=31)", "test"),
              500, 200, 1000),
      _target("mnist", "mnist", data_spec("mnist", "test"), 500, 200, 1000),
  )
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick}, __file__)
