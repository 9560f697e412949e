"""The Hessian's spectral density by stochastic Lanczos quadrature."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np

from transjax.analysis.hessian import basis as basis_lib
from transjax.analysis.hessian import lanczos


@dataclasses.dataclass
class DensityResult:
  """Stochastic Lanczos quadrature: Gaussian-broadened spectral density on a grid."""
  grid: np.ndarray
  density: np.ndarray
  nodes: np.ndarray       # (num_probes, steps) Ritz values
  weights: np.ndarray     # (num_probes, steps) quadrature weights (sum to 1 per probe)
  sigma: float
  hvp_count: int
  seconds: float

  def to_dict(self) -> dict[str, Any]:
    return {"grid": self.grid.tolist(), "density": self.density.tolist(),
            "nodes": self.nodes.tolist(), "weights": self.weights.tolist(),
            "sigma": self.sigma, "hvp_count": self.hvp_count, "seconds": self.seconds}


def slq_density(op, num_probes: int = 10, num_steps: int = 90, *, grid_size: int = 1000,
                sigma_rel: float = 0.01, seed: int = 0,
                margin: float = 0.05) -> DensityResult:
  """Spectral density by stochastic Lanczos quadrature (Ghorbani, Krishnan, Xiao 2019).

  For each of `num_probes` Gaussian probes, an m-step Lanczos (full reorthogonalisation)
  gives Ritz values theta_j and weights tau_j = (first component of the Ritz vector)^2;
  the density is the probe average of sum_j tau_j N(t; theta_j, sigma^2), on a grid that
  spans the Ritz values (plus `margin`), with sigma = sigma_rel * (spectrum width).
  """
  basis_lib.check_basis_fits(
      min(num_steps, op.dim), op.dim, op.dtype, what="slq_density",
      fix="Lower num_steps or restrict the operator to fewer parameters.")
  start, count0 = time.perf_counter(), op.hvp_count
  key = jax.random.key(seed)
  nodes, weights = [], []
  for _ in range(num_probes):
    key, sub, sub2 = jax.random.split(key, 3)
    alphas, betas, _, steps = lanczos._lanczos_fast(
        op, jax.random.normal(sub, (op.dim,), op.dtype), min(num_steps, op.dim), sub2, None)
    theta, s = lanczos._tridiag_eigh(alphas, betas)
    tau = s[0, :] ** 2
    pad = num_steps - steps
    nodes.append(np.pad(theta, (0, pad), constant_values=np.nan))
    weights.append(np.pad(tau, (0, pad)))
  nodes_np, weights_np = np.array(nodes), np.array(weights)
  lo, hi = np.nanmin(nodes_np), np.nanmax(nodes_np)
  width = max(hi - lo, 1e-12)
  grid = np.linspace(lo - margin * width, hi + margin * width, grid_size)
  sigma = sigma_rel * width
  valid = ~np.isnan(nodes_np)
  diff = grid[None, None, :] - np.where(valid, nodes_np, 0.0)[..., None]
  gauss = np.exp(-0.5 * (diff / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
  density = np.sum(weights_np[..., None] * gauss * valid[..., None], axis=(0, 1)) / num_probes
  return DensityResult(grid, density, nodes_np, weights_np, float(sigma),
                       op.hvp_count - count0, time.perf_counter() - start)
