r"""Paper Fig 9: transferability against pretraining epochs.

    python -m experiments.paper_pretrain_epochs --config=configs/paper_pretrain_epochs.py:quick \
        --workdir=runs/pretrain_epochs --config.data_dir=/path/to/data

One pretraining run keeps a checkpoint at each of config.checkpoint_steps (multiples of
config.keep_period); each checkpoint is fine-tuned on the target (config.num_seeds times).

The presets are defined in transjax/paper/presets/pretrain_epochs.py, where the library reads them too.
"""

from transjax.paper.presets.pretrain_epochs import get_config

__all__ = ["get_config"]  # what config_flags calls
