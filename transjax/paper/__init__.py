"""The paper's tables and figures as library calls: one module per experiment.

Each experiment module exposes `run(config, workdir) -> dict` (writes workdir/results.json
and figures; resumable, because its training runs resume) and
`claims(results) -> list[Claim]` (the paper's statements checked against our numbers).
`experiments/<name>.py` binaries and `experiments/reproduce.py` call them.
"""
