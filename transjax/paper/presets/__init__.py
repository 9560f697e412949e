"""The presets of every paper experiment: `<name>.get_config(preset)`, smoke | quick | full.

The library reads them here (the reproduce job); the binaries' config files
`configs/paper_<name>.py` re-export them, so `--config=configs/paper_<name>.py:quick` and
`--config.<field>=...` overrides work as for any config file.
"""

from transjax.paper.presets import (gradient_stats, gradient_variation, init_landscapes,
                                    inputs_labels, minima, pretrain_epochs, reproduce,
                                    transfer_targets, tsne_weights)

__all__ = ["gradient_stats", "gradient_variation", "init_landscapes", "inputs_labels", "minima",
           "pretrain_epochs", "reproduce", "transfer_targets", "tsne_weights"]
