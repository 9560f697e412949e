r"""Paper Fig 8: vary the inputs (8a) or the labels (8b) of the pretraining task.

    python -m experiments.paper_inputs_labels --config=configs/paper_inputs_labels.py:quick \
        --workdir=runs/inputs_labels --config.data_dir=/path/to/data

Presets:
  smoke: synthetic-shape sources and targets (built in); 1 seed, 30 steps; seconds.
  quick: 8a: LeNets pretrained on MNIST, upside-down MNIST, Fashion-MNIST (shared sources,
         1,000 images per class each) fine-tuned on 600 USPS digits (60 per class; stand-in
         for the paper's 600 SVHN images) and from scratch. 8b: LeNets pretrained on
         CIFAR-10 split A with real labels / colour-of-upper-part labels, fine-tuned on 50
         per class of split B (stand-in for Webcam) and from scratch. 3 seeds.
  full:  8a on 600 SVHN images (TFDS svhn_cropped, grey) with the paper's LeNet protocol
         (100 epochs); 8b with the ResNet-50 Caltech-101 sources fine-tuned on Office-31
         Webcam, read as the image folder <data_dir>/office31/webcam/images/<class>/ (as
         Office-31 is distributed; a seeded 80/20 train/test split). 8c/d: ResNet-50
         fine-tuned from ImageNet (torchvision) and Places365 weights (config.scenes.weights)
         on CUB-200 (TFDS caltech_birds2011) and MIT-Indoor, read as the image folder
         <data_dir>/mit_indoor67/Images/<class>/ (as distributed; a seeded 80/20 split
         instead of the official TrainImages/TestImages lists), paper protocol. Smoke and
         quick have no weights: 8c/d "not run".
"""

import ml_collections

from transjax import cli
from transjax.config import data_spec, resnet50_protocol, training_defaults
from transjax.paper import overrides


def _lenet(size: int, channels: int) -> ml_collections.ConfigDict:
  r = training_defaults()
  r.model.name = "lenet"
  r.model.input_size = size
  r.model.in_channels = channels
  return r


def _base(preset: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset          # preset of the shared sources (sources.ensure_source)
  c.shared_dir = ""          # "" -> <workdir>/sources
  c.data_dir = ""            # "" -> $TRANSJAX_DATA_DIR
  c.num_seeds = 3
  c.inputs = ml_collections.ConfigDict()
  c.inputs.sources = ("mnist", "mnist_upside_down", "fashion_mnist")
  c.inputs.run = _lenet(28, 1)
  c.labels = ml_collections.ConfigDict()
  c.labels.sources = ("cifar_real", "cifar_colour")
  c.labels.run = _lenet(32, 3)
  # Fig 8c/d: weights name -> torchvision-format state dict; target name -> (train, test).
  c.scenes = ml_collections.ConfigDict()
  c.scenes.weights = ml_collections.ConfigDict()
  c.scenes.targets = ml_collections.ConfigDict()
  c.scenes.run = training_defaults()
  return overrides.add_fields(c)   # train_overrides, data_stand_ins: see overrides.py


def _short(r, steps: int, every: int):
  r.num_steps = steps
  r.log_every = r.eval_every = every
  r.checkpoint_every = steps


def smoke():
  c = _base("smoke")
  c.num_seeds = 1
  synth = "synthetic(num_train=200,num_test=100,seed=31)"
  c.inputs.target_train = data_spec(synth, "train")
  c.inputs.target_test = data_spec(synth, "test")
  rgb = "synthetic(num_train=200,num_test=100,seed=32,channels=3,size=32)"
  c.labels.target_train = data_spec(rgb, "train")
  c.labels.target_test = data_spec(rgb, "test")
  for r in (c.inputs.run, c.labels.run):
    _short(r, 30, 10)
    r.batch_size = 32
    r.optim.lr = 0.05
  return c


def quick():
  c = _base("quick")
  svhn = "stand_in:SVHN (600 target digits)"
  c.inputs.target_train = data_spec("usps", "train", ("per_class:60", svhn))
  c.inputs.target_test = data_spec("usps", "test", (svhn,))
  webcam = "stand_in:Webcam (small target with real labels)"
  # Split B of the CIFAR-10 file (split A trained the sources); seed 0 for every run so
  # the target never overlaps split A.
  c.labels.target_train = dict(data_spec(
      "cifar10", "test", ("split_test:0.5", "split_train:0.5", "per_class:50", webcam)), seed=0)
  c.labels.target_test = dict(data_spec(
      "cifar10", "test", ("split_test:0.5", "split_test:0.5", webcam)), seed=0)
  _short(c.inputs.run, 200, 25)
  c.inputs.run.optim.lr = 0.02
  _short(c.labels.run, 200, 25)
  c.labels.run.optim.lr = 0.02
  return c


def full():
  c = _base("full")
  c.inputs.target_train = data_spec("svhn_cropped", "train", ("per_class:60", "grey"))
  c.inputs.target_test = data_spec("svhn_cropped", "test", ("grey",))
  c.inputs.run.num_epochs = 100
  c.inputs.run.log_every, c.inputs.run.eval_every, c.inputs.run.checkpoint_every = 50, 500, 500
  r = resnet50_protocol(c.labels.run)
  r.log_every, r.eval_every, r.checkpoint_every = 50, 500, 500
  webcam = "folder:office31/webcam/images"
  c.labels.target_train = data_spec(webcam, "all", ("split_train:0.8",))
  c.labels.target_test = data_spec(webcam, "all", ("split_test:0.8",))
  c.scenes.weights = {"imagenet": "weights/resnet50-0676ba61.pth",
                      "places": "weights/resnet50_places365.pth"}
  c.scenes.targets = {
      "cub200": (data_spec("caltech_birds2011", "train"), data_spec("caltech_birds2011", "test")),
      "mit_indoor": (data_spec("folder:mit_indoor67/Images", "all", ("split_train:0.8",)),
                     data_spec("folder:mit_indoor67/Images", "all", ("split_test:0.8",))),
  }
  c.scenes.run = ml_collections.ConfigDict(r.to_dict())
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
