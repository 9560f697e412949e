r"""Paper Fig 3 + Fig 10 (Hessian eigenvalues and landscapes at the minima).

    python -m experiments.paper_minima --config=configs/paper_minima.py:quick --workdir=runs/minima

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from transjax import cli
from transjax.paper import minima

if __name__ == "__main__":
  cli.run_paper_app(minima, "configs/paper_minima.py")
