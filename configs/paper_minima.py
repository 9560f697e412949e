r"""Fig 3 + Fig 10: Hessian eigenvalues and landscapes at the minima, pretrained vs random.

    python -m experiments.paper_minima --config=configs/paper_minima.py:quick --workdir=runs/minima

The presets are defined in transjax/paper/presets/minima.py, where the library reads them too.
"""

from transjax.paper.presets.minima import get_config

__all__ = ["get_config"]  # what config_flags calls
