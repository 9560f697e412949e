r"""Loss landscape (1-D or 2-D, filter-normalised directions) around a checkpoint.

    python -m experiments.landscape --config=configs/landscape.py:quick \
        --config.checkpoints=runs/lenet_mnist --workdir=runs/landscape --layer=conv2 --center=init

Writes results.json (center_loss, axes, losses, chunk plan, NaN report, data) and
landscape.png (contour levels every 0.05). BatchNorm: config.bn_mode (recalibrated on the
analysed samples by default; transjax/analysis/batchnorm.py).
While the grid runs, landscape_partial.npz holds the losses of its finished chunks: run
the same command again after a kill and it resumes from there.
"""

import os

import jax
import numpy as np
from absl import app, flags

from transjax import cli, distributed, plotting, workdir_lock
from transjax import config as config_lib
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import batchnorm, landscape, validate


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  from configs import landscape as canonical  # pylint: disable=import-outside-toplevel
  run_flags = cli.define_run_flags(
      "configs/landscape.py:<smoke|quick|full>; override fields with "
      "--config.resolution=101 --config.eta=0.002 ...",
      "Folder for results.json and landscape.png.",
      fields=cli.preset_fields(canonical.get_config))
  return dict(run_flags._asdict(),
              layer=flags.DEFINE_string("layer", None, "Only move this layer (e.g. conv2 or "
                                        "layer3.0.conv2); overrides config.layer. 'all' = "
                                        "every layer."),
              center=flags.DEFINE_string("center", None, "Centre of the grid: 'init', "
                                         "'final' or a step; overrides config.which."))


_FLAGS = cli.BinaryFlags(_define_flags)


@workdir_lock.locked()
def run(config, workdir: str, layer: str | None = None, center: str | None = None) -> dict:
  """Evaluates the grid around the first run of config.checkpoints; writes the outputs."""
  validate.landscape(config)  # grid size, step length, ...: before any run is loaded
  batchnorm.check_mode(config.bn_mode)
  which = center if center is not None else config.which
  if str(which) not in ("final", "init") and not str(which).isdigit():
    raise config_lib.ConfigError(f"--center={which!r} is not allowed; expected 'final', "
                                 "'init' or a checkpoint step.")
  workdir = results_lib.ensure_workdir(workdir)
  run_dir = cli.split_csv(config.checkpoints)[0]
  which = int(which) if str(which).isdigit() else which
  r = runs_lib.load_run(run_dir, which)
  layer = config.layer if layer is None else layer
  mask = landscape.layer_mask(r.params, None if layer in ("", "all") else layer)
  batch = r.batch(config.split, config.num_samples, config.seed)
  validate.notice_fewer_samples(batch, config)
  dirs = landscape.random_directions(jax.random.key(config.seed), r.params, config.dims, mask,
                                     include_bias_bn=config.include_bias_bn,
                                     orthogonal=config.orthogonal)
  axis = landscape.paper_axis(config.resolution, config.eta)
  # Several processes: parameters and directions in every one, the samples split over them.
  params, state, dirs = distributed.for_all_processes((r.params, r.state, dirs))
  # Saved after every chunk: a killed run, started again on the same workdir, resumes.
  partial = os.path.join(workdir, "landscape_partial.npz")
  res = landscape.loss_landscape(
      r.loss_fn, params, state, distributed.split_over_processes(batch), dirs,
      [axis] * config.dims,
      chunk_size=config.chunk_size or None,
      memory_budget_bytes=int(config.memory_budget_mb * 2**20) or None,
      vectorize=config.vectorize, resume_path=partial, bn_mode=config.bn_mode)
  ds = r.train_data if config.split == "train" else r.test_data
  out = {"config": config.to_dict(), "run": run_dir, "center": str(which),
         "layer": layer or "all", **res.to_dict(),
         "data": ds.provenance.describe(ds.name), "num_samples": len(batch["label"])}
  if not distributed.is_writer():  # process 0 writes the files
    return out
  title = f"{os.path.basename(run_dir)} {which} {layer or 'all'}"
  if config.dims == 2:
    plotting.contour_landscape(os.path.join(workdir, "landscape.png"), axis, axis, res.losses,
                               title=title)
  else:
    plotting.landscape_curves(os.path.join(workdir, "landscape.png"),
                              {title: (axis, res.losses)})
  results_lib.write_json(os.path.join(workdir, "results.json"), out)
  if os.path.exists(partial):
    os.remove(partial)
  return out


def main(argv):
  del argv
  cli.setup_logging()
  cli.run_or_exit(distributed.initialize)  # several processes when a role is given
  with distributed.exit_at_once_on_failure():
    out = cli.run_or_exit(run, **_FLAGS.values())
  if not distributed.is_writer():
    return
  losses = np.array([[np.nan if v is None else v for v in row] for row in out["losses"]]
                    if isinstance(out["losses"][0], list) else out["losses"], dtype=float)
  print(f"centre loss {out['center_loss']:.4f}; grid min {np.nanmin(losses):.4f} "
        f"max {np.nanmax(losses):.4f}; {out['points_per_second']:.1f} points/s; "
        f"{out['nan_count']} non-finite")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
