"""The layering the code relies on: the library reads no app layer, experiments import no
sibling experiment, only transjax and theory are installed, theory imports no transjax."""

from __future__ import annotations

import ast
import pathlib

import pytest

from tests.conftest import ROOT
from transjax.paper import reproduce, reproduce_app

SHARED = {"common", "sources", "pairs", "report", "reproduce", "reproduce_app", "presets",
          "bn_modes"}
EXPERIMENT_MODULES = sorted(m.__name__.rsplit(".", 1)[1] for m, _ in reproduce.EXPERIMENTS.values())


def _imports(path: pathlib.Path) -> set[str]:
  """Every module a file imports, statically or through an importlib string literal."""
  tree = ast.parse(path.read_text())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      found.add(node.module)
      found |= {f"{node.module}.{a.name}" for a in node.names}
    elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
          and node.args and isinstance(node.args[0], ast.Constant)):
      found.add(str(node.args[0].value))
  return found


def test_the_library_imports_no_configs_or_experiments():
  offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p)
                                                 if m.split(".")[0] in ("configs", "experiments"))
               for p in (ROOT / "transjax").rglob("*.py")}
  assert not {k: v for k, v in offenders.items() if v}


def test_theory_imports_no_transjax():
  offenders = [str(p) for p in (ROOT / "theory").rglob("*.py")
               if any(m.split(".")[0] == "transjax" for m in _imports(p))]
  assert not offenders


@pytest.mark.parametrize("name", EXPERIMENT_MODULES)
def test_an_experiment_imports_no_other_experiment(name):
  path = ROOT / "transjax" / "paper" / f"{name}.py"
  siblings = {f"transjax.paper.{m}" for m in EXPERIMENT_MODULES if m != name}
  assert not (_imports(path) & siblings)
  assert set(EXPERIMENT_MODULES).isdisjoint(SHARED)


def test_only_transjax_and_theory_are_installed():
  setup = (ROOT / "setup.py").read_text()
  call = next(n for n in ast.walk(ast.parse(setup)) if isinstance(n, ast.Call)
              and getattr(n.func, "attr", "") == "find_packages")
  include = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "include"))
  import setuptools  # pylint: disable=import-outside-toplevel
  packages = setuptools.find_packages(str(ROOT), include=include)
  assert {p.split(".")[0] for p in packages} == {"transjax", "theory"}
  assert "transjax.paper.presets" in packages


def test_the_console_command_takes_a_preset_name():
  argv = reproduce_app._with_preset_names(["prog", "--config=quick", "--config.data_dir=/d"])
  assert argv == ["prog", f"--config={reproduce_app.PRESET_FILE}:quick", "--config.data_dir=/d"]
  assert reproduce_app._with_preset_names(["p", "--config=configs/reproduce.py:full"])[1] == (
      "--config=configs/reproduce.py:full")


def test_config_files_re_export_the_library_presets():
  from configs import paper_minima, reproduce as reproduce_cfg  # pylint: disable=import-outside-toplevel
  from transjax.paper.presets import minima, reproduce as reproduce_presets  # pylint: disable=import-outside-toplevel
  assert paper_minima.get_config is minima.get_config
  assert reproduce_cfg.get_config is reproduce_presets.get_config


# Floors, lowest first: a package may import transjax packages on its own floor or below.
# ops is the floor the models stand on; the models, data and the pure loss below the
# trainer and the instruments; the paper experiments and transferability on top.
FLOORS = {
    "transjax.ops": 0,
    "transjax.models": 1,
    "transjax.analysis": 3,
    "transjax.paper": 4,
    "transjax.transferability": 4,
}


def _floor(module: str) -> int | None:
  for prefix, floor in FLOORS.items():
    if module == prefix or module.startswith(prefix + "."):
      return floor
  return None


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_a_package_imports_nothing_above_its_floor(package):
  floor = FLOORS[package]
  root = ROOT.joinpath(*package.split("."))
  offenders = {}
  for path in root.rglob("*.py"):
    above = sorted(m for m in _imports(path)
                   if m.startswith("transjax") and (_floor(m) or 0) > floor)
    if above:
      offenders[str(path.relative_to(ROOT))] = above
  assert not offenders


def test_ops_import_no_other_transjax_package():
  offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith("transjax")
                                                 and not m.startswith("transjax.ops"))
               for p in (ROOT / "transjax" / "ops").rglob("*.py")}
  assert not {k: v for k, v in offenders.items() if v}
