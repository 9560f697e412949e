"""Fig 8: what makes a source transferable, its inputs or its labels.

Fig 8a (vary inputs, same labels): LeNets pretrained on MNIST, upside-down MNIST and
Fashion-MNIST (same sizes, same per-class counts) are fine-tuned on 600 target digits
and compared with training from scratch: target accuracy and per-layer deviation
(psi1 = conv1, psi2 = conv2, W = the fully connected layers fc1, fc2 and the head,
summed).
Fig 8b (vary labels, same inputs): the same CIFAR-10 images (split A) labelled by their
class or by the colour of their upper part; both fine-tuned on a small target from
split B (real labels) and compared with scratch.
Fig 8c/d (ImageNet vs Places pretraining): ResNet-50 fine-tuned from ImageNet and from
Places365 weights on CUB-200 and MIT-Indoor; test accuracy (8c) and convergence (8d). They
run when `config.scenes.weights` names the weight files (the full preset); offline presets
have none, and their results say "not run".
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from transjax import plotting
from transjax import results as results_lib
from transjax.paper import common, overrides
from transjax.paper import sources

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
        out[(part_name, src, seed)] = overrides.apply(run_config(
            part, mode, seed, source_dirs.get(src, ""), config.data_dir, f"{part_name}_{src}"),
            config)
  return out


def scene_configs(config: ml_collections.ConfigDict) -> dict[tuple[str, str, int], ml_collections.ConfigDict]:
  """Fig 8c/d: (weights name, target name, seed) -> fine-tuning config ({} when no weights)."""
  out = {}
  scenes = config.scenes
  for weights, path in scenes.weights.items():
    for target, (train_spec, test_spec) in scenes.targets.items():
      for seed in range(config.num_seeds):
        c = ml_collections.ConfigDict(scenes.run.to_dict())
        c.name, c.seed, c.mode, c.init_from = f"{weights}_to_{target}_seed{seed}", seed, "finetune", path
        c.data.train, c.data.test = dict(train_spec), dict(test_spec)
        if config.data_dir:
          c.data.data_dir = config.data_dir
        out[(weights, target, seed)] = overrides.apply(c, config)
  return out


def _run_scenes(config, workdir: str) -> dict[str, Any] | str:
  """Fig 8c/d numbers: test accuracy and test-error curve per (weights, target)."""
  configs = scene_configs(config)
  if not configs:
    return NOT_RUN_8CD
  missing = sorted({c.init_from for c in configs.values() if not os.path.isfile(c.init_from)})
  if missing:
    raise FileNotFoundError(f"Fig 8c/d: weight files not found: {missing}; set "
                            "config.scenes.weights to torchvision-format ResNet-50 state dicts.")
  out: dict[str, Any] = {"accuracy": {}, "mean_test_error": {}, "curves": {}}
  for (weights, target, seed), c in configs.items():
    run_dir = os.path.join(workdir, "runs", "scenes", weights, target, f"seed{seed}")
    r = common.train_run(c, run_dir)
    records = results_lib.MetricsLog(os.path.join(run_dir, "metrics.jsonl")).read()
    curve = [(rec["step"], rec["test_error"]) for rec in records if "test_error" in rec]
    key = f"{weights}/{target}"
    out["accuracy"].setdefault(key, []).append(1.0 - r["final"]["test_error"])
    out["mean_test_error"].setdefault(key, []).append(float(np.mean([e for _, e in curve])))
    out["curves"].setdefault(key, curve)
  return out


def layer_groups(per_layer: dict[str, float]) -> dict[str, float]:
  return {g: float(sum(per_layer.get(l, 0.0) for l in layers))
          for g, layers in LAYER_GROUPS.items()}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  workdir = results_lib.ensure_workdir(workdir)
  shared = sources.shared_dir_of(config, workdir)
  common.use_compilation_cache(os.path.join(shared, "jax_cache"))
  names = tuple(config.inputs.sources) + tuple(config.labels.sources)
  source_dirs = {n: sources.ensure_source(n, config.preset, shared, data_dir=config.data_dir,
                                          experiment=config)
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
      "fig8cd": _run_scenes(config, workdir),
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
  cd = results["fig8cd"]
  if isinstance(cd, str):
    lines.append(f"\nFig 8c/d: {cd}")
  else:
    lines += ["", "| Fig 8c/d: pretrained on / target | test acc % | mean test error over training % |",
              "|---|---|---|"]
    for key in cd["accuracy"]:
      lines.append(f"| {key} | {common.fmt_pm(cd['accuracy'][key], 100)} | "
                   f"{common.fmt_pm(cd['mean_test_error'][key], 100)} |")
  return "\n".join(lines)


def _acc(part: dict, src: str) -> float:
  return float(np.mean(part[src]["accuracy"]))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  why = common.qualifiers(list(results.get("data", {}).values()),
                         "the paper's SVHN target (8a) and ResNet-50 on Caltech-101/Webcam (8b)")
  out = []
  a = results["inputs"]
  acc = {k: a[k]["accuracy"] for k in ("mnist", "mnist_upside_down", "fashion_mnist", "scratch")}
  pct = {"scale": 100, "digits": 2, "unit": "%", "what": "accuracy"}
  mn, ud, fa, sc = (_acc(a, k) for k in acc)
  # 5.1: "Compared to training from scratch, MNIST pretrained features improve
  # generalization significantly. Upside-down MNIST shows slightly worse generalization
  # performance than the original one. In contrast, fine-tuning from Fashion-MNIST barely
  # improves generalization."
  out.append(common.Claim(
      "Fig 8a",
      "Varying the inputs with the same labels: MNIST pretraining helps most, upside-down "
      "MNIST slightly less, Fashion-MNIST barely improves on training from scratch.",
      "target accuracy MNIST > upside-down MNIST > Fashion-MNIST ~ scratch (SVHN, 600 images)",
      f"accuracy % MNIST {100 * mn:.1f}, upside-down {100 * ud:.1f}, Fashion {100 * fa:.1f}, "
      f"scratch {100 * sc:.1f}",
      [common.greater("MNIST pretraining beats scratch", acc["mnist"], acc["scratch"], **pct),
       common.greater("upside-down MNIST pretraining beats scratch", acc["mnist_upside_down"],
                      acc["scratch"], **pct),
       common.greater("MNIST beats upside-down MNIST", acc["mnist"], acc["mnist_upside_down"],
                      **pct),
       common.greater("upside-down MNIST beats Fashion-MNIST", acc["mnist_upside_down"],
                      acc["fashion_mnist"], **pct),
       common.similar("Fashion-MNIST ~ scratch", acc["fashion_mnist"], acc["scratch"],
                      tolerance=0.02, **pct)],
      why))

  # "The weight matrices and convolutional kernel deviation of Fashion-MNIST pretraining
  # show no improvement over training from scratch" (a smaller deviation is the improvement).
  dev_f = a["fashion_mnist"]["deviation"]
  dev_s = a["scratch"]["deviation"]
  out.append(common.Claim(
      "Fig 8a",
      "The per-layer deviation of the Fashion-MNIST-pretrained network is no smaller than "
      "that of training from scratch.",
      "deviation of psi1, psi2, W: Fashion-MNIST pretraining shows no improvement over scratch",
      ", ".join(f"{g}: Fashion {np.mean(dev_f[g]):.3f} vs scratch {np.mean(dev_s[g]):.3f}"
                for g in LAYER_GROUPS),
      [common.compare(f"Fashion-MNIST deviation of {g} not smaller than scratch's", dev_f[g],
                      dev_s[g], "not <", tolerance=0.05 * float(np.mean(dev_s[g])),
                      what="deviation")
       for g in LAYER_GROUPS],
      why))

  # "the latter one [colour labels] provides no improvement over training on Webcam from
  # scratch, while pretraining on standard Caltech-101 significantly boosts performance."
  b = results["labels"]
  real, colour, scratch = (_acc(b, k) for k in ("cifar_real", "cifar_colour", "scratch"))
  bacc = {k: b[k]["accuracy"] for k in ("cifar_real", "cifar_colour", "scratch")}
  out.append(common.Claim(
      "Fig 8b",
      "Varying the labels with the same inputs: pretraining on the real labels helps, "
      "pretraining on colour-of-upper-part labels gives little or no improvement over scratch.",
      "Webcam accuracy: Caltech pretrained >> Caltech-colour pretrained ~ scratch",
      f"accuracy % real labels {100 * real:.1f}, colour labels {100 * colour:.1f}, "
      f"scratch {100 * scratch:.1f}",
      [common.greater("real-label pretraining beats scratch", bacc["cifar_real"],
                      bacc["scratch"], **pct),
       common.greater("real-label pretraining beats colour-label pretraining",
                      bacc["cifar_real"], bacc["cifar_colour"], **pct),
       common.compare("colour-label pretraining no better than scratch", bacc["cifar_colour"],
                      bacc["scratch"], "not >", tolerance=0.01, **pct)],
      why))

  out += _scene_claims(results.get("fig8cd", NOT_RUN_8CD))
  return out


SCENE_STATEMENTS = {
    "Fig 8c": ("ImageNet pretraining transfers better to CUB-200, Places pretraining to "
               "MIT-indoors (test accuracy).", "accuracy", ">"),
    "Fig 8d": ("Fine-tuning converges faster from the more similar pretraining: ImageNet on "
               "CUB-200, Places on MIT-indoors (mean test error over training).",
               "mean_test_error", "<"),
}


def _scene_claims(cd: dict[str, Any] | str) -> list[common.Claim]:
  """Fig 8c/d: ImageNet wins on the object target, Places on the scene target."""
  out = []
  for element, (statement, key, relation) in SCENE_STATEMENTS.items():
    paper = "CUB-200 benefits more from ImageNet; MIT-indoors more from Places"
    if isinstance(cd, str):
      out.append(common.Claim(element, statement, paper, cd,
                              [common.Check("run on the paper's data", False, cd)],
                              "not run offline: needs ImageNet/Places weights and data"))
      continue
    checks, parts = [], []
    for target, better in (("cub200", "imagenet"), ("mit_indoor", "places")):
      worse = "places" if better == "imagenet" else "imagenet"
      a, b = cd[key].get(f"{better}/{target}"), cd[key].get(f"{worse}/{target}")
      if a is None or b is None:
        continue
      checks.append(common.compare(f"{better} pretraining beats {worse} on {target}", a, b,
                                   relation, scale=100, digits=2, unit="%", what=key))
      parts.append(f"{target}: {better} {100 * np.mean(a):.1f} vs {worse} {100 * np.mean(b):.1f}")
    out.append(common.Claim(element, statement, paper, f"{key} %: " + "; ".join(parts),
                            checks or [common.Check("a (weights, target) pair to compare",
                                                    False, "none was run")],
                            "" if checks else "no (weights, target) pair to compare"))
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
