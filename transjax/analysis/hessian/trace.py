"""The Hessian's trace by Hutchinson's estimator (Rademacher probes)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transjax import distributed


@dataclasses.dataclass
class TraceResult:
  """Hutchinson estimate of tr(H): mean of z^T H z over Rademacher probes, and its SE."""
  trace: float
  std_error: float
  num_probes: int
  hvp_count: int
  seconds: float
  samples: np.ndarray

  def to_dict(self) -> dict[str, Any]:
    return {"trace": self.trace, "std_error": self.std_error, "num_probes": self.num_probes,
            "hvp_count": self.hvp_count, "seconds": self.seconds}


def hutchinson_trace(op, num_probes: int = 100, *, block_size: int = 10,
                     seed: int = 0) -> TraceResult:
  """tr(H) ~ mean_z z^T H z with Rademacher z; reports mean and standard error.

  Probes are evaluated `block_size` at a time with a vmapped HVP.
  """
  if num_probes < 2:
    raise ValueError("hutchinson_trace needs at least 2 probes for a standard error.")
  start, count0 = time.perf_counter(), op.hvp_count
  key = jax.random.key(seed)
  samples = []
  done = 0
  while done < num_probes:
    b = min(block_size, num_probes - done)
    key, sub = jax.random.split(key)
    z = jax.random.rademacher(sub, (b, op.dim), op.dtype)
    hz = op.matmat(z)
    # A block split over devices is split over processes too: gathered, not np.asarray.
    samples.append(distributed.to_numpy(jnp.sum(z * hz, axis=1)).astype(np.float64))
    done += b
  samples_np = np.concatenate(samples)
  return TraceResult(float(samples_np.mean()),
                     float(samples_np.std(ddof=1) / np.sqrt(num_probes)), num_probes,
                     op.hvp_count - count0, time.perf_counter() - start, samples_np)
