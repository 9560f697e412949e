r"""Config of `python -m experiments.reproduce --config=configs/reproduce.py:<preset>`.

The presets (smoke | quick | full) are defined in transjax/paper/presets/reproduce.py,
where the library and the console command `transjax-reproduce` read them too.
"""

from transjax.paper.presets.reproduce import get_config

__all__ = ["get_config"]  # what config_flags calls
