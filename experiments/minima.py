r"""Paper Fig 3 + Fig 10 (Hessian eigenvalues and landscapes at the minima).

    python -m experiments.minima --config=configs/paper_minima.py:quick --workdir=runs/minima

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from experiments import paper_main
from transjax.paper import minima

if __name__ == "__main__":
  paper_main.run_app(minima, "configs/paper_minima.py")
