r"""Paper Table 1, Fig 2, Table 2: transfer to targets of decreasing similarity.

    python -m experiments.transfer_targets --config=configs/paper_transfer_targets.py:quick \
        --workdir=runs/transfer_targets --config.data_dir=/path/to/data

Writes <workdir>/results.json (numbers, claims with computed verdicts) and the figures.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from transjax import cli
from transjax.paper import transfer_targets

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/paper_transfer_targets.py:<smoke|quick|full>", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder; a re-run resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  cli.setup_logging()
  results = cli.run_or_exit(transfer_targets.run, _CONFIG.value, _WORKDIR.value)
  print(results["summary"])
  for c in results["claims"]:
    print(f"[{c['verdict']}] {c['element']}: {c['ours']}")


if __name__ == "__main__":
  app.run(main)
