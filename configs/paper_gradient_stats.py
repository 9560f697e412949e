r"""Fig 7: gradient histograms, weight projection on gradient singular directions, gradient
scale per layer (taps); pretrained vs random initialisation, at the start of fine-tuning.

    python -m experiments.paper_gradient_stats --config=configs/paper_gradient_stats.py:quick \
        --workdir=runs/gradient_stats

The presets are defined in transjax/paper/presets/gradient_stats.py, where the library reads them too.
"""

from transjax.paper.presets.gradient_stats import get_config

__all__ = ["get_config"]  # what config_flags calls
