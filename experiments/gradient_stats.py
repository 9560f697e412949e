r"""Fig 7 a-d: gradient histogram of a layer, weight projection on the gradient's singular
directions, and the gradient scale per layer, for one or several runs.

    python -m experiments.gradient_stats --config=configs/gradient_stats.py:quick \
        --config.checkpoints=runs/finetune,runs/scratch --workdir=runs/gstats

Writes results.json and gradient_histogram.png, singular_projection.png,
layer_gradient_scale.png. The loss uses BatchNorm running statistics.
"""

import os

from absl import app, flags

from transjax import cli, distributed, plotting, workdir_lock
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import batchnorm, gradients, validate


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  from configs import gradient_stats as canonical  # pylint: disable=import-outside-toplevel
  run_flags = cli.define_run_flags(
      "configs/gradient_stats.py:<smoke|quick|full>; override fields with "
      "--config.layer=conv1 ...",
      "Folder for results.json and figures.",
      fields=cli.preset_fields(canonical.get_config))
  return dict(run_flags._asdict(),
              layer=flags.DEFINE_string("layer", None, "Layer to analyse; overrides "
                                        "config.layer."))


_FLAGS = cli.BinaryFlags(_define_flags)


@workdir_lock.locked()
def run(config, workdir: str, layer: str | None = None) -> dict:
  validate.gradient_stats(config)
  batchnorm.check_mode(config.bn_mode)
  workdir = results_lib.ensure_workdir(workdir)
  layer = layer or config.layer
  out = {"config": config.to_dict(), "layer": layer, "runs": {}}
  for run_dir in cli.split_csv(config.checkpoints):
    r = runs_lib.load_run(run_dir, config.which)
    batch = r.batch(config.split, config.num_samples, config.seed)
    validate.notice_fewer_samples(batch, config)
    # Several processes: parameters in every one, the samples split over them.
    params, state = distributed.for_all_processes((r.params, r.state))
    stats = gradients.gradient_stats(r.loss_fn, params, state,
                                     distributed.split_over_processes(batch), layer,
                                     bins=config.bins, bn_mode=config.bn_mode)
    ds = r.train_data if config.split == "train" else r.test_data
    out["runs"][run_dir] = {**stats, "data": ds.provenance.describe(ds.name)}
  if not distributed.is_writer():  # process 0 writes the files
    return out
  short = {os.path.basename(k): v for k, v in out["runs"].items()}
  plotting.gradient_histogram(os.path.join(workdir, "gradient_histogram.png"),
                              {k: v["histogram"] for k, v in short.items()}, title=layer)
  plotting.singular_projection(os.path.join(workdir, "singular_projection.png"),
                               {k: v["svd"]["projection"] for k, v in short.items()}, title=layer)
  plotting.layer_gradient_scale(os.path.join(workdir, "layer_gradient_scale.png"),
                                {k: v["scale"] for k, v in short.items()})
  results_lib.write_json(os.path.join(workdir, "results.json"), out)
  return out


def main(argv):
  del argv
  cli.setup_logging()
  cli.run_or_exit(distributed.initialize)  # several processes when a role is given
  with distributed.exit_at_once_on_failure():
    out = cli.run_or_exit(run, **_FLAGS.values())
  if not distributed.is_writer():
    return
  for name, r in out["runs"].items():
    print(f"{name}: {out['layer']} mean |grad| {r['histogram']['mean_abs']:.3g}; "
          f"per-layer scale {dict(zip(r['scale']['layers'], r['scale']['norms']))}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
