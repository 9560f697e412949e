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
# weights; the weights below the trainer; the trainer below the instruments and the
# figures (it reaches them only through the callbacks its callers register,
# train_callbacks); the paper experiments and transferability on top.
FLOORS = {
    "transjax.ops": 0,
    "transjax.models": 1,
    "transjax.weights": 2,
    "transjax.train": 3,
    "transjax.analysis": 4,
    "transjax.plotting": 4,
    "transjax.train_callbacks": 4,
    "transjax.paper": 5,
    "transjax.transferability": 5,
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
  module = root.with_suffix(".py")   # a module on its own, or a package's files
  paths = [module] if module.is_file() else sorted(root.rglob("*.py"))
  assert paths, f"{package} is neither a module nor a package"
  offenders = {}
  for path in paths:
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


# The weights package, one idea a module, each importing only those before it.
WEIGHTS_ORDER = ("state_dict", "torchvision_resnet", "efficientnet_pytorch", "named", "build",
                 "run_folder", "initial")


def _weights_modules_imported(path: pathlib.Path) -> set[str]:
  """The transjax.weights modules a file imports ("__init__" for the package itself)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module == "transjax":
      found |= {"__init__" for a in node.names if a.name == "weights"}
    elif isinstance(node, ast.ImportFrom) and node.module == "transjax.weights":
      found |= {a.name if a.name in WEIGHTS_ORDER else "__init__" for a in node.names}
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transjax.weights."):
      found.add(node.module.split(".")[2])
    elif isinstance(node, ast.Import):
      found |= {(a.name.split(".") + ["__init__"])[2] for a in node.names
                if a.name.split(".")[:2] == ["transjax", "weights"]}
  return found


def test_the_weights_modules_import_one_way():
  root = ROOT / "transjax" / "weights"
  assert sorted(p.stem for p in root.glob("*.py")) == sorted(WEIGHTS_ORDER + ("__init__",))
  offenders = {name: sorted(_weights_modules_imported(root / f"{name}.py")
                            - set(WEIGHTS_ORDER[:i]))
               for i, name in enumerate(WEIGHTS_ORDER)}
  assert not {k: v for k, v in offenders.items() if v}


def test_nothing_the_weights_package_imports_imports_it_back():
  """No import cycle through transjax.weights: what it imports outside itself (and what
  that imports, lazily too) never leads back to it (the trainer, config and run data read
  the weights, so the weights read none of them)."""
  files = {}
  for p in (ROOT / "transjax").rglob("*.py"):
    parts = p.relative_to(ROOT).with_suffix("").parts
    files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

  def deps(name):
    out = set()
    for m in _imports(files[name]):
      parts = m.split(".")
      # Importing a module runs every package above it.
      out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(files)
    return out

  def inside(name):
    return name == "transjax.weights" or name.startswith("transjax.weights.")

  seen, path_to = set(), {}
  todo = [(d, (w, d)) for w in files if inside(w) for d in deps(w) if not inside(d)]
  while todo:
    name, path = todo.pop()
    if name in seen:
      continue
    seen.add(name)
    path_to[name] = path
    todo += [(d, path + (d,)) for d in deps(name) if d not in seen]
  assert not [" -> ".join(path_to[n]) for n in seen if inside(n)]


# The analysis packages split by idea (issue 30), each module importing only those
# before it, none the package's __init__ (which re-exports them all).
ANALYSIS_ORDERS = {
    "transjax.analysis.hessian": ("operator", "basis", "trace", "lanczos", "power", "density"),
    "transjax.analysis.landscape": ("directions", "points", "resume", "stats", "chunks",
                                    "grid"),
}


def _package_modules_imported(path: pathlib.Path, package: str, modules) -> set[str]:
  """The modules of `package` a file imports ("__init__" for the package itself)."""
  parent, _, last = package.rpartition(".")
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module == parent:
      found |= {"__init__" for a in node.names if a.name == last}
    elif isinstance(node, ast.ImportFrom) and node.module == package:
      found |= {a.name if a.name in modules else "__init__" for a in node.names}
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + "."):
      found.add(node.module[len(package) + 1:].split(".")[0])
    elif isinstance(node, ast.Import):
      found |= {(a.name[len(package) + 1:] or "__init__").split(".")[0] for a in node.names
                if a.name == package or a.name.startswith(package + ".")}
  return found


@pytest.mark.parametrize("package", sorted(ANALYSIS_ORDERS))
def test_the_analysis_packages_modules_import_one_way(package):
  order = ANALYSIS_ORDERS[package]
  root = ROOT.joinpath(*package.split("."))
  assert sorted(p.stem for p in root.glob("*.py")) == sorted(order + ("__init__",))
  offenders = {name: sorted(_package_modules_imported(root / f"{name}.py", package, order)
                            - set(order[:i]))
               for i, name in enumerate(order)}
  assert not {k: v for k, v in offenders.items() if v}
