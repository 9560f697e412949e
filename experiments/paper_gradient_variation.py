r"""Paper Fig 6 + Fig 11 (loss variation along the gradient).

    python -m experiments.paper_gradient_variation --config=configs/paper_gradient_variation.py:quick --workdir=runs/gradient_variation

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from experiments import paper_main
from transjax.paper import gradient_variation

if __name__ == "__main__":
  paper_main.run_app(gradient_variation, "configs/paper_gradient_variation.py")
