"""Rank correlations and regret of a score against accuracies, against scipy and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from transjax.transferability import ranking

ACC = np.array([0.70, 0.90, 0.80, 0.60])


def test_a_perfect_score_has_tau_one_and_no_regret():
  scores = 10 * ACC + 3
  assert ranking.weighted_kendall_tau(scores, ACC) == pytest.approx(1.0)
  assert ranking.kendall_tau(scores, ACC) == pytest.approx(1.0)
  assert ranking.top1_regret(scores, ACC) == 0.0
  assert ranking.weighted_kendall_tau(-scores, ACC) == pytest.approx(-1.0)


def test_taus_are_scipys():
  scores = np.array([0.1, 0.5, 0.7, 0.2])
  np.testing.assert_allclose(ranking.weighted_kendall_tau(scores, ACC),
                             scipy.stats.weightedtau(scores, ACC).statistic, rtol=1e-12)
  # Pairs: (0,1)+ (0,2)+ (0,3)- (1,2)- (1,3)+ (2,3)+: (4 - 2) / 6.
  np.testing.assert_allclose(ranking.kendall_tau(scores, ACC), 2 / 6, rtol=1e-12)


def test_top1_regret_by_hand_and_ties_take_the_worst():
  assert ranking.top1_regret([0.1, 0.5, 0.7, 0.2], ACC) == pytest.approx(0.10)
  assert ranking.top1_regret([1.0, 1.0, 0.0, 0.0], ACC) == pytest.approx(0.20)


def test_rank_orders_best_first():
  assert [n for n, _ in ranking.rank(["a", "b", "c"], [0.2, 0.9, 0.5])] == ["b", "c", "a"]


def test_mismatched_inputs_are_rejected():
  with pytest.raises(ValueError):
    ranking.kendall_tau([1, 2], [1, 2, 3])
