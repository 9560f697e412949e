"""Checks the paper's Section 6 theory numerically and writes results.json + report.md.

Usage:
  python -m experiments.verify_theory --config=configs/theory.py:quick --workdir=/tmp/theory
"""

from absl import app

from theory import presets, sweep
from transjax import cli, workdir_lock

# The fields of theory's presets: a config file that sets another is refused in one line
# with the close names, before any work.
_FLAGS = cli.BinaryFlags(lambda: cli.define_run_flags(
    "Theory config file with a preset, e.g. configs/theory.py:quick (presets: smoke, quick, "
    "full).",
    "Output folder for results.json, report.md, figures and the per-(m, seed) cache that "
    "lets a killed run resume.", fields=cli.preset_fields(presets.get_config)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  cli.run_or_exit(workdir_lock.locked()(sweep.run), _FLAGS.config, _FLAGS.workdir)


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
