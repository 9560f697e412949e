r"""Paper Table 1, Fig 2, Table 2: transfer to targets of decreasing similarity.

    python -m experiments.paper_transfer_targets --config=configs/paper_transfer_targets.py:quick \
        --workdir=runs/transfer_targets --config.data_dir=/path/to/data

Writes <workdir>/results.json (numbers, claims with computed verdicts) and the figures.
"""

from transjax import cli
from transjax.paper import transfer_targets

if __name__ == "__main__":
  cli.run_paper_app(transfer_targets, "configs/paper_transfer_targets.py")
