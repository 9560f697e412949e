r"""Paper Fig 8: vary the inputs or the labels of the pretraining task.

    python -m experiments.inputs_labels --config=configs/paper_inputs_labels.py:quick \
        --workdir=runs/inputs_labels --config.data_dir=/path/to/data

Writes <workdir>/results.json (numbers, claims with computed verdicts) and the figures.
"""

from experiments import paper_main
from transjax.paper import inputs_labels

if __name__ == "__main__":
  paper_main.run_app(inputs_labels, "configs/paper_inputs_labels.py")
