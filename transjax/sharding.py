"""The one device mesh: a 1-D 'data' axis over which training batches, landscape grid points
and blocks of Hessian-vector products are split; parameters are replicated. In a run of
several processes (`transjax.distributed`) it spans the devices of all of them, each
process's devices together (JAX lists devices by process), so each process holds one
contiguous slice of every split axis.

The axis is of JAX's default "auto" type (a plain `Mesh`), not the "explicit" type that
`jax.make_mesh` now gives: with explicit axes, vmap's batching of a convolution whose kernel
is split over the axis (a landscape chunk) makes a reshape that JAX refuses.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh(num_devices: int = 0) -> Mesh:
  """The first `num_devices` devices (0: all of them) as a 1-D mesh with axis 'data'.

  Raises:
    ValueError: more devices asked for than exist.
  """
  devices = jax.devices()
  if num_devices > len(devices):
    raise ValueError(f"{num_devices} devices asked for but only {len(devices)} exist.")
  if jax.process_count() > 1 and num_devices not in (0, len(devices)):
    # A mesh on some processes' devices only would leave the others out of every step.
    raise ValueError(f"{num_devices} devices asked for in a run of {jax.process_count()} "
                     f"processes: use all {len(devices)} (0).")
  return Mesh(np.asarray(devices[:num_devices or None]), ("data",))


def split_leading(x, mesh: Mesh):
  """`x` placed with its leading axis split over the mesh's 'data' axis."""
  return jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
