r"""Paper Fig 5 + App. B.4 (landscapes at initialisation, convergence).

    python -m experiments.init_landscapes --config=configs/paper_init_landscapes.py:quick --workdir=runs/init_landscapes

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from transjax import cli
from transjax.paper import init_landscapes

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/paper_init_landscapes.py:<smoke|quick|full>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  out = cli.run_or_exit(init_landscapes.run, _CONFIG.value, _WORKDIR.value)
  for claim in out["claims"]:
    print(f"{claim['element']}: {claim['verdict']} — {claim['ours']}")


if __name__ == "__main__":
  app.run(main)
