"""Verdict helpers shared by the paper experiments."""

import pytest

from transjax.paper import common


def test_stand_ins_are_named_once_and_briefly():
  descriptions = [
      "train: dataset (stand-in for Webcam (a similar target)) from h5:/d/usps/usps.h5; "
      "transforms: per_class(60, seed=2); test: dataset (stand-in for Webcam (a similar "
      "target)) from h5:/d/usps/usps.h5",
      "train: dataset (stand-in for Synthetic) from synthetic:shapes(seed=5)",
      "train: mnist from idx:/d/mnist",
  ]
  assert common.stand_in_note(descriptions) == (
      "stand-in data: synthetic shapes for Synthetic; usps.h5 for Webcam (a similar target)")
  assert common.stand_in_note(["train: mnist from idx:/d/mnist"]) == ""


def test_qualifiers_name_the_scale_unless_the_data_is_the_papers():
  offline = common.qualifiers(["train: mnist from idx:/d/mnist"], "ResNet-50 on CUB-200")
  assert "CPU scale" in offline and "ResNet-50 on CUB-200" in offline
  assert common.qualifiers(["train: cars196 from tfds:cars196:2.1.0"], "ResNet-50") == ""


@pytest.mark.parametrize("checks, verdict", [
    ([True, True], common.REPRODUCED), ([True, False], common.PARTLY),
    ([False, False], common.NOT_REPRODUCED), ([], common.NOT_REPRODUCED)])
def test_verdict_from_checks(checks, verdict):
  assert common.verdict_from_checks(checks) == verdict


def test_progress_files_live_in_the_workdir_until_the_results_are_written(tmp_path):
  path = common.partial_path(str(tmp_path), "landscape_random_layer3/0/conv1.npz")
  assert path == str(tmp_path / "partial" / "landscape_random_layer3_0_conv1.npz")
  open(path, "w").close()
  common.write_results(str(tmp_path), {"summary": ""}, [])
  assert (tmp_path / "results.json").exists() and not (tmp_path / "partial").exists()
