r"""Loss variation along the gradient at the saved checkpoints of training runs (Fig 6, 11).

    python -m experiments.gradient_variation --config=configs/gradient_variation.py:quick \
        --config.checkpoints=runs/finetune,runs/scratch --workdir=runs/gradvar

For live measurement during training use transjax.analysis.gradients.
GradientVariationCallback in transjax.train.train(..., callbacks=[...]).
Writes results.json (per run, per protocol, per step: max_change, max_abs_change,
grad_predictiveness, beta_smoothness) and gradient_variation_<protocol>.png.
"""

import os

from absl import app, logging

from transjax import cli, distributed, plotting, progress, workdir_lock
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import batchnorm, gradients, validate


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  from configs import gradient_variation as canonical  # pylint: disable=import-outside-toplevel
  return cli.define_run_flags(
      "configs/gradient_variation.py:<smoke|quick|full>; override fields with "
      "--config.checkpoints=a,b --config.steps=0,100,200 ...",
      "Folder for results.json and figures.",
      fields=cli.preset_fields(canonical.get_config))


_FLAGS = cli.BinaryFlags(_define_flags)


@workdir_lock.locked()
def run(config, workdir: str) -> dict:
  layers = cli.layer_selection(config.layers)  # refuse an empty selection first
  validate.gradient_variation(config)
  batchnorm.check_mode(config.bn_mode)
  workdir = results_lib.ensure_workdir(workdir)
  protocols = cli.split_csv(config.protocols)
  out = {"config": config.to_dict(), "runs": {}}
  plan = []  # every (run, steps) first: a run without checkpoints is refused before any work
  for run_dir in cli.split_csv(config.checkpoints):
    steps = (runs_lib.list_checkpoint_steps(run_dir) if config.steps == "all"
             else [int(s) for s in cli.split_csv(config.steps)])
    if not steps:
      raise ValueError(f"{run_dir} has no saved checkpoints to measure.")
    plan.append((run_dir, steps))
  eta = progress.Estimate(sum(len(steps) for _, steps in plan), "gradient_variation",
                          unit="checkpoints")
  for run_dir, steps in plan:
    per = {p: {"steps": [], "max_change": [], "max_abs_change": [], "max_rise": [],
               "descent": [], "grad_predictiveness": [], "beta_smoothness": [], "grad_norm": []}
           for p in protocols}
    data = None
    for step in steps:
      r = runs_lib.load_run(run_dir, step)
      batch = r.batch(config.split, config.num_samples, config.seed)
      validate.notice_fewer_samples(batch, config)
      ds = r.train_data if config.split == "train" else r.test_data
      data = ds.provenance.describe(ds.name)
      # Several processes: parameters in every one, the samples split over them.
      params, state = distributed.for_all_processes((r.params, r.state))
      split = distributed.split_over_processes(batch)
      for p in protocols:
        res = gradients.gradient_variation(r.loss_fn, params, state, split, protocol=p,
                                           lr=config.lr, step_length=config.step_length,
                                           num_steps=config.num_steps,
                                           mask=layers, bn_mode=config.bn_mode)
        per[p]["steps"].append(step)
        for k in ("max_change", "max_abs_change", "max_rise", "descent", "grad_predictiveness",
                  "beta_smoothness", "grad_norm"):
          per[p][k].append(res[k])
      eta.update(eta.done + 1)
      logging.info("gradient_variation: %s step %d (%d/%d checkpoints), %s", run_dir, step,
                   eta.done, eta.total, eta.text())
    out["runs"][run_dir] = {"protocols": per, "data": data}
  if not distributed.is_writer():  # process 0 writes the files
    return out
  for p in protocols:
    plotting.gradient_variation_curves(
        os.path.join(workdir, f"gradient_variation_{p}.png"),
        {os.path.basename(k): (v["protocols"][p]["steps"], v["protocols"][p]["max_change"])
         for k, v in out["runs"].items()}, title=f"protocol: {p}")
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
  for name, r in out["runs"].items():
    for p, v in r["protocols"].items():
      print(f"{name} [{p}]: max change by step {dict(zip(v['steps'], v['max_change']))}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
