r"""Paper Fig 4 (t-SNE of the final weights).

    python -m experiments.tsne_weights --config=configs/paper_tsne_weights.py:quick --workdir=runs/tsne_weights

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from experiments import paper_main
from transjax.paper import tsne_weights

if __name__ == "__main__":
  paper_main.run_app(tsne_weights, "configs/paper_tsne_weights.py")
