r"""Paper Fig 5 + App. B.4 (landscapes at initialisation, convergence).

    python -m experiments.paper_init_landscapes --config=configs/paper_init_landscapes.py:quick --workdir=runs/init_landscapes

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from transjax import cli
from transjax.paper import init_landscapes

if __name__ == "__main__":
  cli.run_paper_app(init_landscapes, "configs/paper_init_landscapes.py")
