r"""Fig 6 + Fig 11: loss variation along the gradient during training, pretrained vs random.

    python -m experiments.paper_gradient_variation \
        --config=configs/paper_gradient_variation.py:quick --workdir=runs/gradient_variation

The presets are defined in transjax/paper/presets/gradient_variation.py, where the library reads them too.
"""

from transjax.paper.presets.gradient_variation import get_config

__all__ = ["get_config"]  # what config_flags calls
