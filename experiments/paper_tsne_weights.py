r"""Paper Fig 4 (t-SNE of the final weights).

    python -m experiments.paper_tsne_weights --config=configs/paper_tsne_weights.py:quick --workdir=runs/tsne_weights

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from transjax import cli
from transjax.paper import tsne_weights

if __name__ == "__main__":
  cli.run_paper_app(tsne_weights, "configs/paper_tsne_weights.py")
