r"""Paper Fig 3 + Fig 10 (Hessian eigenvalues and landscapes at the minima).

    python -m experiments.minima --config=configs/paper_minima.py:quick --workdir=runs/minima

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from transjax import cli
from transjax.paper import minima

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/paper_minima.py:<smoke|quick|full>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  out = cli.run_or_exit(minima.run, _CONFIG.value, _WORKDIR.value)
  for claim in out["claims"]:
    print(f"{claim['element']}: {claim['verdict']} — {claim['ours']}")


if __name__ == "__main__":
  app.run(main)
