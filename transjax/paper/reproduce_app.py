"""The reproduce job as a program: `transjax-reproduce` and `python -m experiments.reproduce`.

    transjax-reproduce --workdir=runs/smoke                       # built-in data, minutes
    transjax-reproduce --config=quick --config.data_dir=/data --workdir=runs/quick

`--config` takes a preset name of the installed presets (transjax/paper/presets/reproduce.py)
or, like every binary, a config file with its preset (`configs/reproduce.py:quick`).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from transjax import cli
from transjax.paper import reproduce
from transjax.paper.presets import reproduce as reproduce_presets

PRESET_FILE = os.path.abspath(reproduce_presets.__file__)
PRESETS = ("smoke", "quick", "full")

def _with_preset_names(argv: list[str]) -> list[str]:
  """`--config=quick` -> `--config=<installed presets file>:quick`."""
  out = []
  for arg in argv:
    name = arg.split("=", 1)[1] if arg.startswith("--config=") else None
    out.append(f"--config={PRESET_FILE}:{name}" if name in PRESETS else arg)
  return out


def main() -> None:
  """Entry point of the `transjax-reproduce` console command (defines its flags, so that
  importing this module defines none)."""
  config_flag = config_flags.DEFINE_config_file(
      "config", f"{PRESET_FILE}:smoke",
      "A preset (smoke | quick | full) or a config file with one, e.g. "
      "configs/reproduce.py:quick. Override any field, e.g. --config.data_dir=/path/to/data "
      "--config.experiments=minima,theory.", lock_config=True)
  workdir_flag = flags.DEFINE_string(
      "workdir", None, "Output folder (default runs/<preset>); run again to resume it. "
      + cli.LOCK_HELP)
  for name in ("config", "workdir"):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])

  def run(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    cli.setup_logging()
    config = config_flag.value
    out = cli.run_or_exit(reproduce.run, config, workdir_flag.value or f"runs/{config.preset}")
    print(f"Report: {out['report']}")
    if out["failed"]:
      print(f"Failed experiments: {', '.join(out['failed'])}", file=sys.stderr)
      sys.exit(1)

  app.run(run, flags_parser=lambda argv: cli.parse_flags(_with_preset_names(argv)))
