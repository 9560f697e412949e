"""Section 6 (Theorems 1-3, Appendix C) as one more paper experiment.

Runs the standalone theory verifier (`theory.sweep.run`, configs/theory.py presets) into
`<workdir>/sweep` and turns its computed verdicts into Claims. The verifier judges
equality checks by relative error at the largest width (and whether it falls with m) and
bound checks by measured <= bound; a check counts as holding here when its status is
"holds" (or "holds for large m" for a bound).
"""

from __future__ import annotations

import glob
import os
from typing import Any

import ml_collections

from transjax import results as results_lib
from transjax.paper import common

FIGURES: tuple[str, ...] = ("sweep/similarity.png",)
ELEMENTS = ("Theorem 1", "Theorem 2", "Theorem 3")
HOLDS = ("holds", "holds for large m")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  from theory import sweep  # pylint: disable=import-outside-toplevel
  workdir = results_lib.ensure_workdir(workdir)
  out = sweep.run(config, os.path.join(workdir, "sweep"))
  sim = out["similarity"]
  rows = ["| check | status | verdict of the verifier |", "|---|---|---|"]
  for check, v in out["verdicts"].items():
    rows.append(f"| {check} | {v['status']} | {v['text']} |")
  rows.append(f"| similarity ordering, Theorem 1 | {sim['theorem1_rank']['status']} | "
              f"{sim['theorem1_rank']['text']} |")
  rows.append(f"| similarity ordering, Theorem 2 | {sim['theorem2_rank']['status']} | "
              f"{sim['theorem2_rank']['text']} |")
  rows.append(f"| fine-tuning vs scratch | {sim['finetune_vs_scratch']['agree']}/"
              f"{sim['finetune_vs_scratch']['total']} agree | "
              f"{sim['finetune_vs_scratch']['text']} |")
  rows += ["", "Full verifier report: [sweep/report.md](sweep/report.md)."]
  figures = sorted(os.path.relpath(p, workdir)
                   for p in glob.glob(os.path.join(workdir, "sweep", "*.png")))
  results = {
      "elements": list(ELEMENTS),
      "data": [out["task"]["description"]] + [r["task"]["description"] for r in out["real"]],
      "summary": "\n".join(rows), "figures": figures, "preset": out["config"]["preset"],
      "verdicts": out["verdicts"],
      "similarity": {k: sim[k] for k in ("theorem1_rank", "theorem2_rank",
                                         "finetune_vs_scratch")},
      "sweep_wall_time_s": out.get("wall_time_s")}
  return common.write_results(workdir, results, claims(results))


def _holds(v: dict[str, Any]) -> bool:
  return v.get("status") in HOLDS


def _check(name: str, v: dict[str, Any]) -> common.Check:
  return common.Check(name, _holds(v), f"verifier: {v.get('status')}"
                      + (f" — {v['text']}" if v.get("text") else ""))


def claims(results: dict[str, Any]) -> list[common.Claim]:
  """Theorems 1-3 from the verifier's statuses (float64 computations; it judges its own
  tolerances, see theory.sweep)."""
  v, sim = results["verdicts"], results["similarity"]
  why = ("" if results.get("preset") == "full" else
         f"preset {results.get('preset')}: small widths and few seeds, so asymptotic "
         "equalities may only be approaching")
  fvs = sim["finetune_vs_scratch"]

  def status(*keys):
    return "; ".join(f"{k}: {v[k]['status']}" for k in keys)

  return [
      common.Claim(
          element="Theorem 1",
          statement="The gradient norm w.r.t. the activations after pretraining is "
                    "||dL/dX(0)||^2 - y_Q'y_Q + ||y_Q - y_P->Q||^2, and smaller for similar tasks.",
          paper="equality as m -> infinity; ordering by task similarity",
          ours=f"{status('theorem1', 'theorem1_vector')}; similarity ordering: "
               f"{sim['theorem1_rank']['status']}",
          checks=[_check("Theorem 1 equality (norm)", v["theorem1"]),
                  _check("Theorem 1 equality (vector form)", v["theorem1_vector"]),
                  _check("gradient norm ordered by task similarity", sim["theorem1_rank"])],
          why=why),
      common.Claim(
          element="Theorem 2",
          statement="||W(Q) - W(P)||_F -> sqrt((y_Q - y_P->Q)' H_Q^-1 (y_Q - y_P->Q)); "
                    "fine-tuning moves less for similar tasks than training from scratch.",
          paper="equality as m -> infinity; scratch deviation sqrt(y_Q' H_Q^-1 y_Q)",
          ours=(f"{status('theorem2', 'theorem2_scratch')}; similarity ordering: "
                f"{sim['theorem2_rank']['status']}; fine-tune vs scratch prediction matches "
                f"{fvs['agree']}/{fvs['total']}"),
          checks=[_check("Theorem 2 equality (fine-tuned deviation)", v["theorem2"]),
                  _check("Theorem 2 equality (scratch deviation)", v["theorem2_scratch"]),
                  _check("deviation ordered by task similarity", sim["theorem2_rank"]),
                  common.Check("fine-tuning moves less than scratch wherever predicted",
                               fvs["total"] > 0 and fvs["agree"] == fvs["total"],
                               f"{fvs['agree']} of {fvs['total']} tasks agree with the "
                               "prediction")],
          why=why),
      common.Claim(
          element="Theorem 3",
          statement="Fine-tuning converges linearly at rate (1 - eta lambda_Q / 2); per-neuron "
                    "distances obey Lemmas 1, 3 and 4.",
          paper="bounds hold for m large enough",
          ours=status("theorem3", "lemma1", "lemma4", "lemma3"),
          checks=[_check(f"{k.replace('theorem', 'Theorem ').replace('lemma', 'Lemma ')} bound",
                         v[k]) for k in ("theorem3", "lemma1", "lemma4", "lemma3")],
          why=why),
  ]


def validate(config: ml_collections.ConfigDict) -> None:
  from theory import sweep  # pylint: disable=import-outside-toplevel
  sweep.validate_config(config)
