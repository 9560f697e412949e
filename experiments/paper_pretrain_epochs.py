r"""Paper Fig 9: transferability against pretraining epochs.

    python -m experiments.paper_pretrain_epochs --config=configs/paper_pretrain_epochs.py:quick \
        --workdir=runs/pretrain_epochs --config.data_dir=/path/to/data

Writes <workdir>/results.json (numbers, claims with computed verdicts) and the figures.
"""

from transjax import cli
from transjax.paper import pretrain_epochs

if __name__ == "__main__":
  cli.run_paper_app(pretrain_epochs, "configs/paper_pretrain_epochs.py")
