"""A paper element measured in two BatchNorm modes; its claims report both where they differ.

The instruments measure in the paper's analogue, the experiment config's `bn_mode`
(`transjax.analysis.batchnorm`: "recalibrated" for Hessians and landscapes, which the
paper's PyHessian and loss-landscape code evaluate with `model.eval()` on networks whose
statistics were updated on the target; "batch" for gradient measurements, taken in train
mode during training). `bn_compare` ("running" by default: the stored statistics, the
protocol before the mode existed; "" for none) is measured too where the network has
BatchNorm statistics, and every claim whose verdict differs in that mode says so in its
"why", with that mode's numbers.

An experiment stores its numbers in the primary mode at the usual keys of `results`, the
mode in results["bn_mode"], and the compared mode's numbers as the same keys under
results["bn_comparison"] = {"mode": ..., "results": {key: value}}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from transjax.analysis import batchnorm
from transjax.paper import common


def modes(config: ml_collections.ConfigDict, state: Any) -> list[str]:
  """The modes to measure in: the config's `bn_mode`, then `bn_compare` where it differs
  and the network has BatchNorm statistics (without them every mode is the same)."""
  primary = config.get("bn_mode", "running")
  other = config.get("bn_compare", "")
  if other and other != primary and batchnorm.has_statistics(state):
    return [primary, other]
  return [primary]


def validate(config: ml_collections.ConfigDict) -> None:
  """`bn_mode` and `bn_compare` are modes ("" allowed for bn_compare), before any work."""
  for field in ("bn_mode", "bn_compare"):
    value = config.get(field, "")
    if value == "" and field == "bn_compare":
      continue
    if value not in batchnorm.MODES:
      raise ValueError(f"config.{field} must be one of {batchnorm.MODES}"
                       + (" or '' (none)" if field == "bn_compare" else "")
                       + f", got {value!r}.")


def pack(results: dict[str, Any], by_mode: dict[str, dict[str, Any]],
         primary: str) -> dict[str, Any]:
  """`results` with the primary mode's numbers at the top and the other mode's (if any)
  under "bn_comparison"."""
  out = {**results, **by_mode[primary], "bn_mode": primary}
  others = [m for m in by_mode if m != primary]
  if others:
    out["bn_comparison"] = {"mode": others[0], "results": by_mode[others[0]]}
  return out


def describe(mode: str) -> str:
  return {"batch": "batch statistics",
          "recalibrated": "running statistics recalibrated on the analysed data",
          "running": "stored running statistics"}.get(mode, mode)


def note(modes: Sequence[str], has_batchnorm: bool | None = None) -> str:
  """The summary's sentence on the modes measured: "BatchNorm modes: batch: batch
  statistics; ..." or, for a network without BatchNorm, that the mode changes nothing."""
  if has_batchnorm is False:
    return "BatchNorm: none in this network (every mode measures the same function)."
  return "BatchNorm modes: " + "; ".join(f"{m}: {describe(m)}" for m in modes) + "."


def _held(claim: common.Claim) -> str:
  return f"{sum(c.passed for c in claim.checks)}/{len(claim.checks)}"


def claims_in_modes(results: dict[str, Any],
                    make_claims: Callable[[dict[str, Any]], Sequence[common.Claim]]
                    ) -> list[common.Claim]:
  """`make_claims(results)`, each claim's "why" extended where the compared mode's numbers
  give another verdict or other checks holding (that verdict, its checks held and its
  "ours")."""
  claims = list(make_claims(results))
  comparison = results.get("bn_comparison")
  if not comparison:
    return claims
  other = list(make_claims({**results, **comparison["results"]}))
  out = []
  for mine, theirs in zip(claims, other):
    # Disagreement: another verdict, or (an inconclusive claim's checks are still
    # computed) other checks holding.
    if mine.verdict != theirs.verdict or [c.passed for c in mine.checks] != [
        c.passed for c in theirs.checks]:
      note = (f"with BatchNorm {describe(comparison['mode'])} instead of "
              f"{describe(results.get('bn_mode', ''))}: {theirs.verdict} "
              f"({_held(theirs)} checks; {theirs.ours})")
      mine = dataclasses.replace(mine, why="; ".join(x for x in (mine.why, note) if x),
                                 verdict="")
    out.append(mine)
  return out
