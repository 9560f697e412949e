"""The transferability study end to end on its smoke preset (no data files), and resumed.

One smoke run (a tiny zoo of 4 LeNet checkpoints, 2 targets, 2 rates x 2 seeds) is shared
by the tests: its report's numbers must be consistent with its per-run files and with
themselves, and a second call must reuse every file and give the same report.
"""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import pytest

from configs import transferability_study as study_config
from transjax import results as results_lib
from transjax.transferability import ranking, study


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("study"))
  config = study_config.get_config("smoke")
  lines = []
  report = study.run_study(config, workdir, log=lines.append)
  return config, workdir, report, lines


def _finite_or_nan_in(x, lo, hi):
  return x is None or (isinstance(x, float) and math.isnan(x)) or lo <= x <= hi


def test_outputs_written_and_progress_has_eta(smoke_run):
  config, workdir, report, lines = smoke_run
  for name in ("report.md", "report.json", "fig_deviation.png",
               *(f"fig_{t['name']}.png" for t in config.targets)):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert any("ETA" in line for line in lines)
  with open(os.path.join(workdir, "report.json"), encoding="utf-8") as f:
    assert json.load(f)["summary"].keys() == report["summary"].keys()


def test_no_candidate_scored_on_its_own_domain(smoke_run):
  config, _, report, _ = smoke_run
  domain = {e["label"]: e["domain"] for e in report["zoo"]}
  for t in config.targets:
    cands = report["per_target"][t["name"]]["candidates"]
    assert cands and all(domain[c] != t["domain"] for c in cands)
  # 2 sources x 2 lengths; digits sees all 4, noisy_shapes the 2 shapes ones.
  assert len(report["per_target"]["digits"]["candidates"]) == 4
  assert len(report["per_target"]["noisy_shapes"]["candidates"]) == 2


def test_numbers_are_consistent(smoke_run):
  config, workdir, report, _ = smoke_run
  lrs = list(config.finetune.lrs)
  for target, pt in report["per_target"].items():
    acc = np.asarray(pt["finetune_mean"])
    assert np.all((acc >= 0) & (acc <= 1)) and np.all(np.asarray(pt["finetune_std"]) >= 0)
    assert all(lr in lrs for lr in pt["chosen_lr"])
    for i, cand in enumerate(pt["candidates"]):
      slug = cand.replace("/", "_").replace("@", "_")
      files = glob.glob(os.path.join(workdir, "finetune", target, slug, "*.json"))
      assert len(files) == len(lrs) + len(config.finetune.seeds) - 1
      runs = {os.path.basename(f): json.load(open(f, encoding="utf-8")) for f in files}
      seed0 = [runs[f"lr{lr:g}_seed{config.finetune.seeds[0]}.json"] for lr in lrs]
      best = max(r["val_accuracy"] for r in seed0)
      chosen = pt["chosen_lr"][i]
      assert runs[f"lr{chosen:g}_seed{config.finetune.seeds[0]}.json"]["val_accuracy"] == best
      tests = [runs[f"lr{chosen:g}_seed{s}.json"]["test_accuracy"]
               for s in config.finetune.seeds]
      assert acc[i] == pytest.approx(np.mean(tests))
      for r in runs.values():
        assert r["deviation_norm"]["total"] == pytest.approx(
            math.hypot(r["deviation_norm"]["head"], r["deviation_norm"]["body"]))
    for name, row in pt["vs_finetune"].items():
      assert _finite_or_nan_in(row["weighted_tau"], -1, 1), (target, name)
      assert _finite_or_nan_in(row["tau"], -1, 1), (target, name)
      assert row["regret"] >= 0, (target, name)
      s = np.asarray(pt["scores"][name], np.float64)
      if np.all(np.isfinite(s)):
        assert row["regret"] == pytest.approx(ranking.top1_regret(s, acc))
  for name, row in report["summary"].items():
    per = [report["per_target"][t]["vs_finetune"][name]["weighted_tau"]
           for t in report["per_target"]]
    per = [x for x in per if x is not None and math.isfinite(x)]
    if per:
      assert row["vs_finetune_weighted_tau"] == pytest.approx(np.mean(per))
      lo, hi = row["weighted_tau_ci"]
      assert -1 <= lo <= hi <= 1
    assert row["seconds_mean"] >= 0
  for name in config.scores:
    assert report["summary"][name]["seconds_mean"] > 0
  src = [x for pt in report["per_target"].values() for x in pt["scores"]["source_accuracy"]]
  assert src and all(0 <= x <= 1 for x in src)
  assert len(glob.glob(os.path.join(workdir, "source_accuracy", "*.json"))) == 4
  for key, d in report["deviation"].items():
    assert -1 <= d["spearman_all"] <= 1, key
    assert d["pairs"] == 6 and min(d["measured"]) > 0
  assert {"theory_deviation:total:chosen lr", "ntk_deviation:head:lr 0.01"} <= set(
      report["deviation"])
  assert set(report["goal"]["checks"]) >= {"margin_0.10", "above_controls"}


def test_resumed_run_reuses_files_and_gives_same_numbers(smoke_run):
  config, workdir, report, _ = smoke_run
  files = sorted(glob.glob(os.path.join(workdir, "f*", "**", "*.json"), recursive=True))
  mtimes = [os.path.getmtime(f) for f in files]
  lines = []
  again = study.run_study(config, workdir, log=lines.append)
  assert [os.path.getmtime(f) for f in files] == mtimes
  assert not any("fine-tune" in line or "pretraining" in line for line in lines)
  # As JSON (NaN -> null: a NaN never equals itself).
  for key in ("per_target", "summary", "deviation", "goal"):
    assert results_lib.to_jsonable(again[key]) == results_lib.to_jsonable(report[key]), key


def test_interrupted_run_redoes_only_what_is_missing_and_the_same(smoke_run):
  config, workdir, report, _ = smoke_run
  ft = sorted(glob.glob(os.path.join(workdir, "finetune", "digits", "*", "*seed1.json")))[0]
  frozen = sorted(glob.glob(os.path.join(workdir, "frozen", "noisy_shapes", "*.json")))[0]
  old = {p: json.load(open(p, encoding="utf-8")) for p in (ft, frozen)}
  for p in old:
    os.remove(p)
  lines = []
  again = study.run_study(config, workdir, log=lines.append)
  assert len([line for line in lines if line.startswith("[")]) == 2
  new_ft = json.load(open(ft, encoding="utf-8"))
  for key in ("val_accuracy", "test_accuracy", "deviation_norm", "train_loss"):
    assert new_ft[key] == pytest.approx(old[ft][key], rel=1e-5), key
  new_frozen = json.load(open(frozen, encoding="utf-8"))
  assert new_frozen["probe"] == old[frozen]["probe"]
  for name, value in old[frozen]["scores"].items():
    assert new_frozen["scores"][name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
  assert again["per_target"]["digits"]["chosen_lr"] == report["per_target"]["digits"]["chosen_lr"]


def test_a_changed_config_is_refused_but_the_bootstrap_may_change(smoke_run):
  config, workdir, _, _ = smoke_run
  changed = study_config.get_config("smoke")
  with changed.unlocked():
    changed.finetune.num_steps = 31
  with pytest.raises(ValueError, match="finetune.num_steps: 30 -> 31"):
    study.run_study(changed, workdir)
  changed = study_config.get_config("smoke")
  with changed.unlocked():
    changed.bootstrap = 20
  assert study.run_study(changed, workdir, log=lambda _: None)["bootstrap"]["resamples"] == 20


def test_bad_config_is_one_clear_error(tmp_path):
  config = study_config.get_config("smoke")
  with config.unlocked():
    config.scores = ("logme", "no_such_score")
  with pytest.raises(ValueError, match="no_such_score"):
    study.run_study(config, str(tmp_path))


def test_binary_defines_no_flags_on_import():
  from absl import flags  # pylint: disable=import-outside-toplevel
  before = set(flags.FLAGS)
  # pylint: disable-next=import-outside-toplevel,unused-import
  import experiments.transferability_study  # noqa: F401
  assert set(flags.FLAGS) == before
