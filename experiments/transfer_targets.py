r"""Paper Table 1, Fig 2, Table 2: transfer to targets of decreasing similarity.

    python -m experiments.transfer_targets --config=configs/paper_transfer_targets.py:quick \
        --workdir=runs/transfer_targets --config.data_dir=/path/to/data

Writes <workdir>/results.json (numbers, claims with computed verdicts) and the figures.
"""

from experiments import paper_main
from transjax.paper import transfer_targets

if __name__ == "__main__":
  paper_main.run_app(transfer_targets, "configs/paper_transfer_targets.py")
