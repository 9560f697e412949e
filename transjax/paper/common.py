"""What the paper experiments share: claims with computed verdicts, shared source runs.

A `Claim` pairs a statement of the paper (and its numbers) with ours and a verdict that
is computed from our numbers by the experiment's `claims()` function, never written in.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import logging

from transjax import results as results_lib
from transjax import train

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED)


@dataclasses.dataclass(frozen=True)
class Claim:
  """One checked statement of the paper."""
  element: str          # "Table 1", "Fig 8a", ...
  statement: str        # what the paper claims, in words
  paper: str            # the paper's numbers or description
  ours: str             # our numbers, formatted
  verdict: str          # one of VERDICTS, computed
  why: str = ""         # e.g. "stand-in data (USPS for SVHN); LeNet instead of ResNet-50"

  def __post_init__(self):
    if self.verdict not in VERDICTS:
      raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

  def to_dict(self) -> dict[str, str]:
    return dataclasses.asdict(self)


def verdict_from_checks(checks: Sequence[bool]) -> str:
  """All checks hold: reproduced; some: partly; none: not reproduced."""
  checks = [bool(c) for c in checks]
  if checks and all(checks):
    return REPRODUCED
  if any(checks):
    return PARTLY
  return NOT_REPRODUCED


def _stand_ins(description: str) -> set[str]:
  """{"usps.h5 for SVHN", ...} from a provenance description "... (stand-in for X) from kind:path"."""
  found = set()
  for match in re.finditer(r"\(stand-in for ", description):
    depth, end = 1, match.end()
    while end < len(description) and depth:  # X may itself contain parentheses
      depth += {"(": 1, ")": -1}.get(description[end], 0)
      end += 1
    target = description[match.end():end - 1]
    source = re.match(r"\s*from (\w+):([^;\s]+)", description[end:])
    if source is None:
      name = "a stand-in"
    elif source.group(1) == "synthetic":
      name = "synthetic shapes"
    else:
      name = os.path.basename(source.group(2).rstrip(";,)"))
    found.add(f"{name} for {target}")
  return found


def stand_in_note(data_descriptions: Sequence[str]) -> str:
  """"stand-in data: usps.h5 for SVHN; ..." naming each stand-in once, else ""."""
  pairs = set().union(*(_stand_ins(d) for d in data_descriptions)) if data_descriptions else set()
  return ("stand-in data: " + "; ".join(sorted(pairs))) if pairs else ""


def qualifiers(data_descriptions: Sequence[str], paper_setting: str) -> str:
  """The "why" of a verdict: stand-ins used, and the scale when it is not the paper's.

  Results computed without any TFDS data (the smoke and quick presets) are at CPU scale:
  LeNet on small offline subsets instead of `paper_setting` (e.g. "ImageNet ResNet-50").
  """
  notes = [stand_in_note(data_descriptions)]
  if not any("tfds:" in d for d in data_descriptions):
    notes.append(f"CPU scale: LeNet on small offline subsets instead of {paper_setting}")
  return "; ".join(n for n in notes if n)


def use_compilation_cache(directory: str) -> None:
  """Turns on JAX's persistent compilation cache in `directory`, unless one is set already.

  Every run builds its jitted step afresh; with LeNet the compile takes longer than the
  training, and the runs of one experiment share shapes, so the persistent cache turns
  ~20 s per run into ~1 s. A jax without these options runs on without the cache (warned).
  """
  import jax  # pylint: disable=import-outside-toplevel
  try:
    if jax.config.jax_compilation_cache_dir:
      return
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  except (AttributeError, ValueError) as e:  # an older jax: run without it
    logging.warning("No persistent compilation cache: %s", e)


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes, or reuses a finished) run; returns its results.json."""
  if results_lib.finished_with(workdir, config):
    return results_lib.read_json(os.path.join(workdir, "results.json"))
  return train.train(config, workdir)


def write_results(workdir: str, results: dict[str, Any], claims: Sequence[Claim]) -> dict[str, Any]:
  """Writes results.json with the claims included; returns what it wrote."""
  out = dict(results)
  out["claims"] = [c.to_dict() for c in claims]
  out["metadata"] = results_lib.run_metadata()
  results_lib.write_json(os.path.join(workdir, "results.json"), out)
  return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  import numpy as np  # pylint: disable=import-outside-toplevel
  v = np.asarray(values, dtype=np.float64)
  return float(v.mean()), float(v.std(ddof=0))


def fmt_pm(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
  m, s = mean_std([scale * x for x in values])
  return f"{m:.{digits}f}±{s:.{digits}f}"
