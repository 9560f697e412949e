r"""Trains a model: pretraining on a source, or transfer to a target (scratch, fixed, finetune).

    python -m experiments.train --config=configs/lenet_mnist.py:quick --workdir=runs/lenet_mnist
    python -m experiments.train --config=configs/lenet_mnist_to_usps.py:quick \
        --config.init_from=runs/lenet_mnist --config.mode=finetune --workdir=runs/usps_finetune

The config decides what a run is: config.mode scratch (random init) | fixed (pretrained
backbone frozen, new head trained) | finetune (all layers trained from the pretrained
weights, new head), with config.init_from the pretraining run folder (or a torchvision
weights file). `experiments.pretrain` and `experiments.finetune` are this binary under the
names the README's commands use.
"""

from __future__ import annotations

from absl import app

from transjax import cli
from transjax import config as config_lib
from transjax import distributed
from transjax import train as train_lib
from transjax import train_callbacks

_FLAGS = cli.BinaryFlags(lambda: cli.define_run_flags(
    "Training config: a file under configs/ and a preset (smoke | quick | full), e.g. "
    "configs/lenet_mnist.py:quick (pretraining) or configs/lenet_mnist_to_usps.py:quick "
    "(transfer: config.mode picks scratch | fixed | finetune and config.init_from the "
    "pretraining run folder or torchvision weights file). Any field can be overridden, e.g. "
    "--config.optim.lr=0.02 --config.num_epochs=5 --config.data.data_dir=/path/to/data.",
    "Run folder for config.json, metrics.jsonl, results.json, checkpoints/ and figures. "
    "Running again with the same folder resumes from its last checkpoint.",
    fields=config_lib.training_defaults))


def run(config, workdir: str) -> None:
  """Trains `config` into `workdir` (with today's outputs: the deviation, the training
  curves) and prints the final errors; user errors end the program in one line."""
  cli.setup_logging()
  # One process per host under jax.distributed when a role is given (flags, TRANSJAX_*
  # variables, a detected cluster); a failure in any process ends it at once.
  cli.run_or_exit(distributed.initialize)
  with distributed.exit_at_once_on_failure():
    results = cli.run_or_exit(train_lib.train, config, workdir, train_callbacks.standard())
  if not distributed.is_writer():
    return
  f = results["final"]
  print(f"{results['name']} ({results['mode']}): train error {100 * f['train_error']:.2f}%  "
        f"test error {100 * f['test_error']:.2f}%  deviation last layer "
        f"{results['deviation']['last_layer']:.4f}  sum {results['deviation']['sum']:.4f}  "
        f"-> {workdir}/results.json")


def main() -> None:
  """The binary (also under its alias names): the flags, then `run` on them."""
  _FLAGS.define()

  def main_(argv):
    del argv
    run(_FLAGS.config, _FLAGS.workdir)

  app.run(main_, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  main()
