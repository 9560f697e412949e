r"""Paper Fig 8: vary the inputs or the labels of the pretraining task.

    python -m experiments.inputs_labels --config=configs/paper_inputs_labels.py:quick \
        --workdir=runs/inputs_labels --config.data_dir=/path/to/data

Writes <workdir>/results.json (numbers, claims with computed verdicts) and the figures.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from transjax import cli
from transjax.paper import inputs_labels

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/paper_inputs_labels.py:<smoke|quick|full>", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder; a re-run resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  cli.setup_logging()
  results = cli.run_or_exit(inputs_labels.run, _CONFIG.value, _WORKDIR.value)
  print(results["summary"])
  for c in results["claims"]:
    print(f"[{c['verdict']}] {c['element']}: {c['ours']}")


if __name__ == "__main__":
  app.run(main)
