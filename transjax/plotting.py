"""One matplotlib (Agg) function per figure kind; each writes a PNG and returns its path.

Compared landscapes share one colour scale and one contour spacing (the paper's
convention: contour levels every 0.05): pass the same `vmin`/`vmax` (see
`shared_range`) to every `contour_landscape` of a comparison. Where the losses vary by
less than a few times 0.05 (a nearly flat landscape would be two colours) the spacing
adapts to the range (`contour_levels`), and every figure says the spacing it used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import matplotlib.ticker  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

CONTOUR_SPACING = 0.05
MAX_CONTOUR_LEVELS = 80
# Fewer levels than this at the paper's spacing and the spacing adapts to the range.
MIN_CONTOUR_LEVELS = 8


def subplots(*args, **kwargs):
  """`plt.subplots` on the Agg backend, for figures drawn panel by panel (see `save_figure`)."""
  return plt.subplots(*args, **kwargs)


def save_figure(fig, path: str) -> str:
  """Writes `fig` to `path` (tight layout, 120 dpi), closes it, returns `path`."""
  return _save(fig, path)


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


def draw_grouped_bars(ax, series: Mapping[str, Sequence[float]], *,
                      positions: Sequence[float] | None = None,
                      errors: Mapping[str, Sequence[float]] | None = None) -> None:
  """Bars side by side at each position (default 0..n-1), one colour per series name."""
  names = list(series)
  width = 0.8 / max(len(names), 1)
  for i, name in enumerate(names):
    vals = np.asarray(series[name], float)
    x = np.arange(len(vals)) if positions is None else np.asarray(positions, float)
    ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width,
           yerr=None if errors is None else errors[name], label=name)


def grouped_bars(path: str, series: Mapping[str, Sequence[float]], labels: Sequence[str], *,
                 errors: Mapping[str, Sequence[float]] | None = None, ylabel: str = "",
                 title: str = "", figsize: tuple[float, float] = (7, 4)) -> str:
  """Grouped bars: one group per label, one colour per series (e.g. Table 1 by mode)."""
  fig, ax = plt.subplots(figsize=figsize)
  draw_grouped_bars(ax, series, errors=errors)
  ax.set_xticks(np.arange(len(labels)))
  ax.set_xticklabels(labels)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend()
  return _save(fig, path)


def eigenvalue_bars(path: str, eigenvalues: Mapping[str, Sequence[float]], *,
                    title: str = "Top Hessian eigenvalues") -> str:
  """Grouped bars: eigenvalue index on x, one colour per run (Fig 3a)."""
  fig, ax = plt.subplots(figsize=(7, 3.5))
  n = max((len(v) for v in eigenvalues.values()), default=0)
  draw_grouped_bars(ax, eigenvalues, positions=np.arange(1, n + 1))
  ax.set_xlabel("eigenvalue index")
  ax.set_ylabel("eigenvalue")
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def contour_landscape(path: str, xs: np.ndarray, ys: np.ndarray, losses: np.ndarray, *,
                      vmin: float | None = None, vmax: float | None = None,
                      spacing: float = CONTOUR_SPACING, title: str = "",
                      xlabel: str = "direction 1 (step)",
                      ylabel: str = "direction 2 (step)") -> str:
  """Filled contour of a 2-D loss grid with labelled axes and colour bar; levels every
  `spacing` between vmin and vmax (adapted where the range is small or large, see
  `contour_levels`; the spacing used is in the title)."""
  losses = np.asarray(losses, float)
  if vmin is None or vmax is None:
    lo, hi = shared_range([losses])
    vmin = lo if vmin is None else vmin
    vmax = hi if vmax is None else vmax
  levels, step = contour_levels(vmin, vmax, spacing)
  fig, ax = plt.subplots(figsize=(4.8, 4))
  x, y = np.meshgrid(xs, ys, indexing="ij")
  cs = ax.contourf(x, y, np.ma.masked_invalid(losses), levels=levels, cmap="viridis",
                   vmin=vmin, vmax=vmax, extend="both")
  ax.contour(x, y, np.ma.masked_invalid(losses), levels=levels, colors="k", linewidths=0.3)
  fig.colorbar(cs, ax=ax, label="loss")
  ax.plot([0], [0], "r+")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(f"{title}\n(contours every {step:.3g})" if title else
               f"contours every {step:.3g}", fontsize=9)
  return _save(fig, path)


def nice_step(raw: float) -> float:
  """The smallest of 1, 2, 2.5, 5 x 10^k that is at least `raw` (> 0)."""
  power = 10.0 ** np.floor(np.log10(raw))
  for m in (1.0, 2.0, 2.5, 5.0, 10.0):
    if m * power >= raw * (1 - 1e-12):
      return float(m * power)
  return float(10.0 * power)


def contour_levels(lo: float, hi: float, spacing: float = CONTOUR_SPACING,
                   max_levels: int = MAX_CONTOUR_LEVELS,
                   min_levels: int = MIN_CONTOUR_LEVELS) -> tuple[np.ndarray, float]:
  """(levels, step): every `spacing` (the paper's 0.05); a multiple of it when there would
  be more than max_levels; a nice finer step (1, 2, 2.5, 5 x 10^k, about 2 * min_levels
  levels) when the range holds fewer than min_levels, so a landscape that varies by 0.02
  still shows its shape."""
  span = max(hi - lo, 0.0)
  if span <= 0 or not np.isfinite(span):
    step = spacing
  elif span / spacing < min_levels:
    step = min(spacing, nice_step(span / (2 * min_levels)))
  else:
    step = spacing * max(1, int(np.ceil(span / spacing / max_levels)))
  start = np.floor(lo / step) * step
  if start > lo:  # rounding (2.3 / 0.002 * 0.002 > 2.3)
    start -= step
  levels = np.arange(start, hi + step, step)
  if len(levels) < 2:
    levels = np.array([start, start + step])
  return levels, step


def contour_grid(path: str, panels: Sequence[tuple[str, Mapping]], suptitle: str, *,
                 cap: float | None = None, spacing: float = CONTOUR_SPACING,
                 xlabel: str = "direction 1", ylabel: str = "direction 2") -> float:
  """Filled contours of several 2-D landscapes (up to 4 a row) with ONE colour scale.

  `panels`: (title, {"axes": [x, y], "losses": 2-D}); `cap` clips losses at lo + cap so one
  exploding landscape does not flatten the others' colours (the cap is shown in the title).
  Returns the contour spacing used (`spacing`, a multiple of it when the range is large,
  a finer step when it is small: `contour_levels`).
  """
  arrays = [np.asarray(p["losses"], np.float64) for _, p in panels]
  lo = min(np.nanmin(a) for a in arrays)
  hi = max(np.nanmax(a) for a in arrays)
  if cap is not None:
    hi = min(hi, lo + cap)
  levels, step = contour_levels(lo, hi, spacing)
  hi = max(hi, levels[-1])
  n = len(panels)
  cols = min(n, 4)
  rows = -(-n // cols)
  fig, axs = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows), squeeze=False)
  cs = None
  for ax, (title, p), a in zip(axs.ravel(), panels, arrays):
    x, y = (np.asarray(v) for v in p["axes"])
    a = np.clip(a, lo, hi)
    cs = ax.contourf(x, y, a.T, levels=levels, cmap="viridis")
    ax.contour(x, y, a.T, levels=levels, colors="k", linewidths=0.3)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_aspect("equal")
  for ax in axs.ravel()[n:]:
    ax.axis("off")
  fig.colorbar(cs, ax=axs.ravel().tolist(), shrink=0.8, label="loss")
  fig.suptitle(f"{suptitle}\n(same colour scale; contours every {step:.3g}"
               + (f"; clipped at min + {cap:g}" if cap is not None else "") + ")", fontsize=9)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)  # no tight_layout: it fights the shared colour bar
  plt.close(fig)
  return step


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


def step_curves(path: str, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                ylabel: str, title: str = "", xlabel: str = "training step",
                threshold: float | None = None, yscale: str | None = None,
                linthresh: float = 1e-3, marker: str | None = "o") -> str:
  """name -> (steps, values) against step; an optional dashed `threshold` line; `yscale`
  "log" or "symlog" (linear within +-linthresh). Empty series are skipped."""
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, (x, y) in series.items():
    if len(x):
      ax.plot(x, y, marker=marker, ms=3, label=name)
  if threshold is not None:
    ax.axhline(threshold, color="gray", ls="--", lw=0.8, label=f"threshold {threshold:.3g}")
  if yscale == "symlog":
    ax.set_yscale("symlog", linthresh=linthresh)
  elif yscale:
    ax.set_yscale(yscale)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=8)
  return _save(fig, path)


def gradient_variation_curves(path: str, series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                              *, ylabel: str = "max loss change along gradient",
                              title: str = "", yscale: str | None = None) -> str:
  """Fig 6 / 11: name -> (training steps, variation)."""
  return step_curves(path, series, ylabel=ylabel, title=title, yscale=yscale)


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
                        title: str = "", ylabel: str = "|u_i^T W v_i|") -> str:
  """Fig 7b,c: |u_i^T W v_i| against singular-value index i, one line per run."""
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, proj in projections.items():
    ax.plot(np.arange(1, len(proj) + 1), proj, marker=".", label=name)
  ax.set_xlabel("singular value index")
  ax.set_ylabel(ylabel)
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
  """A run's metrics.jsonl as three panels: loss, error and deviation against step (the
  deviation panel is left empty for records without the `Deviation` callback's keys)."""
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
    with_dev = [r for r in evals if "deviation_last" in r]
    if with_dev:
      dev_steps = [r["step"] for r in with_dev]
      axes[2].plot(dev_steps, [r["deviation_last"] for r in with_dev], "o-", label="last layer")
      axes[2].plot(dev_steps, [r["deviation_sum"] for r in with_dev], "s-",
                   label="sum over layers")
  for ax, label in zip(axes, ("loss", "error (%)", "‖W − W0‖_F / √n")):
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  if title:
    fig.suptitle(title)
  return _save(fig, path)
