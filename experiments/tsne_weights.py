r"""Paper Fig 4 (t-SNE of the final weights).

    python -m experiments.tsne_weights --config=configs/paper_tsne_weights.py:quick --workdir=runs/tsne_weights

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from transjax import cli
from transjax.paper import tsne_weights

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/paper_tsne_weights.py:<smoke|quick|full>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  out = cli.run_or_exit(tsne_weights.run, _CONFIG.value, _WORKDIR.value)
  for claim in out["claims"]:
    print(f"{claim['element']}: {claim['verdict']} — {claim['ours']}")


if __name__ == "__main__":
  app.run(main)
