r"""Reproduce the paper: every experiment of a preset, then `<workdir>/REPORT.md`.

    python -m experiments.reproduce --config=configs/reproduce.py:smoke
    python -m experiments.reproduce --config=configs/reproduce.py:quick \
        --config.data_dir=/path/to/data --workdir=runs/quick

Installed, the same program is the console command `transjax-reproduce` (`--config=quick`).
Started again with the same workdir it skips finished experiments and resumes the rest.
The exit status is non-zero when an experiment failed (see REPORT.md).
"""

from transjax.paper import reproduce_app

if __name__ == "__main__":
  reproduce_app.main()
