"""Tests of theory.theorems / tasks / sweep validation: convergence in m and bad inputs."""

import math

import numpy as np
import pytest

from theory import presets as theory_config
from theory import sweep, tasks, theorems
from theory.errors import (ConfigError, LabelRangeError, MemoryBudgetError, MissingDataError,
                           OffSphereError, SingularGramError)


def _small_task():
  return tasks.synthetic_task(seed=0, dim=5, n_source=10, n_target=10, angle=math.radians(20),
                              label_mix=0.75)


def test_theorem1_and_theorem2_errors_fall_as_width_grows():
  # Below m ~ 2^10 this small problem is not yet in the kernel regime and its errors are
  # erratic (sometimes small by chance), so the decrease is asserted from 2^11 to 2^15.
  task = _small_task()
  kern = theorems.kernels(task)
  settings = theorems.TrainSettings(kappa=0.02, max_steps=20_000)
  checks = ("theorem1", "theorem1_linearized", "theorem2", "theorem2_scratch", "lemma3")
  errors = {}
  for width in (2**11, 2**15):
    records = [theorems.measure(task, kern, width, seed, settings) for seed in (0, 1, 2)]
    errors[width] = {check: np.mean([r[check]["relative_error"] for r in records])
                     for check in checks}
    for record in records:
      assert record["lemma1"]["holds"] and record["lemma4"]["holds"]
      assert record["theorem3"]["holds"]
  for check in checks:
    assert errors[2**15][check] < errors[2**11][check], (check, errors)
  # Loose thresholds: Theorem 1's scalar form keeps an O(kappa) bias (see docs/theory.md).
  assert errors[2**15]["theorem1"] < 0.15, errors
  assert errors[2**15]["theorem2"] < 0.05, errors
  assert errors[2**15]["theorem2_scratch"] < 0.1, errors


def test_verdicts_are_computed_from_numbers():
  falling = [{"m": m, "seed": 0, "relative_error": 1 / math.sqrt(m)} for m in (64, 256, 1024)]
  assert theorems.equality_verdict(falling, 0.05)["status"] == "holds"
  assert theorems.equality_verdict(falling, 0.01)["status"] == "approaching"
  flat = [{"m": m, "seed": 0, "relative_error": 0.5} for m in (64, 256, 1024)]
  assert theorems.equality_verdict(flat, 0.1)["status"] == "does not hold"
  assert theorems.loglog_slope([64, 256, 1024], [1 / 8, 1 / 16, 1 / 32]) == pytest.approx(-0.5)
  bound = [{"m": 64, "holds": False, "measured": 2.0, "predicted": 1.0, "relative_error": 2.0},
           {"m": 256, "holds": True, "measured": 0.5, "predicted": 1.0, "relative_error": 0.5}]
  verdict = theorems.bound_verdict(bound)
  assert verdict["status"] == "holds for large m" and verdict["worst_ratio"] == 2.0
  assert theorems.similarity_verdict([1, 2, 3, 4], [1, 2, 3, 4], 0.7)["status"] == "holds"
  assert theorems.similarity_verdict([4, 3, 2, 1], [1, 2, 3, 4], 0.7)["status"] == "does not hold"


def test_off_sphere_inputs_are_normalised_or_refused_when_strict():
  x = np.array([[2.0, 0.0], [0.0, 3.0]])
  y = np.array([0.5, -0.5])
  np.testing.assert_allclose(np.linalg.norm(tasks.check_inputs(x, y, "P"), axis=1), 1.0)
  with pytest.raises(OffSphereError, match="unit sphere"):
    tasks.check_inputs(x, y, "P", strict=True)


def test_labels_outside_unit_interval_are_refused():
  with pytest.raises(LabelRangeError, match=r"\|y\| <= 1"):
    tasks.check_inputs(np.eye(2), np.array([0.5, 1.5]), "Q")


def test_duplicate_inputs_make_kernels_refuse_with_lambda_min():
  task = _small_task()
  x_source = task.x_source.copy()
  x_source[1] = x_source[0]
  bad = tasks.TaskPair("dup", "dup", x_source, task.y_source, task.x_target, task.y_target, {})
  with pytest.raises(SingularGramError, match="lambda_min"):
    theorems.kernels(bad)


def test_config_with_unknown_key_or_bad_value_is_refused_before_work(tmp_path):
  config = theory_config.get_config("smoke")
  with config.unlocked():
    config.widths_typo = (1, 2)
  with pytest.raises(ConfigError, match="unknown key widths_typo"):
    sweep.run(config, tmp_path)
  config = theory_config.get_config("smoke")
  config.kappa = -1.0
  with pytest.raises(ConfigError, match="kappa"):
    sweep.validate_config(config)
  config = theory_config.get_config("smoke")
  config.real.kinds = ("imagenet",)
  with pytest.raises(ConfigError, match="real.kinds"):
    sweep.validate_config(config)
  assert not (tmp_path / "results.json").exists()


def test_oversized_widths_are_refused_with_the_estimate(tmp_path):
  config = theory_config.get_config("smoke")
  config.log2_widths = (8, 26)
  with pytest.raises(MemoryBudgetError, match="GiB"):
    sweep.run(config, tmp_path)


def test_missing_real_data_names_the_expected_files(tmp_path):
  with pytest.raises(MissingDataError, match="train-images-idx3-ubyte.gz"):
    tasks.real_task("mnist_usps", 0, 10, 20, 20, data_dir=str(tmp_path))


def test_digits_task_is_on_the_sphere_with_binary_labels():
  task = tasks.real_task("digits_relabel", 0, 12, 30, 30)
  np.testing.assert_allclose(np.linalg.norm(task.x_source, axis=1), 1.0)
  assert set(np.unique(task.y_target)) == {-1.0, 1.0}
  assert "PCA" in task.description


def test_real_mnist_task_runs_the_checks(real_data_dir):
  task = tasks.real_task("mnist_usps", 0, 10, 20, 20, data_dir=real_data_dir)
  assert "USPS" in task.description and "PCA" in task.description
  kern = theorems.kernels(task)
  record = theorems.measure(task, kern, 2**10, 0, theorems.TrainSettings())
  assert record["training"]["finetune_converged"]
  assert math.isfinite(record["theorem1"]["relative_error"])
  assert record["theorem3"]["holds"]
