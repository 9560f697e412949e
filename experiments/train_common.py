"""The flags the training binaries share, and their one call into transjax.train."""

from __future__ import annotations

from absl import app

from transjax import cli
from transjax import config as config_lib
from transjax import distributed
from transjax import train
from transjax import train_callbacks


def binary_flags(config_help: str) -> cli.BinaryFlags:
  """--config (a training config; `config_help` says which) and --workdir, defined on
  `define()` (when a training binary runs, not when it is imported)."""
  return cli.BinaryFlags(lambda: cli.define_run_flags(
      config_help + " Any field can be overridden, e.g. --config.optim.lr=0.02 "
      "--config.num_epochs=5 --config.data.data_dir=/path/to/data.",
      "Run folder for config.json, metrics.jsonl, results.json, checkpoints/ and figures. "
      "Running again with the same folder resumes from its last checkpoint.",
      fields=config_lib.training_defaults))


def main(config_help: str) -> None:
  """The whole of a training binary: its flags, then `run` on them."""
  run_flags = binary_flags(config_help).define()

  def main_(argv):
    del argv
    run(run_flags.config, run_flags.workdir)

  app.run(main_, flags_parser=cli.parse_flags)


def run(config, workdir: str) -> None:
  cli.setup_logging()
  # One process per host under jax.distributed when a role is given (flags, TRANSJAX_*
  # variables, a detected cluster); a failure in any process ends it at once.
  cli.run_or_exit(distributed.initialize)
  with distributed.exit_at_once_on_failure():
    results = cli.run_or_exit(train.train, config, workdir, train_callbacks.standard())
  if not distributed.is_writer():
    return
  f = results["final"]
  print(f"{results['name']} ({results['mode']}): train error {100 * f['train_error']:.2f}%  "
        f"test error {100 * f['test_error']:.2f}%  deviation last layer "
        f"{results['deviation']['last_layer']:.4f}  sum {results['deviation']['sum']:.4f}  "
        f"-> {workdir}/results.json")
