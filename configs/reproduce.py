r"""The whole reproduction: every paper experiment of a preset, then REPORT.md.

    python -m experiments.reproduce --config=configs/reproduce.py:smoke   # ~3 min, built-in data
    python -m experiments.reproduce --config=configs/reproduce.py:quick \
        --config.data_dir=/path/to/data --workdir=runs/quick            # ~30 min on 2 CPU cores
    python -m experiments.reproduce --config=configs/reproduce.py:full --workdir=runs/full

Each experiment runs with the same-named preset of its own config file
(configs/paper_<name>.py; the theory section uses configs/theory.py) unless
`config.presets.<name>` says otherwise. Experiments write into `<workdir>/<name>/`; the
shared source models and fine-tuning pairs live in `<workdir>/sources/`.

The presets are defined in transjax/paper/presets/reproduce.py, where the library reads them too.
"""

from transjax.paper.presets.reproduce import get_config

__all__ = ["get_config"]  # what config_flags calls
