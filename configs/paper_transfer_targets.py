r"""Paper Table 1, Fig 2 and Table 2: one pretrained network, targets of decreasing similarity.

    python -m experiments.paper_transfer_targets --config=configs/paper_transfer_targets.py:quick \
        --workdir=runs/transfer_targets --config.data_dir=/path/to/data

The presets are defined in transjax/paper/presets/transfer_targets.py, where the library reads them too.
"""

from transjax.paper.presets.transfer_targets import get_config

__all__ = ["get_config"]  # what config_flags calls
