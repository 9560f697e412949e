r"""Paper Fig 6 + Fig 11 (loss variation along the gradient).

    python -m experiments.paper_gradient_variation --config=configs/paper_gradient_variation.py:quick --workdir=runs/gradient_variation

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from transjax import cli
from transjax.paper import gradient_variation

if __name__ == "__main__":
  cli.run_paper_app(gradient_variation, "configs/paper_gradient_variation.py")
