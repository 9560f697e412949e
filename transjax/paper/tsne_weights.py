"""Fig 4: the final weights cluster by initialisation, not by target dataset.

Every target is trained from each of two pretrained sources and from random initialisation
(a random starting point of its own per target, seed RANDOM_SEED + the target's index: one
common random start would make the random runs "cluster by initialisation" by
construction); the final backbone
weights (the head is re-initialised per target and left out) are flattened, their pairwise
distances computed and embedded by t-SNE (transjax.analysis.embedding).

Computed claims, on the distances themselves (t-SNE only draws them): the mean distance
between runs with the same initialisation (different targets) is smaller than the mean
distance between runs on the same target (different initialisations), and the nearest
neighbour of most runs has the same initialisation.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import ml_collections
import numpy as np

from transjax import params as params_lib
from transjax import plotting
from transjax import results as results_lib
from transjax import runs as runs_lib
from transjax.analysis import embedding
from transjax.paper import common, overrides, pairs

FIGURES = ("tsne_weights.png",)
ELEMENTS = ("Fig 4",)
RANDOM = "random"
RANDOM_SEED = 100   # the random-init run of target i trains with seed RANDOM_SEED + i


def _source_paths(config: ml_collections.ConfigDict) -> dict[str, str]:
  if config.preset == "full":
    files = [f for f in config.source_weights_by_name.split(",") if f]
    if len(files) != len(config.sources):
      raise ValueError(f"config.source_weights_by_name needs one file per source "
                       f"{tuple(config.sources)}, got {files}.")
    return dict(zip(config.sources, files))
  return {name: pairs.source_for(config.preset, config.shared_dir, config.data_dir, name=name,
                                 experiment=config)
          for name in config.sources}


def run_configs(config: ml_collections.ConfigDict, source_paths: dict[str, str]
                ) -> list[tuple[str, str, ml_collections.ConfigDict, str]]:
  """(target, init, training config, run dir) for every target x {sources, random}.

  Runs with the pair's source use the pair's folders, so they are shared: config.source
  (a shared source run), or at full the source whose weights file is config.source_weights.
  """
  pair_source = config.source
  if config.preset == "full":
    pair_source = next((name for name, path in source_paths.items()
                        if path and path == config.get("source_weights", "")), "")
  out = []
  for i, target in enumerate(config.targets):
    for init in (*config.sources, RANDOM):
      kind = RANDOM if init == RANDOM else "pretrained"
      seed = RANDOM_SEED + i if init == RANDOM else 0
      cfg = overrides.apply(pairs.target_config(target, kind, config.preset,
                                                source_paths.get(init, ""),
                                                data_dir=config.data_dir, seed=seed), config)
      tag = "" if init in (RANDOM, pair_source) else f"_from_{init}"
      out.append((target, init, cfg,
                  pairs.pair_dir(config.shared_dir, target, kind, tag, seed=seed)))
  return out


def cluster_stats(distances: np.ndarray, targets: list[str], inits: list[str]) -> dict[str, Any]:
  """Mean within-init (across targets) vs within-target (across inits) distances, and the
  fraction of runs whose nearest neighbour has the same initialisation."""
  n = len(targets)
  same_init, same_target = [], []
  for a, b in itertools.combinations(range(n), 2):
    if inits[a] == inits[b] and targets[a] != targets[b]:
      same_init.append(distances[a, b])
    elif targets[a] == targets[b] and inits[a] != inits[b]:
      same_target.append(distances[a, b])
  d = np.asarray(distances, np.float64).copy()
  np.fill_diagonal(d, np.inf)
  nn = d.argmin(axis=1)
  frac = float(np.mean([inits[i] == inits[j] for i, j in enumerate(nn)]))
  return {"mean_within_init": float(np.mean(same_init)) if same_init else float("nan"),
          "mean_within_target_across_inits": float(np.mean(same_target)) if same_target
          else float("nan"),
          "nn_same_init_fraction": frac, "num_runs": n}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  paths = _source_paths(config)
  targets, inits, weights, data = [], [], [], []
  for target, init, cfg, run_dir in run_configs(config, paths):
    pairs.ensure_target_run(cfg, run_dir, config.preset, config)
    r = runs_lib.load_run(run_dir, "final")
    targets.append(target)
    inits.append(init)
    weights.append(r.params)
    info = results_lib.read_json(os.path.join(run_dir, "run.json"))
    data.append(f"{target} from {init}: {info['data']['train']}")
  layers = params_lib.layer_names(weights[0])
  if not config.include_head:
    layers = [l for l in layers if l != "fc"]
  mask = params_lib.mask_for(weights[0], layers)
  names = [f"{t}/{i}" for t, i in zip(targets, inits)]
  emb = embedding.embed_weights(weights, names, seed=config.seed, perplexity=config.perplexity,
                                mask=mask)
  plotting.tsne_scatter(os.path.join(workdir, FIGURES[0]), np.asarray(emb["embedding"]), targets,
                        inits, title="t-SNE of the final weights (colour: target, marker: init)")
  stats = cluster_stats(np.asarray(emb["distances"]), targets, inits)
  summary = "\n".join([
      "| mean distance, same init (different targets) | mean distance, same target "
      "(different inits) | nearest neighbour has the same init |", "|---|---|---|",
      f"| {stats['mean_within_init']:.4g} | {stats['mean_within_target_across_inits']:.4g} | "
      f"{100 * stats['nn_same_init_fraction']:.0f}% of {stats['num_runs']} runs |", "",
      f"targets {list(config.targets)}; initialisations {list(config.sources)} + random "
      f"(a random start of its own per target: seeds {RANDOM_SEED}..); layers {layers}."])
  results = {"elements": list(ELEMENTS), "data": data, "summary": summary,
             "figures": list(FIGURES), "preset": config.preset, "model": pairs.model_of(config), "names": names,
             "targets": targets, "inits": inits,
             "distances": np.asarray(emb["distances"]).tolist(),
             "embedding": np.asarray(emb["embedding"]).tolist(), "clusters": stats}
  return common.write_results(workdir, results, claims(results))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Fig 4 from the distances of one run per (target, init) (values decide)."""
  c = results["clusters"]
  sources = ("ImageNet weights" if "imagenet" in (results.get("inits") or [])
             else "MNIST/Fashion-MNIST sources")
  why = "; ".join(x for x in (common.stand_in_note(results.get("data", [])),
                              common.scale_note(results, "{model} with " + sources + " instead "
                                                "of ResNet-50 with ImageNet/Places")) if x)
  return [common.Claim(
      element="Fig 4",
      statement="Fine-tuned weights stay near their initialisation: they cluster by "
                "initialisation, not by target dataset.",
      paper="minima of different datasets from the same pretrained weights are close; from "
            "scratch vs pretrained on the same dataset they are far apart",
      ours=(f"mean distance same-init {c['mean_within_init']:.4g} vs same-target "
            f"{c['mean_within_target_across_inits']:.4g}; nearest neighbour same init for "
            f"{100 * c['nn_same_init_fraction']:.0f}% of runs"),
      checks=[
          common.less("runs from the same initialisation on different targets are closer than "
                      "runs on the same target from different initialisations",
                      c["mean_within_init"], c["mean_within_target_across_inits"], digits=4,
                      what="mean distance same-init vs same-target"),
          common.Check("most runs' nearest neighbour has the same initialisation",
                       c["nn_same_init_fraction"] > 0.5,
                       f"{100 * c['nn_same_init_fraction']:.0f}% of {c.get('num_runs', '?')} "
                       f"runs (> 50%; one run per (target, init))")],
      why=why)]


def validate(config: ml_collections.ConfigDict) -> None:
  paths = ({s: f for s, f in zip(config.sources, config.source_weights_by_name.split(","))}
           if config.preset == "full" else {s: "<source run>" for s in config.sources})
  from transjax import config as config_lib  # pylint: disable=import-outside-toplevel
  for _, _, cfg, _ in run_configs(config, paths):
    config_lib.validate(cfg)
  if len(config.targets) < 2 or len(config.sources) < 1:
    raise ValueError("paper_tsne_weights: at least 2 targets and 1 source.")
