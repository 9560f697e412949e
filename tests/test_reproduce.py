"""The reproduce job: resume skips finished experiments, failures are recorded without
stopping the others, REPORT.md verdicts are computed from the numbers."""

from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap

import pytest

from transjax import memory
from transjax.paper.presets import reproduce as reproduce_config
from transjax.paper import common, report, reproduce


@pytest.fixture
def fake_experiments(tmp_path, monkeypatch):
  """An experiment module that fails."""
  pkg = tmp_path / "fakepkg"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "boom.py").write_text(textwrap.dedent("""
      FIGURES = (); ELEMENTS = ("Fig 0",)
      def run(config, workdir):
        raise RuntimeError("boom on purpose")
      def claims(results):
        return []
  """))
  (pkg / "boom_config.py").write_text(textwrap.dedent("""
      import ml_collections
      def get_config(arg=None):
        return ml_collections.ConfigDict({"preset": arg, "shared_dir": "", "data_dir": ""})
  """))
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setitem(reproduce.EXPERIMENTS, "boom", (importlib.import_module("fakepkg.boom"),
                                                      importlib.import_module("fakepkg.boom_config")))
  yield
  for m in [m for m in sys.modules if m.startswith("fakepkg")]:
    del sys.modules[m]


def test_reproduce_resumes_and_records_failures(tmp_path, fake_experiments):
  config = reproduce_config.get_config("smoke")
  config.experiments = ("boom", "gradient_variation")
  config.sources = ("mnist",)
  workdir = str(tmp_path / "run")
  out = reproduce.run(config, workdir)
  status = {s["name"]: s for s in out["statuses"]}
  assert status["gradient_variation"]["status"] == "done"
  assert status["boom"]["status"] == "failed" and "boom on purpose" in status["boom"]["error"]
  assert out["failed"] == ["boom"]
  done = os.path.join(workdir, "gradient_variation", "done.json")
  mtime = os.path.getmtime(done)
  text = open(out["report"]).read()
  assert "boom on purpose" in text and "**Failed**" in text
  assert "Fig 6" in text and "gradient_variation/gradient_variation.png" in text

  out2 = reproduce.run(config, workdir)   # the second call must not retrain
  status2 = {s["name"]: s for s in out2["statuses"]}
  assert status2["gradient_variation"]["status"] == "skipped"
  assert status2["gradient_variation"]["wall_time_s"] == status["gradient_variation"]["wall_time_s"]
  assert os.path.getmtime(done) == mtime
  assert status2["sources"]["wall_time_s"] < 5


def _fake_minima(workdir, pretrained_better: bool):
  good, bad = ([1.0, 0.5], 0.1), ([9.0, 4.0], 2.0)
  p, r = (good, bad) if pretrained_better else (bad, good)
  stats = lambda inc: {"stats": {"mean_increase": inc, "max_increase": 2 * inc}}
  results = {"elements": ["Fig 3", "Fig 10"], "data": ["fake data"], "summary": "| x |",
             "figures": [], "eigenvalues": {"pretrained": p[0], "random": r[0]},
             "landscape": {"pretrained": stats(p[1]), "random": stats(r[1])},
             # stale stored claims that say the opposite: the report must not trust them
             "claims": [{"element": "Fig 3", "statement": "", "paper": "", "ours": "",
                         "verdict": common.REPRODUCED, "why": ""}]}
  os.makedirs(os.path.join(workdir, "minima"), exist_ok=True)
  with open(os.path.join(workdir, "minima", "results.json"), "w") as f:
    json.dump(results, f)


@pytest.mark.parametrize("pretrained_better, verdict", [(False, common.NOT_REPRODUCED),
                                                        (True, common.REPRODUCED)])
def test_report_verdicts_are_computed(tmp_path, pretrained_better, verdict):
  _fake_minima(str(tmp_path), pretrained_better)
  path = report.write_report(str(tmp_path), [
      {"name": "minima", "module": "transjax.paper.minima", "status": "done",
       "wall_time_s": 12.0, "error": ""}], "quick")
  text = open(path).read()
  rows = [l for l in text.splitlines() if l.startswith("| Fig 3 |")]
  assert rows and all(f"**{verdict}**" in r for r in rows)
  other = ({common.REPRODUCED, common.NOT_REPRODUCED} - {verdict}).pop()
  assert f"**{other}**" not in text
  assert "12 s" in text and "fake data" in text


def test_reproduce_configs_load():
  for preset in ("smoke", "quick", "full"):
    c = reproduce_config.get_config(preset)
    assert set(c.experiments) <= set(reproduce.EXPERIMENTS)
  with pytest.raises(ValueError, match="Unknown experiments"):
    c = reproduce_config.get_config("smoke")
    c.experiments = ("nope",)
    reproduce.run(c, "/tmp/never_used_reproduce_dir")


def test_report_paths_are_machine_independent(tmp_path):
  text = (f"train: idx:{tmp_path}/data/mnist (stand-in); run {tmp_path}/run/sources/mnist; "
          "other /elsewhere/x")
  out = report.machine_independent(text, str(tmp_path / "run"), str(tmp_path / "data"))
  assert out == "train: idx:<data_dir>/mnist (stand-in); run sources/mnist; other /elsewhere/x"
  weights = "init imagenet:efficientnet_lite0 (/opt/venv/lib/python3.11/site-packages/pkg/w.pth)"
  assert report.machine_independent(weights, str(tmp_path)) == (
      "init imagenet:efficientnet_lite0 (<site-packages>/pkg/w.pth)")


def test_experiment_overrides_reach_one_experiment_and_are_checked_first(monkeypatch):
  """`experiment_overrides` sets fields of single experiments' configs; every config is
  validated before the job trains anything (here: the full minima's Lanczos basis)."""
  monkeypatch.setattr(memory, "available_bytes", lambda: (24 << 30, "test host memory"))
  c = reproduce_config.get_config("full")
  with pytest.raises(ValueError, match=r"minima \(full preset\): paper_minima top-20: .*"
                                       r"at most 137 steps fit"):
    reproduce.check_configs(c, "/tmp/never_used_reproduce_dir/sources")
  c.experiment_overrides = "minima.lanczos_max_steps=120,init_landscapes.resolution=21"
  built = reproduce.check_configs(c, "/tmp/never_used_reproduce_dir/sources")
  assert built["minima"][1].lanczos_max_steps == 120
  assert built["init_landscapes"][1].resolution == 21
  assert built["gradient_stats"][1].get("resolution", None) != 21   # only the one named
  c.experiment_overrides = "minima.top_k=abc"
  with pytest.raises(ValueError, match="minima.top_k='abc'"):
    reproduce.check_configs(c, "/tmp/never_used_reproduce_dir/sources")
  assert not os.path.exists("/tmp/never_used_reproduce_dir")


def test_report_puts_the_verdicts_of_two_scales_side_by_side(tmp_path):
  status = [{"name": "minima", "module": "transjax.paper.minima", "status": "done",
             "wall_time_s": 1.0, "error": ""}]
  runs = {}
  for label, better in (("64 px", True), ("96 px", False)):
    sub = str(tmp_path / label.replace(" ", ""))
    _fake_minima(sub, better)
    runs[label] = (sub, status)
  text = open(report.write_scales_report(str(tmp_path), runs, "imagenet")).read()
  rows = [l for l in text.splitlines() if l.startswith("| minima | Fig 3 |")]
  assert len(rows) == 1 and common.REPRODUCED in rows[0] and common.NOT_REPRODUCED in rows[0]
  assert f"**{report.SCALE_DEPENDENT}**" in rows[0]
  assert "[64 px](64px/REPORT.md)" in text and "[96 px](96px/REPORT.md)" in text


def test_scales_run_the_job_once_per_input_size(tmp_path):
  c = reproduce_config.get_config("imagenet")
  assert c.scales == (64, 96)
  sub = reproduce.at_scale(c, 96)
  assert sub.scales == () and sub.train_overrides == "model.input_size=96"
  built = reproduce.check_configs(sub, str(tmp_path / "sources"))
  from transjax.paper import pairs  # pylint: disable=import-outside-toplevel
  assert all(run.model.input_size == 96
             for run in pairs.pair_training_configs(built["minima"][1]))
  c.scales = (64, 4)
  with pytest.raises(ValueError, match="at least 8 px"):
    reproduce.run(c, str(tmp_path / "never"))
  assert not (tmp_path / "never").exists()
