r"""The whole reproduction: every paper experiment of a preset, then REPORT.md.

    python -m experiments.reproduce --config=configs/reproduce.py:smoke   # ~3 min, built-in data
    python -m experiments.reproduce --config=configs/reproduce.py:quick \
        --config.data_dir=/path/to/data --workdir=runs/quick            # ~30 min on 2 CPU cores
    python -m experiments.reproduce --config=configs/reproduce.py:full --workdir=runs/full

Each experiment runs with the same-named preset of its own config file
(transjax/paper/presets/<name>.py; the theory section uses theory/presets.py) unless
`config.presets.<name>` says otherwise. Experiments write into `<workdir>/<name>/`; the
shared source models and fine-tuning pairs live in `<workdir>/sources/`.

Presets:
  smoke: built-in data only (synthetic shapes, sklearn digits); every analysis tiny.
  quick: local MNIST / Fashion-MNIST / USPS / CIFAR-10 files (config.data_dir or
         $TRANSJAX_DATA_DIR), LeNet, with stand-ins named in the report.
  full:  the paper's ResNet-50 settings on TFDS datasets (needs accelerators and the data).
"""

import ml_collections

from transjax import cli
from transjax.paper import overrides

# Order matters: part A's experiments train the shared sources the analyses reuse.
EXPERIMENTS = ("transfer_targets", "inputs_labels", "pretrain_epochs", "minima",
               "tsne_weights", "init_landscapes", "gradient_variation", "gradient_stats",
               "theory")


def _make(preset):
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.data_dir = ""                     # local data files; empty: $TRANSJAX_DATA_DIR
  c.experiments = EXPERIMENTS         # run in this order; a subset is fine
  c.sources = () if preset == "full" else ("mnist",)   # shared sources trained up front
  c.presets = ml_collections.ConfigDict({name: preset for name in EXPERIMENTS})
  c.compilation_cache = True          # persistent XLA cache under <workdir>/.jax_cache
  # Smoke runs are compile-bound on CPU: jax_disable_most_optimizations roughly halves it.
  c.fast_compile = preset == "smoke"
  # train_overrides / data_stand_ins: passed to every experiment (transjax/paper/overrides.py)
  return overrides.add_fields(c)


def get_config(arg=None):
  return cli.preset(arg, {p: (lambda p=p: _make(p)) for p in ("smoke", "quick", "full")},
                    __file__)
