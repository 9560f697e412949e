r"""Fig 5 + Appendix B.4: per-layer loss landscapes at initialisation, pretrained vs random,
and the convergence of fine-tuning vs training from scratch.

    python -m experiments.paper_init_landscapes --config=configs/paper_init_landscapes.py:quick \
        --workdir=runs/init_landscapes

The presets are defined in transjax/paper/presets/init_landscapes.py, where the library reads them too.
"""

from transjax.paper.presets.init_landscapes import get_config

__all__ = ["get_config"]  # what config_flags calls
