"""Config of experiments/verify_theory.py: `--config=configs/theory.py:<preset>`.

The presets are defined in theory/presets.py, where the library reads them too.
"""

from theory.presets import get_config

__all__ = ["get_config"]  # what config_flags calls
