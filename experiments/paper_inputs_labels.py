r"""Paper Fig 8: vary the inputs or the labels of the pretraining task.

    python -m experiments.paper_inputs_labels --config=configs/paper_inputs_labels.py:quick \
        --workdir=runs/inputs_labels --config.data_dir=/path/to/data

Writes <workdir>/results.json (numbers, claims with computed verdicts) and the figures.
"""

from transjax import cli
from transjax.paper import inputs_labels

if __name__ == "__main__":
  cli.run_paper_app(inputs_labels, "configs/paper_inputs_labels.py")
