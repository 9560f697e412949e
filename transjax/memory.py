"""How much memory the default device has: what the analysis instruments size their
work by (landscape chunks, the Hessian operator's kept residuals, the Lanczos basis).

Accelerators report their limit (`memory_stats()["bytes_limit"]`); the CPU backend
reports none, so there the host's available memory stands in.
"""

from __future__ import annotations

import os

import jax


def device_bytes_limit() -> int | None:
  """The default device's memory limit in bytes, or None where the backend reports none
  (CPU)."""
  try:
    stats = jax.devices()[0].memory_stats()
    if stats and "bytes_limit" in stats:
      return int(stats["bytes_limit"])
  except Exception:  # pylint: disable=broad-except  # backends without memory stats
    pass
  return None


def host_available_bytes() -> int | None:
  """MemAvailable from /proc/meminfo (Linux), else free pages by sysconf, else None."""
  try:
    with open("/proc/meminfo", encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
  except (AttributeError, OSError, ValueError):
    return None


def available_bytes() -> tuple[int | None, str]:
  """(bytes, where): the device's limit, else the host's available memory, else
  (None, "unknown")."""
  limit = device_bytes_limit()
  if limit is not None:
    return limit, f"{jax.devices()[0].platform} device memory"
  host = host_available_bytes()
  if host is not None:
    return host, "available host memory"
  return None, "unknown"


def format_bytes(num_bytes: float) -> str:
  """Bytes with one decimal in the largest binary unit below them ("17.5 GiB", "28.1 KiB")."""
  for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if num_bytes >= scale:
      return f"{num_bytes / scale:.1f} {unit}"
  return f"{int(num_bytes)} B"
