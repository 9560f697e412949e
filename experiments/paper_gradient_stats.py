r"""Paper Fig 7 (gradient statistics).

    python -m experiments.paper_gradient_stats --config=configs/paper_gradient_stats.py:quick --workdir=runs/gradient_stats

Writes results.json (numbers, claims with computed verdicts) and the figures into --workdir.
"""

from transjax import cli
from transjax.paper import gradient_stats

if __name__ == "__main__":
  cli.run_paper_app(gradient_stats, "configs/paper_gradient_stats.py")
