"""Checks the paper's Section 6 theory numerically and writes results.json + report.md.

Usage:
  python -m experiments.verify_theory --config=configs/theory.py:quick --workdir=/tmp/theory
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from theory import sweep
from transjax import cli, workdir_lock

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Theory config file with a preset, e.g. configs/theory.py:quick "
    "(presets: smoke, quick, full).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder for results.json, report.md, figures and the per-(m, seed) "
    "cache that lets a killed run resume. " + cli.LOCK_HELP)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  cli.run_or_exit(workdir_lock.locked()(sweep.run), _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
