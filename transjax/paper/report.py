"""REPORT.md of a reproduction: every claim's verdict, our numbers beside the paper's.

The verdicts are recomputed here by each experiment module's `claims(results)` from the
numbers in its results.json (they are never typed in); a module that cannot be imported
falls back to the claims stored in its results.json. Under each experiment the report lists
every claim's sub-checks with their numbers and pass/fail; stored claims written before
claims had sub-checks show their stored verdict alone. The header states the noise rule
(`common.NOISE_RULE`) once.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Sequence
from typing import Any

from transjax import progress
from transjax import results as results_lib
from transjax.paper import common


def _cell(text: Any) -> str:
  return str(text).replace("|", "\\|").replace("\n", " ")


def experiment_claims(module_name: str, results: dict[str, Any]) -> list[dict[str, str]]:
  """The claims of one experiment, computed by its module from `results`."""
  try:
    module = importlib.import_module(module_name)
  except ImportError:
    return list(results.get("claims", []))
  return [c.to_dict() for c in module.claims(results)]


def verdict_text(claim: dict[str, Any]) -> str:
  """The verdict, with the reason where it is inconclusive."""
  reason = claim.get("inconclusive") or ""
  return f"{claim['verdict']}: {reason}" if reason else claim["verdict"]


def _checks_held(claim: dict[str, Any]) -> str:
  """"3/5" sub-checks held, or "—" for a stored claim written before claims had checks."""
  checks = claim.get("checks")
  if not checks:
    return "—"
  return f"{sum(bool(c.get('passed')) for c in checks)}/{len(checks)}"


def sub_check_lines(claims: Sequence[dict[str, Any]]) -> list[str]:
  """Markdown lines listing every claim's sub-checks: name, pass/fail and the numbers."""
  if not claims:
    return []
  lines = ["", "**Sub-checks**", ""]
  for c in claims:
    lines.append(f"- {c['element']} — {c['statement']} **{verdict_text(c)}**")
    checks = c.get("checks")
    if not checks:
      lines.append("  - (stored without sub-checks: verdict as stored)")
      continue
    for k in checks:
      detail = f" — {k['detail']}" if k.get("detail") else ""
      lines.append(f"  - {k['name']}: **{'pass' if k.get('passed') else 'fail'}**{detail}")
  return lines


def _fmt_time(seconds: float | None) -> str:
  return "—" if seconds is None else progress.format_seconds(seconds)


def machine_independent(text: str, workdir: str, data_dir: str = "") -> str:
  """`text` with paths under `workdir` relative to it and paths under `data_dir` written
  `<data_dir>/...`, and installed packages' files as `<site-packages>/...` (e.g. the
  ImageNet weights), so a report reads the same on any machine."""
  for root, name in ((data_dir, "<data_dir>"), (workdir, "")):
    if root:
      root = os.path.abspath(root).rstrip("/") + "/"
      text = text.replace(root, f"{name}/" if name else "")
  return re.sub(r"/[^\s()'\"]*/site-packages/", "<site-packages>/", text)


def collect_claims(workdir: str, statuses: Sequence[dict[str, Any]]
                   ) -> tuple[list[tuple[dict[str, Any], dict[str, Any] | None,
                                         list[dict[str, str]]]],
                              list[tuple[str, dict[str, str]]]]:
  """Per experiment (status, results or None, claims recomputed from its results.json),
  and every claim as (experiment name, claim)."""
  per_exp, all_claims = [], []
  for st in statuses:
    results, claims = None, []
    path = os.path.join(workdir, st["name"], "results.json")
    if st["status"] in ("done", "skipped") and os.path.exists(path):
      results = results_lib.read_json(path)
      try:
        claims = experiment_claims(st["module"], results)
      except Exception as e:  # pylint: disable=broad-except
        st = {**st, "status": "failed", "error": f"claims(): {type(e).__name__}: {e}"}
    per_exp.append((st, results, claims))
    all_claims += [(st["name"], c) for c in claims]
  return per_exp, all_claims


SCALE_DEPENDENT = "scale-dependent"


def write_scales_report(workdir: str, runs: dict[str, tuple[str, Sequence[dict[str, Any]]]],
                        preset: str, total_wall_s: float | None = None,
                        data_dir: str = "") -> str:
  """Writes `<workdir>/REPORT.md` for one job run at several input sizes: every claim's
  verdict at each size side by side, SCALE_DEPENDENT where they differ, and a link to each
  size's own report. `runs`: {label ("64 px"): (its workdir, its statuses)}."""
  meta = results_lib.run_metadata()
  verdicts: dict[tuple[str, str, str], dict[str, str]] = {}
  for label, (sub_dir, statuses) in runs.items():
    _, claims = collect_claims(sub_dir, statuses)
    for name, c in claims:
      verdicts.setdefault((name, c["element"], c["statement"]), {})[label] = c
  labels = list(runs)
  lines = [f"# Reproduction report: preset `{preset}` at {len(labels)} input sizes", "",
           "Towards Understanding the Transferability of Deep Representations — "
           "a JAX/Flax reimplementation (transjax).", "",
           f"- commit: `{meta['git_commit']}`; written {meta['time']}",
           f"- jax {meta['jax']} on {meta['backend']}; python {meta['python']}; "
           f"host {meta['host']}",
           f"- total wall time of this call: {_fmt_time(total_wall_s)}",
           "- each size's full report (numbers, figures, sub-checks, the noise rule): "
           + ", ".join(f"[{label}]({os.path.relpath(d, workdir)}/REPORT.md)"
                       for label, (d, _) in runs.items()), "",
           f"A claim whose verdicts differ between the sizes is marked **{SCALE_DEPENDENT}**: "
           "at this CPU scale its verdict depends on the input size, so neither verdict speaks "
           "for the paper's 224 px alone.", "",
           "## Verdicts by input size", "",
           "| experiment | element | paper's claim | " + " | ".join(labels) + " | |",
           "|---|---|---|" + "---|" * len(labels) + "---|"]
  for (name, element, statement), by_label in verdicts.items():
    claims = [by_label.get(label) for label in labels]
    differ = len({c["verdict"] if c else "not run" for c in claims}) > 1
    mark = f"**{SCALE_DEPENDENT}**" if differ else ""
    lines.append(f"| {name} | {_cell(element)} | {_cell(statement)} | "
                 + " | ".join(_cell(verdict_text(c)) if c else "not run" for c in claims)
                 + f" | {mark} |")
  path = os.path.join(workdir, "REPORT.md")
  with open(path, "w") as f:
    f.write(machine_independent("\n".join(lines) + "\n", workdir, data_dir))
  return path


def write_report(workdir: str, statuses: Sequence[dict[str, Any]], preset: str,
                 total_wall_s: float | None = None, data_dir: str = "") -> str:
  """Writes `<workdir>/REPORT.md` from the experiments' results.json; returns its path.

  Paths in it are relative to `workdir`, or to `data_dir` (see `machine_independent`).

  `statuses`: one dict per experiment in order, with keys name, module, status ("done",
  "skipped" (finished earlier), "failed"), wall_time_s, error.
  """
  meta = results_lib.run_metadata()
  per_exp, all_claims = collect_claims(workdir, statuses)
  counts = {v: sum(c["verdict"] == v for _, c in all_claims) for v in common.VERDICTS}
  networks = sorted({r["model"] for _, r, _ in per_exp if r and r.get("model")})
  bad = [st for st, _, _ in per_exp if st["status"] == "failed"]
  lines = [f"# Reproduction report: preset `{preset}`", "",
           "Towards Understanding the Transferability of Deep Representations — "
           "a JAX/Flax reimplementation (transjax).", "",
           f"- commit: `{meta['git_commit']}`; written {meta['time']}",
           f"- jax {meta['jax']} on {meta['backend']} ({len(meta['devices'])} device(s)); "
           f"python {meta['python']}; host {meta['host']}",
           f"- total wall time of this call: {_fmt_time(total_wall_s)}",
           *([f"- scale: {', '.join(networks)} instead of ResNet-50 (the paper's network), "
              "on small offline subsets"] if networks and preset != "full" else []),
           f"- claims: {counts[common.REPRODUCED]} reproduced, {counts[common.PARTLY]} partly "
           f"reproduced, {counts[common.NOT_REPRODUCED]} not reproduced"
           + (f", {counts[common.INCONCLUSIVE]} inconclusive"
              if counts[common.INCONCLUSIVE] else "")
           + (f"; **{len(bad)} experiment(s) failed**: "
              + ", ".join(st["name"] for st in bad) if bad else ""), "",
           "Verdicts are computed by each experiment's `claims()` from our numbers: each claim "
           "is split into the parts its sentence states (its sub-checks, listed under each "
           "experiment with their numbers); all sub-checks hold → reproduced, some → partly, "
           "none → not reproduced; inconclusive where the measurement cannot speak to the "
           "claim (a compared network not at a minimum), whatever its sub-checks give. *Why* "
           "names the stand-in data and the smaller scale that qualify a verdict, and the "
           "verdict in the other BatchNorm mode where it differs.", "",
           common.NOISE_RULE, "",
           "## All claims", "",
           "| element | paper's claim | paper | ours | checks | verdict | why |",
           "|---|---|---|---|---|---|---|"]
  for _, c in all_claims:
    lines.append(f"| {_cell(c['element'])} | {_cell(c['statement'])} | {_cell(c['paper'])} | "
                 f"{_cell(c['ours'])} | {_checks_held(c)} | **{_cell(verdict_text(c))}** | "
                 f"{_cell(c.get('why', ''))} |")
  lines += ["", "## Experiments", "",
            "| experiment | paper elements | status | wall time | commit |", "|---|---|---|---|---|"]
  for st, results, _ in per_exp:
    elements = ", ".join((results or {}).get("elements", [])) or "—"
    status = {"skipped": "done (earlier call)"}.get(st["status"], st["status"])
    lines.append(f"| [{st['name']}](#{st['name'].replace('_', '-')}) | {elements} | {status} | "
                 f"{_fmt_time(st.get('wall_time_s'))} | {st.get('commit') or '—'} |")
  for st, results, claims in per_exp:
    lines += ["", f"## {st['name']}", ""]
    if st["status"] == "done" and results is None:
      lines.append(f"Preparatory step (no paper element), done in {_fmt_time(st.get('wall_time_s'))}.")
      continue
    if st["status"] == "failed" or results is None:
      lines.append(f"**Failed** after {_fmt_time(st.get('wall_time_s'))}: "
                   f"`{_cell(st.get('error') or 'no results.json')}`")
      continue
    lines.append(f"Paper elements: {', '.join(results.get('elements', []))}. "
                 f"Wall time: {_fmt_time(st.get('wall_time_s'))}. "
                 f"Results: [{st['name']}/results.json]({st['name']}/results.json).")
    lines += ["", "**Data**", ""]
    lines += [f"- {d}" for d in results.get("data", [])] or ["- (not recorded)"]
    lines += ["", "**Our numbers**", "", results.get("summary", "(no summary)"), ""]
    for fig in results.get("figures", []):
      lines.append(f"![{fig}]({st['name']}/{fig})")
    lines += ["", "**Claims**", "", "| element | paper | ours | verdict | why |",
              "|---|---|---|---|---|"]
    for c in claims:
      lines.append(f"| {_cell(c['element'])} | {_cell(c['paper'])} | {_cell(c['ours'])} | "
                   f"**{_cell(verdict_text(c))}** | {_cell(c.get('why', ''))} |")
    lines += sub_check_lines(claims)
  path = os.path.join(workdir, "REPORT.md")
  with open(path, "w") as f:
    f.write(machine_independent("\n".join(lines) + "\n", workdir, data_dir))
  return path
