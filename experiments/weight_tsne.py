r"""t-SNE of the weights of several runs (Fig 4): colour = dataset, marker = initialisation.

    python -m experiments.weight_tsne --config=configs/weight_tsne.py:quick \
        --config.checkpoints=runs/a,runs/b,runs/c --workdir=runs/tsne

Writes results.json (names, datasets, inits, distances, embedding, data) and tsne.png.
Runs of different architectures are refused, naming the two runs and the first
differing parameter.
"""

import os

import jax
from absl import app

from transjax import cli, plotting, workdir_lock
from transjax import params as params_lib
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import embedding


def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  return cli.define_run_flags(
      "configs/weight_tsne.py:<smoke|quick|full>; override fields with "
      "--config.checkpoints=a,b,c --config.perplexity=5 ...",
      "Folder for results.json and tsne.png.")


_FLAGS = cli.BinaryFlags(_define_flags)


@workdir_lock.locked()
def run(config, workdir: str) -> dict:
  workdir = results_lib.ensure_workdir(workdir)
  run_dirs = cli.split_csv(config.checkpoints)
  inits = cli.split_csv(config.inits)
  if inits and len(inits) != len(run_dirs):
    raise ValueError(f"config.inits names {len(inits)} inits for {len(run_dirs)} runs.")
  loaded = [runs_lib.load_run(d, config.which) for d in run_dirs]
  exclude = cli.split_csv(config.exclude_layers)
  weights = []
  for r in loaded:
    p = r.params
    if exclude:
      keep = jax.tree.map(lambda m: not m, params_lib.mask_for(p, exclude))
      p = {path: leaf for (path, leaf), k in zip(params_lib.named_leaves(p),
                                                 jax.tree.leaves(keep)) if k}
    weights.append(p)
  datasets = [r.train_data.name for r in loaded]
  if not inits:
    inits = [os.path.basename(str(r.config.get("init_from", "")).rstrip("/")) or
             f"random(seed={r.config.get('seed', 0)})" for r in loaded]
  emb = embedding.embed_weights(weights, run_dirs, seed=config.seed,
                                perplexity=config.perplexity)
  out = {"config": config.to_dict(), "runs": run_dirs, "datasets": datasets, "inits": inits,
         "distances": emb["distances"], "embedding": emb["embedding"],
         "perplexity": emb["perplexity"],
         "data": [r.train_data.provenance.describe(r.train_data.name) for r in loaded]}
  plotting.tsne_scatter(os.path.join(workdir, "tsne.png"), emb["embedding"], datasets, inits)
  results_lib.write_json(os.path.join(workdir, "results.json"), out)
  return out


def main(argv):
  del argv
  cli.setup_logging()
  out = cli.run_or_exit(run, _FLAGS.config, _FLAGS.workdir)
  for name, (x, y) in zip(out["runs"], out["embedding"]):
    print(f"{name}: ({x:.2f}, {y:.2f})")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
