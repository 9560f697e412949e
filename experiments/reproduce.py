r"""Reproduce the paper: every experiment of a preset, then `<workdir>/REPORT.md`.

    python -m experiments.reproduce --config=configs/reproduce.py:smoke
    python -m experiments.reproduce --config=configs/reproduce.py:quick \
        --config.data_dir=/path/to/data --workdir=runs/quick

Started again with the same workdir it skips finished experiments and resumes the rest.
The exit status is non-zero when an experiment failed or is missing (see REPORT.md).
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from transjax import cli
from transjax.paper import reproduce

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/reproduce.py:smoke", "configs/reproduce.py:<smoke|quick|full>.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/<preset>). "
                                + cli.LOCK_HELP)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  config = _CONFIG.value
  out = cli.run_or_exit(reproduce.run, config, _WORKDIR.value or f"runs/{config.preset}")
  print(f"Report: {out['report']}")
  if out["failed"]:
    print(f"Failed or missing experiments: {', '.join(out['failed'])}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
