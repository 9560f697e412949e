"""Flatness and smoothness of a 2-D loss grid: curvature, bumpiness, roughness."""

from __future__ import annotations

import numpy as np


def quadratic_fit(losses: np.ndarray) -> tuple[float, float]:
  """(curvature, bumpiness) of a 2-D grid: least squares of the quadratic
  z = a + b u + c v + d u^2 + e u v + f v^2 in grid coordinates u, v scaled to [-1, 1]
  (so grids of one width compare whatever their resolution). curvature = d + f, half the
  Laplacian of the fitted bowl: how fast the loss rises from the centre, in loss per (half
  grid width)^2; bumpiness = the RMS of the residual: what no bowl explains. Finite points
  only; NaN with fewer than 6."""
  a = np.asarray(losses, np.float64)
  u, v = np.meshgrid(np.linspace(-1, 1, a.shape[0]), np.linspace(-1, 1, a.shape[1]),
                     indexing="ij")
  ok = np.isfinite(a)
  if ok.sum() < 6:
    return float("nan"), float("nan")
  u, v, z = u[ok], v[ok], a[ok]
  design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
  coef, *_ = np.linalg.lstsq(design, z, rcond=None)
  residual = z - design @ coef
  return float(coef[3] + coef[5]), float(np.sqrt(np.mean(residual ** 2)))


def grid_stats(losses: np.ndarray, center: float) -> dict[str, float]:
  """Flatness / smoothness of a 2-D grid: mean and max increase over the centre, range,
  roughness (mean |discrete Laplacian|, which mixes the bowl's curvature with bumps), and
  the two apart: curvature and bumpiness of a quadratic fit (`quadratic_fit`)."""
  a = np.asarray(losses, np.float64)
  lap = (a[2:, 1:-1] + a[:-2, 1:-1] + a[1:-1, 2:] + a[1:-1, :-2] - 4 * a[1:-1, 1:-1])
  curvature, bumpiness = quadratic_fit(a) if a.ndim == 2 else (float("nan"), float("nan"))
  return {"center": float(center), "mean_increase": float(np.nanmean(a - center)),
          "max_increase": float(np.nanmax(a - center)),
          "range": float(np.nanmax(a) - np.nanmin(a)),
          "roughness": float(np.nanmean(np.abs(lap))) if lap.size else 0.0,
          "curvature": curvature, "bumpiness": bumpiness,
          "nan_count": int(np.sum(~np.isfinite(a)))}
