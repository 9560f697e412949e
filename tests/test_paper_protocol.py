"""The analysis protocol of the paper experiments: convergence before curvature, claims over
seeds, the rise along the gradient, claims reported in both BatchNorm modes."""

import numpy as np
import pytest

from transjax.analysis import gradients
from transjax import convergence
from transjax.paper import bn_modes, common, gradient_variation, minima, report

R, P, N, I = common.REPRODUCED, common.PARTLY, common.NOT_REPRODUCED, common.INCONCLUSIVE
FLAT = [(s, 0.02) for s in range(0, 100, 10)]
FALLING = [(s, 2.0 - 0.015 * s) for s in range(0, 100, 10)]


def test_convergence_criterion():
  ok = convergence.assess(0.0, 0.02, FLAT)
  assert ok["converged"] and ok["detail"] == "converged"
  high_error = convergence.assess(0.35, 1.6, FLAT)
  assert not high_error["converged"] and "training error 35.00% > 1%" in high_error["detail"]
  falling = convergence.assess(0.0, 0.5, FALLING)
  assert not falling["converged"] and "still falling" in falling["detail"]
  assert not convergence.assess(0.0, 0.02, FLAT[:2])["converged"]
  # A loss near zero that halves is on a plateau in absolute terms.
  assert convergence.assess(0.0, 0.004, [(s, 0.008 if s < 50 else 0.004)
                                         for s in range(0, 100, 10)])["converged"]
  assert convergence.not_at_minimum({"a": ok}) == ""
  assert convergence.not_at_minimum({"a": ok, "b": high_error}).startswith(
      "not at a minimum (b: training error")


def test_max_rise_separates_descent_from_bumps():
  assert gradients.max_rise(np.array([3.0, 2.0, 1.0, 0.5])) == 0.0
  assert gradients.max_rise(np.array([3.0, 1.0, 2.5, 0.2])) == pytest.approx(1.5)
  assert gradients.max_rise(np.array([1.0, np.nan, 1.4])) == pytest.approx(0.4)
  assert np.isnan(gradients.max_rise(np.array([np.nan])))


def _minima(p_top1, r_top1, p_inc, r_inc, conv=None, comparison=None):
  """Per-seed top-1 eigenvalues and mean increases; top-k = [top1, top1/2]."""
  eig = lambda xs: [[x, x / 2] for x in xs]
  stats = lambda xs: {"stats": {"mean_increase": float(np.mean(xs)),
                                "max_increase": 3 * float(np.mean(xs))},
                      "stats_by_seed": [{"mean_increase": x, "max_increase": 3 * x} for x in xs]}
  out = {"eigenvalues": {"pretrained": np.mean(eig(p_top1), 0).tolist(),
                         "random": np.mean(eig(r_top1), 0).tolist()},
         "eigenvalues_by_seed": {"pretrained": eig(p_top1), "random": eig(r_top1)},
         "landscape": {"pretrained": stats(p_inc), "random": stats(r_inc)},
         "data": [], "preset": "quick", "bn_mode": "recalibrated"}
  if conv is not None:
    out["convergence"] = conv
  if comparison is not None:
    out["bn_comparison"] = {"mode": "running", "results": comparison}
  return out


def test_minima_over_seeds_use_welch():
  claims = minima.claims(_minima([5, 5.2, 4.9], [9, 9.5, 8.8], [0.1, 0.12, 0.11],
                                 [0.5, 0.55, 0.52]))
  assert [c.verdict for c in claims] == [R, R]
  assert all("Welch" in c.detail for c in claims[1].checks)
  noisy = minima.claims(_minima([5, 9, 1], [9, 2, 6], [0.1, 0.5, 0.3], [0.5, 0.1, 0.3]))
  assert noisy[1].verdict == N and "detectable difference" in noisy[1].checks[0].detail


def test_minima_with_a_network_not_at_a_minimum_is_inconclusive():
  ok = convergence.assess(0.0, 0.02, FLAT)
  bad = convergence.assess(0.56, 1.64, FALLING)
  conv = {"pretrained": [ok, ok, ok], "random": [ok, bad, ok]}
  claims = minima.claims(_minima([5, 5.2, 4.9], [9, 9.5, 8.8], [0.1, 0.12, 0.11],
                                 [0.5, 0.55, 0.52], conv=conv))
  assert [c.verdict for c in claims] == [I, I]
  assert "random seed 1" in claims[0].inconclusive
  assert all(c.passed for c in claims[0].checks)   # the checks are still computed


def test_claims_report_the_other_bn_mode_where_the_verdict_differs():
  other = _minima([9, 9.5, 8.8], [5, 5.2, 4.9], [0.1, 0.12, 0.11], [0.5, 0.55, 0.52])
  results = _minima([5, 5.2, 4.9], [9, 9.5, 8.8], [0.1, 0.12, 0.11], [0.5, 0.55, 0.52],
                    comparison={k: other[k] for k in ("eigenvalues", "eigenvalues_by_seed",
                                                      "landscape")})
  fig3, fig10 = minima.claims(results)
  assert fig3.verdict == R and "with BatchNorm stored running statistics" in fig3.why
  assert "not reproduced" in fig3.why
  assert "running statistics" not in fig10.why     # same verdict in both modes: no note


def test_pack_and_modes():
  results = bn_modes.pack({"preset": "quick"}, {"batch": {"x": 1}, "running": {"x": 2}}, "batch")
  assert results["x"] == 1 and results["bn_comparison"] == {"mode": "running",
                                                            "results": {"x": 2}}
  import ml_collections  # pylint: disable=import-outside-toplevel
  c = ml_collections.ConfigDict({"bn_mode": "batch", "bn_compare": "running"})
  assert bn_modes.modes(c, {"bn": np.zeros(2)}) == ["batch", "running"]
  assert bn_modes.modes(c, {}) == ["batch"]         # no BatchNorm: one mode is enough
  c.bn_mode = "eval"
  with pytest.raises(ValueError, match="config.bn_mode must be one of"):
    bn_modes.validate(c)


def test_gradient_variation_claims_test_the_rise():
  def block(rise, variation):
    return {"mean_gradient": variation, "max_gradient": 2 * variation, "mean_fixed": variation,
            "max_fixed": 2 * variation, "mean_gradient_rise": rise, "max_gradient_rise": 2 * rise,
            "mean_fixed_rise": rise, "max_fixed_rise": 2 * rise, "mean_grad_norm": 1.0}
  # The pretrained path descends further (larger max-variation) but climbs less.
  results = {"variation": {"pretrained": block(0.01, 3.0), "random": block(0.5, 1.0)},
             "data": [], "preset": "quick"}
  claims = gradient_variation.claims(results)
  assert [c.verdict for c in claims] == [R, R]
  assert "rise" in claims[0].checks[0].name and "max-variation 3 vs 1" in claims[0].ours


def test_report_shows_the_inconclusive_reason():
  claim = common.Claim("Fig 3", "s", "p", "o", [common.Check("c", True)],
                       inconclusive="not at a minimum (random seed 0: training error 35% > 1%)")
  assert claim.verdict == I
  assert report.verdict_text(claim.to_dict()) == (
      "inconclusive: not at a minimum (random seed 0: training error 35% > 1%)")


def test_summary_note_says_when_the_mode_changes_nothing():
  assert bn_modes.note(["recalibrated"], False).startswith("BatchNorm: none in this network")
  assert bn_modes.note(["batch", "running"], True) == (
      "BatchNorm modes: batch: batch statistics; running: stored running statistics.")


def test_fig2_figure_draws_runs_that_stopped_at_different_steps(tmp_path):
  """Runs trained to convergence stop at different steps: their deviation curves differ
  in length, and the figure is drawn over the shortest."""
  from transjax.paper import transfer_targets  # pylint: disable=import-outside-toplevel
  entry = {"train_error": [0.0, 0.0], "test_error": [0.1, 0.2], "deviation": [0.2, 0.3],
           "curve_steps": [0, 50, 100, 150], "curves": [[0, 0.1, 0.2, 0.2], [0, 0.1, 0.15]]}
  results = {"table": {"t": {"fixed": entry, "finetune": entry}}, "targets": ["t"],
             "modes": ["fixed", "finetune"]}
  assert transfer_targets._figures(results, str(tmp_path)) == list(transfer_targets.FIGURES)
  assert all((tmp_path / f).stat().st_size > 0 for f in transfer_targets.FIGURES)


def test_inconclusive_claims_compare_their_checks_across_modes():
  bad = convergence.assess(0.4, 1.1, FALLING)
  conv = {"pretrained": [bad], "random": [bad]}
  same = _minima([5], [9], [0.1], [0.5], conv=conv)
  same["bn_comparison"] = {"mode": "running", "results": {
      "eigenvalues": {"pretrained": [4.0, 2.0], "random": [8.0, 4.0]}, "convergence": conv}}
  assert all("running statistics" not in c.why for c in minima.claims(same))
  other = dict(same, bn_comparison={"mode": "running", "results": {
      "eigenvalues": {"pretrained": [9.0, 4.5], "random": [5.0, 2.5]},
      "eigenvalues_by_seed": {"pretrained": [[9.0, 4.5]], "random": [[5.0, 2.5]]},
      "convergence": conv}})
  fig3 = minima.claims(other)[0]
  assert fig3.verdict == I and "inconclusive (0/2 checks" in fig3.why


@pytest.mark.parametrize("target", ["fashion_small", "cifar_grey"])
def test_lenet_targets_never_test_on_their_training_images(real_data_dir, target):
  from transjax.data import run_data  # pylint: disable=import-outside-toplevel
  from transjax.paper import pairs  # pylint: disable=import-outside-toplevel
  data = run_data.load_data(pairs.target_config(target, "random", "quick", "",
                                                data_dir=real_data_dir))
  train = {np.asarray(x).tobytes() for x in data.train.images}
  assert not any(np.asarray(x).tobytes() in train for x in data.test.images)
