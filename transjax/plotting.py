"""One matplotlib (Agg) function per figure kind; each writes a PNG and returns its path.

Compared landscapes share one colour scale and one contour spacing (the paper's
convention: contour levels every 0.05): pass the same `vmin`/`vmax` (see
`shared_range`) to every `contour_landscape` of a comparison.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

CONTOUR_SPACING = 0.05


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def shared_range(grids: Sequence[np.ndarray]) -> tuple[float, float]:
  """(vmin, vmax) over the finite values of several loss grids, for a shared colour scale."""
  finite = np.concatenate([np.asarray(g)[np.isfinite(g)].ravel() for g in grids])
  return float(finite.min()), float(finite.max())


def eigenvalue_bars(path: str, eigenvalues: Mapping[str, Sequence[float]], *,
                    title: str = "Top Hessian eigenvalues") -> str:
  """Grouped bars: eigenvalue index on x, one colour per run (Fig 3a)."""
  fig, ax = plt.subplots(figsize=(7, 3.5))
  names = list(eigenvalues)
  width = 0.8 / max(len(names), 1)
  for i, name in enumerate(names):
    vals = np.asarray(eigenvalues[name], float)
    ax.bar(np.arange(1, len(vals) + 1) + (i - (len(names) - 1) / 2) * width, vals, width,
           label=name)
  ax.set_xlabel("eigenvalue index")
  ax.set_ylabel("eigenvalue")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def contour_landscape(path: str, xs: np.ndarray, ys: np.ndarray, losses: np.ndarray, *,
                      vmin: float | None = None, vmax: float | None = None,
                      spacing: float = CONTOUR_SPACING, title: str = "") -> str:
  """Filled contour of a 2-D loss grid; levels every `spacing` between vmin and vmax."""
  losses = np.asarray(losses, float)
  if vmin is None or vmax is None:
    lo, hi = shared_range([losses])
    vmin = lo if vmin is None else vmin
    vmax = hi if vmax is None else vmax
  levels = np.arange(np.floor(vmin / spacing) * spacing, vmax + spacing, spacing)
  if len(levels) < 2:
    levels = np.array([vmin, vmin + spacing])
  if len(levels) > 400:  # keep the drawing tractable for huge ranges; the scale stays shared
    levels = np.linspace(levels[0], levels[-1], 400)
  fig, ax = plt.subplots(figsize=(4.5, 4))
  x, y = np.meshgrid(xs, ys, indexing="ij")
  cs = ax.contourf(x, y, np.ma.masked_invalid(losses), levels=levels, cmap="viridis",
                   vmin=vmin, vmax=vmax, extend="both")
  ax.contour(x, y, np.ma.masked_invalid(losses), levels=levels, colors="k", linewidths=0.3)
  fig.colorbar(cs, ax=ax)
  ax.plot([0], [0], "r+")
  ax.set_title(title)
  return _save(fig, path)


def landscape_curves(path: str, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                     title: str = "", xlabel: str = "step along direction") -> str:
  """1-D landscapes: name -> (x, loss)."""
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, (x, y) in curves.items():
    ax.plot(x, y, label=name)
  ax.set_xlabel(xlabel)
  ax.set_ylabel("loss")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def gradient_variation_curves(path: str, series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                              *, ylabel: str = "max loss change along gradient",
                              title: str = "") -> str:
  """Fig 6 / 11: name -> (training steps, variation)."""
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, (x, y) in series.items():
    ax.plot(x, y, marker="o", ms=3, label=name)
  ax.set_xlabel("training step")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def gradient_histogram(path: str, hists: Mapping[str, Mapping[str, Sequence[float]]], *,
                       title: str = "") -> str:
  """Fig 7a: name -> {"counts", "edges"} histograms of a layer's gradient entries."""
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, h in hists.items():
    edges = np.asarray(h["edges"])
    ax.stairs(np.asarray(h["counts"]), edges, label=name)
  ax.set_yscale("log")
  ax.set_xlabel("gradient entry")
  ax.set_ylabel("count")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def singular_projection(path: str, projections: Mapping[str, Sequence[float]], *,
                        title: str = "") -> str:
  """Fig 7b,c: |u_i^T W v_i| against singular-value index i, one line per run."""
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, proj in projections.items():
    ax.plot(np.arange(1, len(proj) + 1), proj, marker=".", label=name)
  ax.set_xlabel("singular value index")
  ax.set_ylabel("|u_i^T W v_i|")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def layer_gradient_scale(path: str, scales: Mapping[str, Mapping[str, Sequence]], *,
                         title: str = "") -> str:
  """Fig 7d: name -> {"layers", "norms"}, layers from the output down."""
  fig, ax = plt.subplots(figsize=(5.5, 3.5))
  for name, sc in scales.items():
    ax.plot(np.arange(len(sc["norms"])), sc["norms"], marker="o", label=name)
    layers = list(sc["layers"])
  ax.set_xticks(np.arange(len(layers)))
  ax.set_xticklabels(layers, rotation=45, ha="right", fontsize=7)
  ax.set_yscale("log")
  ax.set_ylabel("||dL/d input||")
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def tsne_scatter(path: str, embedding: np.ndarray, datasets: Sequence[str],
                 inits: Sequence[str], *, title: str = "t-SNE of weights") -> str:
  """Fig 4: colour by dataset, marker by initialisation."""
  embedding = np.asarray(embedding)
  markers = ["o", "^", "s", "D", "v", "P", "X", "*"]
  colours = {d: f"C{i % 10}" for i, d in enumerate(dict.fromkeys(datasets))}
  marks = {m: markers[i % len(markers)] for i, m in enumerate(dict.fromkeys(inits))}
  fig, ax = plt.subplots(figsize=(5, 4.5))
  for (x, y), d, m in zip(embedding, datasets, inits):
    ax.scatter([x], [y], c=colours[d], marker=marks[m], s=40)
  for d, c in colours.items():
    ax.scatter([], [], c=c, marker="o", label=f"data: {d}")
  for m, mk in marks.items():
    ax.scatter([], [], c="gray", marker=mk, label=f"init: {m}")
  ax.legend(fontsize=7)
  ax.set_title(title)
  return _save(fig, path)


def training_curves(records: Sequence[Mapping], path: str, *, title: str = "") -> str:
  """A run's metrics.jsonl as three panels: loss, error and deviation against step."""
  train = [r for r in records if "train_loss" in r]
  evals = [r for r in records if "test_loss" in r]
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
  if train:
    axes[0].plot([r["step"] for r in train], [r["train_loss"] for r in train], label="train (batches)")
    axes[1].plot([r["step"] for r in train], [100 * r["train_error"] for r in train],
                 label="train (batches)")
  if evals:
    steps = [r["step"] for r in evals]
    axes[0].plot(steps, [r["test_loss"] for r in evals], "o-", label="test")
    axes[1].plot(steps, [100 * r["test_error"] for r in evals], "o-", label="test")
    axes[1].plot(steps, [100 * r["train_eval_error"] for r in evals], "s--", label="train (eval)")
    axes[2].plot(steps, [r["deviation_last"] for r in evals], "o-", label="last layer")
    axes[2].plot(steps, [r["deviation_sum"] for r in evals], "s-", label="sum over layers")
  for ax, label in zip(axes, ("loss", "error (%)", "‖W − W0‖_F / √n")):
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
  if title:
    fig.suptitle(title)
  return _save(fig, path)
