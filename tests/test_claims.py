"""Every experiment's claims(): hand-made results -> reproduced / partly / not reproduced.

Results are minimal dicts with only the keys claims() reads (no training, fast). The
noise rule (common.NOISE_RULE): differences over seeds count only at Welch p < 0.05;
single-run comparisons decide on the values.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from transjax.paper import (common, gradient_stats, gradient_variation, init_landscapes,
                            inputs_labels, minima, pretrain_epochs, report, theory_section,
                            transfer_targets, tsne_weights)

R, P, N = common.REPRODUCED, common.PARTLY, common.NOT_REPRODUCED
I = common.INCONCLUSIVE


def _verdicts(claims):
  return [c.verdict for c in claims]


def _check(claim, name_part):
  [c] = [c for c in claim.checks if c.name.startswith(name_part)]
  return c


# ---------------------------------------------------------------------- the noise rule


def test_welch_degenerate_cases():
  assert common.welch_p([1.0], [0.5, 0.6], "greater") is None            # n = 1
  assert common.welch_p([2.0, 2.0], [1.0, 1.0], "greater") == 0.0        # no spread: exact
  assert common.welch_p([1.0, 1.0], [2.0, 2.0], "greater") == 1.0
  assert common.welch_p([1.0, 1.0], [1.0, 1.0], "two-sided") == 1.0
  assert math.isnan(common.welch_p([1.0, float("nan")], [1.0, 2.0], "greater"))
  assert common.welch_p([0.9, 0.91, 0.92], [0.5, 0.51, 0.52], "greater") < 1e-4


@pytest.mark.parametrize("a, b, relation, passed, says", [
    ([0.92, 0.91, 0.90], [0.80, 0.81, 0.79], ">", True, "Welch one-sided"),
    ([0.914, 0.916, 0.906], [0.913, 0.913, 0.894], ">", False, "p="),     # within noise
    ([0.914, 0.916, 0.906], [0.913, 0.913, 0.894], "~", True, "two-sided"),
    ([0.92, 0.91, 0.90], [0.80, 0.81, 0.79], "~", False, "two-sided"),
    ([0.92, 0.91, 0.90], [0.80, 0.81, 0.79], "not >", False, "one-sided"),
    ([0.80, 0.81, 0.79], [0.92, 0.91, 0.90], "not >", True, "one-sided"),
    ([0.80, 0.81, 0.79], [0.92, 0.91, 0.90], "<", True, "one-sided"),
    ([2.0, 2.0], [1.0, 1.0], ">", True, "no spread"),
    ([1.0, 1.0], [1.0, 1.0], ">", False, "no spread"),
    ([1.0, 1.0], [1.0, 1.0], "~", True, "no spread"),
    (0.3, 0.2, ">", True, common.SINGLE_RUN),
    ([0.3], [0.2, 0.25], "<", False, common.SINGLE_RUN),
    (0.30, 0.29, "~", True, "tolerance"),
    (float("nan"), 0.2, ">", False, "not finite"),
    (None, 0.2, "<", False, "not finite"),
    ([], [0.2], "<", False, "not finite"),
])
def test_compare(a, b, relation, passed, says):
  kw = {"tolerance": 0.02} if relation == "~" and not isinstance(a, list) else {}
  check = common.compare("c", a, b, relation, **kw)
  assert check.passed is passed, check
  assert says in check.detail, check
  # Every Welch comparison over seeds states what it could detect; the others do not.
  welch = "Welch" in check.detail and "undefined" not in check.detail
  assert ("at 80% power" in check.detail) is welch, check


def _with_sd(sd, n, mean=0.0):
  """n values with sample standard deviation (ddof=1) exactly `sd`."""
  z = np.linspace(-1.0, 1.0, n)
  return mean + sd * z / z.std(ddof=1)


@pytest.mark.parametrize("n_a, n_b, sd_a, sd_b", [
    (3, 3, 1.0, 1.0), (3, 3, 0.5, 2.0), (5, 5, 1.0, 1.0), (5, 5, 0.02, 0.01),
    (2, 2, 1.0, 1.0), (3, 5, 1.0, 3.0)])
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_detectable_difference_has_80_percent_power(n_a, n_b, sd_a, sd_b, alternative):
  # Monte Carlo: with the stated difference as the true effect and the samples' SDs as
  # the true SDs, scipy's Welch test at ALPHA rejects about 80% of the time.
  a, b = _with_sd(sd_a, n_a, mean=5.0), _with_sd(sd_b, n_b)
  mde = common.detectable_difference(a, b, alternative)
  assert mde > 0
  sign = -1.0 if alternative == "less" else 1.0
  rng = np.random.default_rng(0)
  sims_a = rng.normal(sign * mde, sd_a, (4000, n_a))
  sims_b = rng.normal(0.0, sd_b, (4000, n_b))
  p = stats.ttest_ind(sims_a, sims_b, axis=1, equal_var=False, alternative=alternative).pvalue
  assert abs(np.mean(p < common.ALPHA) - 0.8) < 0.05
  # The location of the samples does not matter, only their spread and n.
  assert common.detectable_difference(a - 5.0, b + 1.0, alternative) == pytest.approx(mde)


def test_detectable_difference_tends_to_the_textbook_formula():
  # Large n: (t_{1-alpha(/2), df} + t_{0.8, df}) * se with the Welch-Satterthwaite df.
  a, b = _with_sd(1.0, 60), _with_sd(2.0, 40)
  va, vb = 1.0 / 60, 4.0 / 40
  df = (va + vb)**2 / (va**2 / 59 + vb**2 / 39)
  for alternative, q in (("greater", 0.95), ("two-sided", 0.975)):
    textbook = (stats.t.ppf(q, df) + stats.t.ppf(0.8, df)) * math.sqrt(va + vb)
    assert common.detectable_difference(a, b, alternative) == pytest.approx(textbook, rel=0.01)
  # Small n: larger than the textbook value, whose power falls short (the test estimates
  # its df from the sample, at most the plug-in df).
  a, b = _with_sd(1.0, 3), _with_sd(1.0, 3)
  textbook = (stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * math.sqrt(2 / 3)
  assert common.detectable_difference(a, b, "two-sided") > 1.1 * textbook


def test_detectable_difference_degenerate_cases():
  assert common.detectable_difference([1.0], [0.5, 0.6], "greater") is None       # n = 1
  assert common.detectable_difference(0.3, 0.2, "two-sided") is None
  assert math.isnan(common.detectable_difference([1.0, float("nan")], [1.0, 2.0], "less"))
  assert common.detectable_difference([2.0, 2.0], [1.0, 1.0], "greater") == 0.0   # exact
  assert common.detectable_difference([2.0, 2.0], [1.0, 1.5], "greater") > 0      # one spread
  one, two = (common.detectable_difference([0.9, 0.91, 0.93], [0.8, 0.85, 0.81], alt)
              for alt in ("greater", "two-sided"))
  assert 0 < one < two


def test_compare_states_the_detectable_difference_in_its_units():
  a, b = [0.30, 0.25], [0.20, 0.22]
  check = common.greater("c", a, b, scale=100, digits=1, unit="%")
  mde = common.detectable_difference(a, b, "greater")
  assert check.detail.endswith(f"n=2/2, detectable difference ≥ {100 * mde:.1f}% at 80% power")
  assert not check.passed                                 # p = 0.0998: unchanged by the text
  similar = common.similar("c", [0.914, 0.916, 0.906], [0.913, 0.913, 0.894])
  mde = common.detectable_difference([0.914, 0.916, 0.906], [0.913, 0.913, 0.894], "two-sided")
  assert similar.passed, similar
  assert f"two-sided p=0.505, n=3/3, detectable difference ≥ {mde:.3f} " in similar.detail
  margin = common.greater("m", [0.50, 0.51, 0.49], [0.40, 0.41, 0.39], margin=0.05)
  assert margin.passed and "beyond the margin at 80% power" in margin.detail
  # No noise estimate, or none needed: no detectable difference stated.
  for check in (common.greater("c", 0.3, 0.2), common.greater("c", [2.0, 2.0], [1.0, 1.0]),
                common.greater("c", [0.3], [0.2, 0.25])):
    assert "detectable" not in check.detail, check


def test_margin_and_thresholds():
  big = [0.50, 0.51, 0.49]
  assert common.greater("m", big, [0.40, 0.41, 0.39], margin=0.05).passed
  assert not common.greater("m", big, [0.47, 0.48, 0.46], margin=0.05).passed
  assert common.at_most("t", [0.01, 0.02], 0.05).passed
  assert not common.at_most("t", [0.04, 0.08], 0.05).passed
  assert not common.at_most("t", [float("nan")], 0.05).passed
  assert common.at_least("s", 0.8, 0.8).passed and not common.at_least("s", float("nan"), 0).passed


def test_claim_verdict_is_computed_from_its_checks():
  ok, bad = common.Check("a", True, "x"), common.Check("b", False, "y")
  assert common.Claim("E", "s", "p", "o", (ok, ok)).verdict == R
  assert common.Claim("E", "s", "p", "o", [ok, bad]).verdict == P
  assert common.Claim("E", "s", "p", "o", (bad,)).verdict == N
  with pytest.raises(ValueError, match="checks give"):
    common.Claim("E", "s", "p", "o", (bad,), verdict=R)
  with pytest.raises(TypeError):
    common.Claim("E", "s", "p", "o", R)
  with pytest.raises(ValueError):
    common.Claim("E", "s", "p", "o", ())
  d = common.Claim("E", "s", "p", "o", (ok, bad), "why").to_dict()
  assert json.loads(json.dumps(d)) == d and d["verdict"] == P
  assert d["checks"] == [{"name": "a", "passed": True, "detail": "x"},
                         {"name": "b", "passed": False, "detail": "y"}]


# ------------------------------------------------------ transfer_targets (Table 1, 2, Fig 2)

INC, DEC = [0.0, 0.2, 0.29, 0.3], [0.3, 0.2, 0.1, 0.0]   # INC levels off: converges


def _tt(finetune, scratch, fixed=None, dev=None, train=0.0, curve=INC,
        targets=("near", "mid", "far")):
  """finetune/scratch/fixed: target -> per-seed test errors; dev: target -> deviation."""
  fixed = fixed or finetune
  dev = dev or {t: 0.1 * (i + 1) for i, t in enumerate(targets)}
  entry = lambda errs, d, tr: {"train_error": [tr] * len(errs), "test_error": list(errs),
                               "deviation": [d] * len(errs), "curves": [curve] * len(errs)}
  table = {t: {"fixed": entry(fixed[t], dev[t], train), "finetune": entry(finetune[t], dev[t], train),
               "scratch": entry(scratch[t], 1.0, 0.0)} for t in targets}
  return {"targets": list(targets), "table": table, "data": {},
          "table2": transfer_targets.table2(table, targets)}


GOOD_FT = {"near": [0.010, 0.012, 0.011], "mid": [0.10, 0.11, 0.12], "far": [0.40, 0.41, 0.42]}
GOOD_SC = {"near": [0.30, 0.31, 0.29], "mid": [0.30, 0.31, 0.32], "far": [0.50, 0.51, 0.49]}
# The quick run (issue 13): fine-tuning worse than scratch on 2 of 3 targets.
QUICK_FT = {"near": [0.0802, 0.0837, 0.0942], "mid": [0.2515, 0.226, 0.253],
            "far": [0.7395, 0.76, 0.7755]}
QUICK_SC = {"near": [0.0867, 0.0872, 0.1056], "mid": [0.1985, 0.2065, 0.2375],
            "far": [0.708, 0.714, 0.723]}
# Within noise: fine-tuning a little better everywhere, by less than the seed spread.
NOISY_FT = {t: [e - 0.05, e, e + 0.05] for t, e in (("near", 0.15), ("mid", 0.2), ("far", 0.25))}
NOISY_SC = {t: [e - 0.04, e + 0.03, e + 0.04] for t, e in (("near", 0.15), ("mid", 0.2),
                                                          ("far", 0.25))}


@pytest.mark.parametrize("results, expected", [
    (_tt(GOOD_FT, GOOD_SC), [R, R, R, R]),
    (_tt(QUICK_FT, QUICK_SC), [R, R, P, R]),
    (_tt(NOISY_FT, NOISY_SC), [P, R, N, R]),
    # Everything against the paper: train error high, no spread, deviation anti-ordered,
    # scratch better everywhere, deviation falling. Table 2 compares networks that did not
    # fit their training data: inconclusive.
    (_tt({t: [0.3, 0.31] for t in ("near", "mid", "far")},
         {t: [0.1, 0.11] for t in ("near", "mid", "far")},
         dev={"near": 0.3, "mid": 0.2, "far": 0.1}, train=0.3, curve=DEC), [N, N, I, N]),
], ids=["agree", "quick-run-table2", "within-noise", "contra"])
def test_transfer_targets(results, expected):
  assert _verdicts(transfer_targets.claims(results)) == expected


def test_table2_with_an_unconverged_scratch_network_is_inconclusive():
  results = _tt(GOOD_FT, GOOD_SC)
  results["table"]["far"]["scratch"]["train_error"] = [0.35, 0.33, 0.37]
  claim = transfer_targets.claims(results)[2]
  assert claim.verdict == I and all(c.passed for c in claim.checks)
  assert "far scratch: training error 35.0% > 1%" in claim.inconclusive
  assert "not at a minimum" in report.verdict_text(claim.to_dict())


def test_fig2_converges_and_rank_order_against_noise():
  # Still rising at the end: monotone, but not converged.
  claim = transfer_targets.claims(_tt(GOOD_FT, GOOD_SC, curve=[0.0, 0.1, 0.2, 0.3]))[3]
  assert claim.verdict == P
  assert not _check(claim, "deviation eventually converges on every target (fixed)").passed
  # Deviation ordered like the error in the means, but the error's seeds overlap so much
  # that the bootstrap interval of the rank correlation reaches zero.
  wide = {"near": [0.0, 0.5, 1.0], "mid": [0.01, 0.51, 0.99], "far": [0.02, 0.52, 1.0]}
  claim = transfer_targets.claims(_tt(wide, GOOD_SC))[1]      # deviation 0.1 < 0.2 < 0.3
  assert "correlation of the means over 3 targets 1.00" in claim.checks[0].detail
  assert claim.verdict == N and "bootstrap" in claim.checks[0].detail
  assert transfer_targets.spearman_bootstrap_low([[1.0], [2.0]], [[1.0], [2.0]]) is None


def test_table2_names_each_target_and_the_halves():
  claim = transfer_targets.claims(_tt(QUICK_FT, QUICK_SC))[2]
  assert [c.passed for c in claim.checks] == [False, False, False, True]
  assert "Welch one-sided" in _check(claim, "fine-tuning beats scratch on mid").detail
  # Fine-tuning better on the most similar target only is not "improves every target".
  only_near = dict(GOOD_FT, mid=GOOD_SC["mid"], far=GOOD_SC["far"])
  assert transfer_targets.claims(_tt(only_near, GOOD_SC))[2].verdict == P


def test_table1_train_error_is_checked_per_mode_and_target():
  r = _tt(GOOD_FT, GOOD_SC)
  r["table"]["far"]["fixed"]["train_error"] = [0.3] * 3
  claim = transfer_targets.claims(r)[0]
  assert claim.verdict == P
  assert not _check(claim, "train error nearly zero (fixed, far)").passed
  assert _check(claim, "train error nearly zero (fine-tuned, far)").passed


# --------------------------------------------------------- inputs_labels (Fig 8a-d)


def _il(mnist, upside_down, fashion, scratch, real, colour, lscratch, dev_fashion=0.3,
        dev_scratch=0.3, fig8cd=inputs_labels.NOT_RUN_8CD):
  def entry(acc, dev=0.1):
    return {"accuracy": list(acc), "deviation": {g: [dev, dev * 1.01, dev * 0.99]
                                                 for g in inputs_labels.LAYER_GROUPS}}
  return {"inputs": {"mnist": entry(mnist), "mnist_upside_down": entry(upside_down),
                     "fashion_mnist": entry(fashion, dev_fashion),
                     "scratch": entry(scratch, dev_scratch)},
          "labels": {"cifar_real": entry(real), "cifar_colour": entry(colour),
                     "scratch": entry(lscratch)}, "data": {}, "fig8cd": fig8cd}


GOOD_IL = dict(mnist=[0.90, 0.91, 0.92], upside_down=[0.86, 0.87, 0.88],
               fashion=[0.80, 0.81, 0.79], scratch=[0.80, 0.79, 0.81],
               real=[0.70, 0.71, 0.72], colour=[0.40, 0.41, 0.39], lscratch=[0.40, 0.39, 0.41])
# The quick run (issue 13): upside-down below scratch, MNIST above scratch within noise.
QUICK_IL = dict(GOOD_IL, mnist=[0.9193, 0.9163, 0.9063], upside_down=[0.8989, 0.8909, 0.8909],
                fashion=[0.8879, 0.8934, 0.8944], scratch=[0.9133, 0.9128, 0.8939])
CONTRA_IL = dict(mnist=[0.60, 0.61, 0.62], upside_down=[0.70, 0.71, 0.72],
                 fashion=[0.90, 0.91, 0.92], scratch=[0.70, 0.71, 0.69],
                 real=[0.30, 0.31, 0.29], colour=[0.60, 0.61, 0.62], lscratch=[0.40, 0.41, 0.39])


@pytest.mark.parametrize("results, expected", [
    (_il(**GOOD_IL), [R, R, R, N, N]),
    (_il(**QUICK_IL), [P, R, R, N, N]),
    (_il(**CONTRA_IL, dev_fashion=0.1, dev_scratch=0.3), [N, N, N, N, N]),
    # Fashion's deviation smaller than scratch's only within noise: "no smaller" holds.
    (_il(**GOOD_IL, dev_fashion=0.298), [R, R, R, N, N]),
], ids=["agree", "quick-run-fig8a", "contra", "deviation-within-noise"])
def test_inputs_labels(results, expected):
  claims = inputs_labels.claims(results)
  assert _verdicts(claims) == expected
  assert all("not run" in c.why for c in claims[3:])


def test_fig8a_quick_run_says_why():
  claim = inputs_labels.claims(_il(**QUICK_IL))[0]
  assert not _check(claim, "upside-down MNIST pretraining beats scratch").passed
  mnist = _check(claim, "MNIST pretraining beats scratch")
  assert not mnist.passed and "n=3/3" in mnist.detail     # 0.7 points, within noise
  assert _check(claim, "Fashion-MNIST ~ scratch").passed


@pytest.mark.parametrize("imagenet_cub, places_indoor, verdict", [
    ([0.80, 0.81], [0.70, 0.71], R), ([0.60, 0.61], [0.50, 0.51], N),
    ([0.80, 0.81], [0.50, 0.51], P), ([0.70, 0.72], [0.60, 0.62], N)])  # last: ties
def test_fig8cd(imagenet_cub, places_indoor, verdict):
  acc = {"imagenet/cub200": imagenet_cub, "places/cub200": [0.70, 0.72],
         "imagenet/mit_indoor": [0.60, 0.62], "places/mit_indoor": places_indoor}
  cd = {"accuracy": acc, "mean_test_error": {k: [1 - a for a in v] for k, v in acc.items()}}
  claims = inputs_labels.claims(_il(**GOOD_IL, fig8cd=cd))[3:]
  assert [c.element for c in claims] == ["Fig 8c", "Fig 8d"]
  assert _verdicts(claims) == [verdict, verdict]


# ------------------------------------------------------------- pretrain_epochs (Fig 9)


def _pe(source, target):
  return {"steps": list(range(1, len(source) + 1)), "epochs": [float(2 ** i) for i in
                                                                range(len(source))],
          "source_accuracy": source, "target_accuracy": target, "data": {}}


RISING = [0.5, 0.7, 0.8, 0.9]


@pytest.mark.parametrize("results, expected", [
    (_pe(RISING, [[0.50, 0.51, 0.49], [0.70, 0.71, 0.69], [0.65, 0.66, 0.64],
                  [0.60, 0.61, 0.59]]), R),
    (_pe(RISING, [[0.50, 0.51], [0.60, 0.61], [0.65, 0.66], [0.70, 0.71]]), P),  # no decline
    # A peak and decline within noise.
    (_pe(RISING, [[0.60, 0.70], [0.62, 0.71], [0.60, 0.69], [0.61, 0.70]]), P),
    (_pe([0.9, 0.8, 0.7, 0.6], [[0.5, 0.6]] * 4), N),
], ids=["peak", "rising", "within-noise", "contra"])
def test_pretrain_epochs(results, expected):
  assert _verdicts(pretrain_epochs.claims(results)) == [expected]


# ----------------------------------------------------------------- minima (Fig 3, 10)


def _minima(p_eig, r_eig, p_inc, r_inc):
  stats = lambda inc: {"stats": {"mean_increase": inc, "max_increase": 3 * inc}}
  return {"eigenvalues": {"pretrained": p_eig, "random": r_eig},
          "landscape": {"pretrained": stats(p_inc), "random": stats(r_inc)},
          "data": [], "preset": "quick"}


@pytest.mark.parametrize("results, expected", [
    (_minima([5, 2, 1], [9, 4, 3], 0.1, 0.5), [R, R]),
    (_minima([5, 9, 1], [9, 4, 3], 0.1, 0.5), [P, R]),
    (_minima([9, 4, 3], [5, 2, 1], 0.5, 0.1), [N, N]),
    (_minima([5, 2, 1], [9, 4, float("nan")], 0.1, float("nan")), [P, N]),
], ids=["agree", "not-all-eigenvalues", "contra", "nan"])
def test_minima(results, expected):
  claims = minima.claims(results)
  assert _verdicts(claims) == expected
  assert all(common.SINGLE_RUN in c.detail or "not finite" in c.detail
             for claim in claims for c in claim.checks)


# ------------------------------------------------------------------ tsne_weights (Fig 4)


@pytest.mark.parametrize("within_init, within_target, nn, expected", [
    (1.0, 5.0, 1.0, R), (1.0, 5.0, 0.25, P), (5.0, 1.0, 0.0, N)])
def test_tsne_weights(within_init, within_target, nn, expected):
  results = {"clusters": {"mean_within_init": within_init,
                          "mean_within_target_across_inits": within_target,
                          "nn_same_init_fraction": nn, "num_runs": 9}, "data": []}
  assert _verdicts(tsne_weights.claims(results)) == [expected]


# ------------------------------------------------------ init_landscapes (Fig 5, B.4)


def _init(p_range, r_range, sp, sr, p_mean, r_mean, p_rough=None, r_rough=None):
  layer = lambda: {"pretrained": {"range": p_range, "roughness": p_rough or p_range},
                   "random": {"range": r_range, "roughness": r_rough or r_range}}
  return {"lower_layers": ["conv1", "conv2"], "per_layer": {"conv1": layer(), "conv2": layer()},
          "convergence": {"pretrained": {"steps_to_threshold": sp, "mean_train_loss": p_mean},
                          "random": {"steps_to_threshold": sr, "mean_train_loss": r_mean}},
          "threshold": 0.5, "data": []}


@pytest.mark.parametrize("results, expected", [
    (_init(0.1, 1.0, 10, 50, 0.3, 0.9), [R, R]),
    (_init(0.1, 1.0, 10, None, 0.3, 0.9), [R, R]),    # scratch never reaching it is slower
    (_init(0.1, 1.0, 10, 50, 0.9, 0.3, p_rough=2.0, r_rough=1.0), [P, P]),
    (_init(1.0, 0.1, 50, 10, 0.9, 0.3), [N, N]),
    (_init(1.0, 0.1, None, None, 0.9, 0.3), [N, N]),  # neither reached it
], ids=["agree", "scratch-never", "partly", "contra", "never"])
def test_init_landscapes(results, expected):
  assert _verdicts(init_landscapes.claims(results)) == expected


@pytest.mark.parametrize("fc_roughness, expected", [(0.5, R), (2.0, P)])
def test_b4_random_landscape_worsens_towards_lower_layers(fc_roughness, expected):
  results = _init(0.1, 1.0, 10, 50, 0.3, 0.9)
  results["layers"] = ["conv1", "conv2", "fc"]     # lower layers: conv1, conv2
  results["per_layer"]["fc"] = {"pretrained": {"range": 0.1, "roughness": 0.1},
                                "random": {"range": 0.1, "roughness": fc_roughness}}
  claim = init_landscapes.claims(results)[1]
  assert claim.verdict == expected
  assert _check(claim, "random-init landscape worsens").passed is (expected == R)


# ---------------------------------------------------- gradient_variation (Fig 6, 11)


def _variation(p, r, p_curve=None, r_curve=None):
  block = lambda v: {"mean_gradient": v, "max_gradient": 2 * v, "mean_fixed": v,
                     "max_fixed": 2 * v}
  out = {"variation": {"pretrained": block(p), "random": block(r)}, "data": []}
  if p_curve is not None:
    curves = {"pretrained": [[s, v] for s, v in enumerate(p_curve)],
              "random": [[s, v] for s, v in enumerate(r_curve)]}
    out["curves"] = {"gradient": curves, "fixed": curves}
  return out


@pytest.mark.parametrize("results, expected", [
    (_variation(0.1, 1.0), [R, R]),                                   # stored without curves
    (_variation(0.1, 1.0, [0.1] * 10, [1.0] * 10), [R, R]),
    # Smaller on average but not throughout: larger at half of the recorded steps.
    (_variation(0.1, 1.0, [0.1] * 5 + [2.0] * 5, [1.0] * 10), [P, P]),
    (_variation(1.0, 0.1, [1.0] * 10, [0.1] * 10), [N, N]),
], ids=["no-curves", "agree", "not-throughout", "contra"])
def test_gradient_variation(results, expected):
  assert _verdicts(gradient_variation.claims(results)) == expected


# ------------------------------------------------------------- gradient_stats (Fig 7)


def _stats(p, r, r_norms=(0.1, 0.2, 0.4), p_spread=None, r_spread=None):
  block = lambda v, norms, spread: {
      "mean_abs_grad": v, "top_projection": v, "scale_spread": spread or 1 + v,
      "scale_mean": v, "scale": {"layers": ["fc", "fc1", "conv2"], "norms": list(norms)}}
  return {"stats": {"pretrained": block(p, (0.1, 0.1, 0.1), p_spread),
                    "random": block(r, r_norms, r_spread)}, "layer": "conv2", "data": []}


@pytest.mark.parametrize("results, expected", [
    (_stats(0.1, 1.0), [R, R]),
    (_stats(0.1, 1.0, r_norms=(0.4, 0.2, 0.1)), [R, P]),    # random's gradient shrinks
    (_stats(1.0, 0.1, r_norms=(0.4, 0.2, 0.1)), [N, N]),
    (_stats(0.1, 1.0, r_norms=()), [R, P]),                  # per-layer norms not stored
    (_stats(0.1, 1.0, r_norms=(0.1, None, 0.4)), [R, P]),    # a null (non-finite) norm
], ids=["agree", "random-not-growing", "contra", "no-norms", "null-norm"])
def test_gradient_stats(results, expected):
  assert _verdicts(gradient_stats.claims(results)) == expected


# ------------------------------------------------------------ theory (Theorems 1-3)


def _theory(status, agree=4, overrides=None):
  keys = ("theorem1", "theorem1_vector", "theorem2", "theorem2_scratch", "lemma3", "lemma1",
          "lemma4", "theorem3")
  verdicts = {k: {"status": status, "text": f"{k} text"} for k in keys}
  verdicts.update({k: {"status": s} for k, s in (overrides or {}).items()})
  return {"verdicts": verdicts,
          "similarity": {"theorem1_rank": {"status": status},
                         "theorem2_rank": {"status": status},
                         "finetune_vs_scratch": {"agree": agree, "total": 4}},
          "preset": "quick"}


@pytest.mark.parametrize("results, expected", [
    (_theory("holds"), [R, R, R]),
    (_theory("holds", agree=3, overrides={"theorem1": "does not hold",
                                          "theorem3": "holds for large m"}), [P, P, R]),
    (_theory("does not hold", agree=0), [N, N, N]),
], ids=["agree", "partly", "contra"])
def test_theory_section(results, expected):
  claims = theory_section.claims(results)
  assert _verdicts(claims) == expected
  assert [c.element for c in claims] == list(theory_section.ELEMENTS)


# --------------------------------------------------------------------------- the report


def test_report_shows_sub_checks_and_the_noise_rule(tmp_path):
  good = _minima([5, 2, 1], [9, 4, 3], 0.1, 0.5)
  stored = {"elements": ["Fig 0"], "claims": [
      {"element": "Fig 0", "statement": "old", "paper": "p", "ours": "o",
       "verdict": common.PARTLY, "why": ""}]}
  for name, results in (("minima", good), ("old", stored)):
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps(results))
  statuses = [{"name": "minima", "module": "transjax.paper.minima", "status": "done"},
              {"name": "old", "module": "transjax.paper.no_such_module", "status": "done"}]
  text = open(report.write_report(str(tmp_path), statuses, "test")).read()
  assert common.NOISE_RULE in text
  assert "largest Hessian eigenvalue smaller when pretrained: **pass**" in text
  assert "| 2/2 | **reproduced** |" in text
  assert "stored without sub-checks" in text and "| — | **partly reproduced** |" in text


def test_table1_similarity_half_with_the_kernel_complexity():
  results = _tt(GOOD_FT, GOOD_SC)       # deviation near 0.1 < mid 0.2 < far 0.3
  results["kernel_similarity"] = {"near": 0.2, "mid": 0.5, "far": 0.9}
  claim = transfer_targets.claims(results)[1]
  kernel = [c for c in claim.checks if "kernel complexity" in c.name]
  assert len(kernel) == 2 and all(c.passed for c in kernel)
  assert claim.verdict == R and "Spearman(kernel complexity, deviation)" in claim.ours
  results["kernel_similarity"] = {"near": 0.9, "mid": 0.5, "far": 0.2}
  claim = transfer_targets.claims(results)[1]
  assert claim.verdict == P and not any(c.passed for c in claim.checks
                                        if "kernel complexity" in c.name)
