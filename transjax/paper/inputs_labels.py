"""Fig 8: what makes a source transferable, its inputs or its labels.

Fig 8a (vary inputs, same labels): LeNets pretrained on MNIST, upside-down MNIST and
Fashion-MNIST (same sizes, same per-class counts) are fine-tuned on 600 target digits
and compared with training from scratch: target accuracy and per-layer deviation
(psi1 = conv1, psi2 = conv2, W = the fully connected layers fc1, fc2 and the head,
summed).
Fig 8b (vary labels, same inputs): the same CIFAR-10 images (split A) labelled by their
class or by the colour of their upper part; both fine-tuned on a small target from
split B (real labels) and compared with scratch.
Fig 8c/d (ImageNet vs Places pretraining) need those weights and datasets; they are not
run here, and the results say so.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from transjax import plotting
from transjax import results as results_lib
from transjax.paper import common
from transjax.paper import sources
from transjax.paper import transfer_targets

ELEMENTS = ("Fig 8a", "Fig 8b", "Fig 8c", "Fig 8d")
FIGURES = ("fig8a_inputs.png", "fig8b_labels.png")
LAYER_GROUPS = {"psi1": ("conv1",), "psi2": ("conv2",), "W": ("fc1", "fc2", "fc")}
NOT_RUN_8CD = ("not run: needs ImageNet/Places weights and data (CUB-200, MIT-indoors), "
               "which are not available offline")


def run_config(part: ml_collections.ConfigDict, mode: str, seed: int, init_from: str,
               data_dir: str, name: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(part.run.to_dict())
  c.name = f"{name}_seed{seed}"
  c.seed = seed
  c.mode = mode
  c.init_from = init_from if mode != "scratch" else ""
  c.data.train = part.target_train.to_dict()
  c.data.test = part.target_test.to_dict()
  if data_dir:
    c.data.data_dir = data_dir
  return c


def training_configs(config: ml_collections.ConfigDict, source_dirs: dict[str, str]
                     ) -> dict[tuple[str, str, int], ml_collections.ConfigDict]:
  """(part, source or "scratch", seed) -> training config; `source_dirs` maps names to runs."""
  out = {}
  for part_name in ("inputs", "labels"):
    part = config[part_name]
    for seed in range(config.num_seeds):
      for src in tuple(part.sources) + ("scratch",):
        mode = "scratch" if src == "scratch" else "finetune"
        out[(part_name, src, seed)] = run_config(
            part, mode, seed, source_dirs.get(src, ""), config.data_dir, f"{part_name}_{src}")
  return out


def layer_groups(per_layer: dict[str, float]) -> dict[str, float]:
  return {g: float(sum(per_layer.get(l, 0.0) for l in layers))
          for g, layers in LAYER_GROUPS.items()}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  shared = transfer_targets.shared_dir_of(config, workdir)
  common.use_compilation_cache(os.path.join(shared, "jax_cache"))
  names = tuple(config.inputs.sources) + tuple(config.labels.sources)
  source_dirs = {n: sources.ensure_source(n, config.preset, shared, data_dir=config.data_dir)
                 for n in names}
  parts: dict[str, dict[str, dict[str, list]]] = {"inputs": {}, "labels": {}}
  data: dict[str, str] = {}
  for (part, src, seed), c in training_configs(config, source_dirs).items():
    r = common.train_run(c, os.path.join(workdir, "runs", part, src, f"seed{seed}"))
    e = parts[part].setdefault(src, {"accuracy": [], "deviation": {g: [] for g in LAYER_GROUPS},
                                     "deviation_sum": []})
    e["accuracy"].append(1.0 - r["final"]["test_error"])
    for g, v in layer_groups(r["deviation"]["per_layer"]).items():
      e["deviation"][g].append(v)
    e["deviation_sum"].append(r["deviation"]["sum"])
    data[f"{part} target"] = f"train: {r['data']['train']}; test: {r['data']['test']}"
  for n, d in source_dirs.items():
    run_data = results_lib.read_json(os.path.join(d, "run.json"))["data"]
    data[f"source {n}"] = f"train: {run_data['train']}"
  results = {
      "elements": list(ELEMENTS), "data": data, "num_seeds": int(config.num_seeds),
      "inputs": parts["inputs"], "labels": parts["labels"],
      "inputs_order": list(config.inputs.sources) + ["scratch"],
      "labels_order": list(config.labels.sources) + ["scratch"],
      "fig8cd": NOT_RUN_8CD,
  }
  results["summary"] = summary(results)
  results["figures"] = _figures(results, workdir)
  return common.write_results(workdir, results, claims(results))


def summary(results: dict[str, Any]) -> str:
  lines = ["| part | pretrained on | target acc % | dev psi1 | dev psi2 | dev W |",
           "|---|---|---|---|---|---|"]
  for part in ("inputs", "labels"):
    for src in results[f"{part}_order"]:
      e = results[part][src]
      devs = " | ".join(common.fmt_pm(e["deviation"][g], digits=3) for g in LAYER_GROUPS)
      lines.append(f"| {part} | {src} | {common.fmt_pm(e['accuracy'], 100)} | {devs} |")
  lines.append(f"\nFig 8c/d: {results['fig8cd']}")
  return "\n".join(lines)


def _acc(part: dict, src: str) -> float:
  return float(np.mean(part[src]["accuracy"]))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  why = common.qualifiers(list(results.get("data", {}).values()),
                         "the paper's SVHN target (8a) and ResNet-50 on Caltech-101/Webcam (8b)")
  out = []
  a = results["inputs"]
  mn, ud, fa, sc = (_acc(a, k) for k in ("mnist", "mnist_upside_down", "fashion_mnist", "scratch"))
  gain = mn - sc
  fashion_close = abs(fa - sc) <= max(0.02, 0.25 * abs(gain))
  out.append(common.Claim(
      "Fig 8a",
      "Varying the inputs with the same labels: MNIST pretraining helps most, upside-down "
      "MNIST slightly less, Fashion-MNIST barely improves on training from scratch.",
      "target accuracy MNIST > upside-down MNIST > Fashion-MNIST ~ scratch (SVHN, 600 images)",
      f"accuracy % MNIST {100 * mn:.1f}, upside-down {100 * ud:.1f}, Fashion {100 * fa:.1f}, "
      f"scratch {100 * sc:.1f}",
      common.verdict_from_checks([mn > ud, ud > fa, mn > sc, fashion_close]), why))

  dev_f = a["fashion_mnist"]["deviation"]
  dev_s = a["scratch"]["deviation"]
  not_smaller = {g: float(np.mean(dev_f[g])) >= 0.95 * float(np.mean(dev_s[g])) for g in LAYER_GROUPS}
  out.append(common.Claim(
      "Fig 8a",
      "The per-layer deviation of the Fashion-MNIST-pretrained network is no smaller than "
      "that of training from scratch.",
      "deviation of psi1, psi2, W: Fashion-MNIST pretraining shows no improvement over scratch",
      ", ".join(f"{g}: Fashion {np.mean(dev_f[g]):.3f} vs scratch {np.mean(dev_s[g]):.3f}"
                for g in LAYER_GROUPS),
      common.verdict_from_checks(list(not_smaller.values())), why))

  b = results["labels"]
  real, colour, scratch = (_acc(b, k) for k in ("cifar_real", "cifar_colour", "scratch"))
  out.append(common.Claim(
      "Fig 8b",
      "Varying the labels with the same inputs: pretraining on the real labels helps, "
      "pretraining on colour-of-upper-part labels gives little or no improvement over scratch.",
      "Webcam accuracy: Caltech pretrained >> Caltech-colour pretrained ~ scratch",
      f"accuracy % real labels {100 * real:.1f}, colour labels {100 * colour:.1f}, "
      f"scratch {100 * scratch:.1f}",
      common.verdict_from_checks([real > scratch + 0.01,
                                  colour - scratch < 0.5 * (real - scratch)]),
      why))

  for element in ("Fig 8c", "Fig 8d"):
    out.append(common.Claim(
        element,
        "ImageNet pretraining transfers better to CUB-200, Places pretraining to MIT-indoors.",
        "CUB-200 benefits more from ImageNet; MIT-indoors more from Places",
        results.get("fig8cd", NOT_RUN_8CD), common.NOT_REPRODUCED,
        "not run offline: needs ImageNet/Places weights and data"))
  return out


def _zoom(ax, values) -> None:
  """Accuracies differ by a few points; start the axis below the smallest bar."""
  ax.set_ylim(max(0.0, min(values) - 10.0), min(100.0, max(values) + 5.0))


def _figures(results: dict[str, Any], workdir: str) -> list[str]:
  fig, axes = plotting.subplots(1, 2, figsize=(10, 4))
  order, a = results["inputs_order"], results["inputs"]
  x = np.arange(len(order))
  axes[0].bar(x, [100 * _acc(a, s) for s in order],
              yerr=[100 * float(np.std(a[s]["accuracy"])) for s in order])
  _zoom(axes[0], [100 * _acc(a, s) for s in order])
  axes[0].set_xticks(x)
  axes[0].set_xticklabels(order, fontsize=8)
  axes[0].set_ylabel("target test accuracy (%)")
  axes[0].set_title("Fig 8a: accuracy")
  groups = list(LAYER_GROUPS)
  plotting.draw_grouped_bars(
      axes[1], {s: [float(np.mean(a[s]["deviation"][g])) for g in groups] for s in order})
  axes[1].set_xticks(np.arange(len(groups)))
  axes[1].set_xticklabels([r"$\psi_1$", r"$\psi_2$", "W"])
  axes[1].set_ylabel(r"$\|W - W_0\|_F / \sqrt{n}$")
  axes[1].set_title("Fig 8a: deviation per layer")
  axes[1].legend(fontsize=8)
  plotting.save_figure(fig, os.path.join(workdir, FIGURES[0]))

  fig, ax = plotting.subplots(figsize=(5, 4))
  order, b = results["labels_order"], results["labels"]
  x = np.arange(len(order))
  ax.bar(x, [100 * _acc(b, s) for s in order],
         yerr=[100 * float(np.std(b[s]["accuracy"])) for s in order])
  _zoom(ax, [100 * _acc(b, s) for s in order])
  ax.set_xticks(x)
  ax.set_xticklabels(order)
  ax.set_ylabel("target test accuracy (%)")
  ax.set_title("Fig 8b: real vs colour labels")
  plotting.save_figure(fig, os.path.join(workdir, FIGURES[1]))
  return list(FIGURES)
