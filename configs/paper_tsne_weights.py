r"""Fig 4: t-SNE of the final weights over several targets x {two pretrained sources, random}.

    python -m experiments.paper_tsne_weights --config=configs/paper_tsne_weights.py:quick \
        --workdir=runs/tsne_weights

The presets are defined in transjax/paper/presets/tsne_weights.py, where the library reads them too.
"""

from transjax.paper.presets.tsne_weights import get_config

__all__ = ["get_config"]  # what config_flags calls
