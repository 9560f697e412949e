r"""Top-k Hessian eigenvalues (Lanczos or power iteration) and Hutchinson trace of runs.

    python -m experiments.hessian --config=configs/hessian.py:quick \
        --config.checkpoints=runs/lenet_mnist --workdir=runs/hessian

Writes results.json (eigenvalues (descending), trace, hvp_count, method, data of the first
run at the top level; every run under "runs") and eigenvalues.png (bars, one colour per run). The loss uses BatchNorm running statistics.
"""

import os

from absl import app

from transjax import cli, distributed, plotting, workdir_lock
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import batchnorm, hessian, validate


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  from configs import hessian as canonical  # pylint: disable=import-outside-toplevel
  return cli.define_run_flags(
      "configs/hessian.py:<smoke|quick|full>; override fields with "
      "--config.checkpoints=a,b --config.top_k=20 ...",
      "Folder for results.json and eigenvalues.png.",
      fields=cli.preset_fields(canonical.get_config))


_FLAGS = cli.BinaryFlags(_define_flags)


@workdir_lock.locked()
def run(config, workdir: str) -> dict:
  """Measures every run in config.checkpoints; writes results.json (+ a bar plot)."""
  layers = cli.layer_selection(config.layers)  # refuse an empty selection first
  validate.hessian(config)
  batchnorm.check_mode(config.bn_mode)
  run_dirs = cli.split_csv(config.checkpoints)
  for run_dir in run_dirs:  # top-k and Krylov size against each run's parameters, from shapes
    validate.hessian_for_run(config, run_dir, layers)
  workdir = results_lib.ensure_workdir(workdir)
  out = {"config": config.to_dict(), "runs": []}
  for run_dir in run_dirs:
    r = runs_lib.load_run(run_dir, config.which)
    batch = r.batch(config.split, config.num_samples, config.seed)
    validate.notice_fewer_samples(batch, config)
    # Several processes: parameters in every one, the samples split over them.
    params, state = distributed.for_all_processes((r.params, r.state))
    op = hessian.HessianOperator(r.loss_fn, params, state,
                                 distributed.split_over_processes(batch),
                                 mask=layers, bn_mode=config.bn_mode)
    if config.method == "lanczos":
      top = hessian.lanczos_top_k(op, config.top_k, tol=config.tol,
                                  max_steps=config.max_steps or None, seed=config.seed,
                                  log_every=20, memory_fix=(
                                      "Set --config.max_steps (at least top_k), a smaller "
                                      "--config.top_k, or --config.layers=<layer>."))
    elif config.method == "power":
      top = hessian.power_iteration_top_k(op, config.top_k, tol=config.tol, seed=config.seed)
    else:
      raise ValueError(f"config.method must be 'lanczos' or 'power', got {config.method!r}.")
    trace = (hessian.hutchinson_trace(op, config.trace_probes, seed=config.seed).to_dict()
             if config.trace_probes >= 2 else None)
    ds = r.train_data if config.split == "train" else r.test_data
    out["runs"].append({
        "run": run_dir, "which": str(config.which), "method": top.method,
        "eigenvalues": top.eigenvalues.tolist(), "trace": trace,
        "hvp_count": op.hvp_count, "solver": top.to_dict(), "num_params": op.dim,
        "data": ds.provenance.describe(ds.name), "num_samples": len(batch["label"])})
  if not out["runs"]:
    raise ValueError("config.checkpoints names no run folder.")
  # The contract's top-level keys are the first run's; every run is under "runs".
  out.update({k: v for k, v in out["runs"][0].items()})
  if not distributed.is_writer():  # process 0 writes the files
    return out
  plotting.eigenvalue_bars(os.path.join(workdir, "eigenvalues.png"),
                           {f"{i}: {os.path.basename(r['run'])} ({r['which']})": r["eigenvalues"]
                            for i, r in enumerate(out["runs"])})
  results_lib.write_json(os.path.join(workdir, "results.json"), out)
  return out


def main(argv):
  del argv
  cli.setup_logging()
  cli.run_or_exit(distributed.initialize)  # several processes when a role is given
  with distributed.exit_at_once_on_failure():
    out = cli.run_or_exit(run, _FLAGS.config, _FLAGS.workdir)
  if not distributed.is_writer():
    return
  for r in out["runs"]:
    print(f"{r['run']}: top eigenvalues {[round(x, 4) for x in r['eigenvalues'][:5]]} ... "
          f"({r['hvp_count']} HVPs)")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
