"""Remaining-time estimates for long loops: a cost line after a short warm-up, and ETA text.

    eta = progress.Estimate(num_points, "landscape", unit="points")
    for ...:
      ...                                   # one chunk of work
      eta.update(points_done)               # logs the estimate once, after the warm-up
      logging.info("... %s", eta.text())    # "ETA 1.2 h"

The first unit of work usually includes compilation, so the rate is measured from the end
of the first update on; the estimate is logged at the first update after that (or after
`warmup_seconds`, whichever is later), before the bulk of the work.
"""

from __future__ import annotations

import time

from absl import logging


def format_seconds(seconds: float) -> str:
  """45 s, 12 min, 5.9 h, 3.1 days."""
  if seconds != seconds or seconds == float("inf"):
    return "unknown"
  if seconds < 90:
    return f"{seconds:.0f} s"
  if seconds < 90 * 60:
    return f"{seconds / 60:.0f} min"
  if seconds < 48 * 3600:
    return f"{seconds / 3600:.1f} h"
  return f"{seconds / 86400:.1f} days"


class Estimate:
  """Tracks `done` out of `total` units and estimates the time left."""

  def __init__(self, total: int, what: str, *, unit: str = "steps", warmup_seconds: float = 0.0,
               clock=time.perf_counter):
    self.total, self.what, self.unit = int(total), what, unit
    self.warmup_seconds = warmup_seconds
    self._clock = clock
    self.start = clock()
    self._base: tuple[float, int] | None = None  # (time, done) at the end of the warm-up
    self.done = 0
    self.announced = False

  def rate(self) -> float | None:
    """Units per second after the warm-up (None until measurable)."""
    if self._base is None:
      return None
    t, n = self._base
    dt, dn = self._clock() - t, self.done - n
    return dn / dt if dt > 0 and dn > 0 else None

  def remaining_seconds(self) -> float | None:
    rate = self.rate()
    return None if rate is None else (self.total - self.done) / rate

  def update(self, done: int) -> None:
    """Records progress; logs the cost estimate once the rate is known."""
    self.done = int(done)
    if self._base is None:
      self._base = (self._clock(), self.done)
      return
    if (not self.announced and self.done < self.total
        and self._clock() - self.start >= self.warmup_seconds and self.rate()):
      self.announced = True
      logging.info("%s: %d %s in all; about %s more at the measured %.3g %s/s "
                   "(after %s of warm-up).", self.what, self.total, self.unit,
                   format_seconds(self.remaining_seconds()), self.rate(), self.unit,
                   format_seconds(self._clock() - self.start))

  def text(self) -> str:
    """"ETA 12 min" (or "ETA unknown" before the rate is measured; "" when finished)."""
    if self.done >= self.total:
      return "done"
    left = self.remaining_seconds()
    return f"ETA {format_seconds(left) if left is not None else 'unknown'}"
