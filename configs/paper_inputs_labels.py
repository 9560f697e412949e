r"""Paper Fig 8: vary the inputs (8a) or the labels (8b) of the pretraining task.

    python -m experiments.paper_inputs_labels --config=configs/paper_inputs_labels.py:quick \
        --workdir=runs/inputs_labels --config.data_dir=/path/to/data

The presets are defined in transjax/paper/presets/inputs_labels.py, where the library reads them too.
"""

from transjax.paper.presets.inputs_labels import get_config

__all__ = ["get_config"]  # what config_flags calls
