r"""t-SNE of the weights of many runs, coloured by dataset, marked by initialisation (Fig 4).

    python -m experiments.weight_tsne --config=configs/weight_tsne.py:quick \
        --config.checkpoints=runs/a,runs/b,runs/c --workdir=runs/tsne

Presets: smoke / quick / full differ in perplexity and t-SNE iterations; the head `fc` is
left out by default (it is re-initialised per target). `inits` optionally names each run's
initialisation (comma-separated, same order); otherwise it is read from the run's config.
"""

import ml_collections

from transjax import cli


def _base():
  c = ml_collections.ConfigDict()
  c.checkpoints = "runs/lenet_synthetic_smoke"
  c.which = "final"
  c.inits = ""
  c.exclude_layers = "fc"
  c.perplexity = 30.0
  c.seed = 0
  return c


def smoke():
  c = _base()
  c.perplexity = 5.0
  return c


def quick():
  return _base()


def full():
  c = _base()
  c.checkpoints = ("runs/resnet50_cars_finetune,runs/resnet50_cars_scratch,"
                   "runs/resnet50_birds_finetune,runs/resnet50_birds_scratch")
  return c


def get_config(arg=None):
  return cli.preset(arg, {"smoke": smoke, "quick": quick, "full": full}, __file__)
