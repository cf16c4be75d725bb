"""The quality suite's statistics on fixed inputs: every rule fails once, passes once and is inconclusive once."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modelops.gate import quality_tests as qt


def rows(both: int, only_live: int, only_candidate: int, neither: int) -> tuple[list[bool], list[bool]]:
    """(candidate_right, live_right) per row, from the four cells of McNemar's table."""
    cand = [True] * both + [False] * only_live + [True] * only_candidate + [False] * neither
    live = [True] * both + [True] * only_live + [False] * only_candidate + [False] * neither
    return cand, live


def test_the_mid_p_interval_puts_half_the_missing_confidence_in_each_tail_and_sits_inside_clopper_pearson():
    lo, hi = qt.midp_interval(7, 20, 0.95)
    assert qt.midp_greater(7, 20, lo) == pytest.approx(0.025, abs=1e-9)
    assert qt.midp_less(7, 20, hi) == pytest.approx(0.025, abs=1e-9)
    exact = stats.binomtest(7, 20).proportion_ci(0.95, method="exact")
    assert exact.low < lo < 7 / 20 < hi < exact.high, "mid-p is the less conservative of the two"
    assert qt.midp_interval(0, 20, 0.95)[0] == 0.0 and qt.midp_interval(20, 20, 0.95)[1] == 1.0


def test_mcnemar_fails_a_candidate_worse_beyond_the_margin_with_confidence() -> None:
    # 100 rows: the candidate loses 20 rows the live version got right and wins 2.
    cand, live = rows(both=70, only_live=20, only_candidate=2, neither=8)
    out = qt.paired_classification(cand, live, margin=0.03, confidence=0.95)
    assert out.status == "fail", out.reason
    assert out.figures["delta"] == pytest.approx(-0.18) and out.figures["delta_high"] < -0.03
    assert out.figures["p_worse"] < 0.001 and "worse beyond the margin" in out.reason


def test_mcnemar_records_each_versions_accuracy_with_its_interval_for_the_report() -> None:
    cand, live = rows(both=70, only_live=20, only_candidate=2, neither=8)
    figures = qt.paired_classification(cand, live, margin=0.03, confidence=0.95).figures
    for name, right in (("candidate", 72), ("live", 90)):
        low, high = qt.midp_interval(right, 100, 0.95)
        assert (figures[f"{name}_accuracy_low"], figures[f"{name}_accuracy_high"]) == (low, high), name
        assert low < figures[f"{name}_accuracy"] == right / 100 < high, name


def test_mcnemar_passes_a_candidate_within_the_margin_with_confidence() -> None:
    # 500 rows: 6 against the candidate, 5 for it: the whole interval is above -3 %.
    cand, live = rows(both=450, only_live=6, only_candidate=5, neither=39)
    out = qt.paired_classification(cand, live, margin=0.03, confidence=0.95)
    assert out.status == "pass", out.reason
    assert -0.03 <= out.figures["delta_low"] < out.figures["delta"] < out.figures["delta_high"]


def test_mcnemar_is_inconclusive_when_the_interval_straddles_the_margin() -> None:
    # 100 rows: 5 against, 1 for: looks 4 % worse, but 6 discordant rows cannot say it with confidence.
    cand, live = rows(both=85, only_live=5, only_candidate=1, neither=9)
    out = qt.paired_classification(cand, live, margin=0.03, confidence=0.95)
    assert out.status == "inconclusive", out.reason
    assert out.figures["delta_low"] < -0.03 <= out.figures["delta_high"] and "straddles" in out.reason


def test_mcnemar_passes_identical_answers_and_discordance_too_small_to_lose_the_margin() -> None:
    cand, live = rows(both=40, only_live=0, only_candidate=0, neither=5)
    assert qt.paired_classification(cand, live, 0.03, 0.95).status == "pass"
    cand, live = rows(both=44, only_live=1, only_candidate=0, neither=0)  # seed 1 vs 2 on wine's 45 held-out rows
    out = qt.paired_classification(cand, live, 0.03, 0.95)
    assert out.status == "pass" and out.figures["delta_low"] == pytest.approx(-1 / 45, abs=1e-6)
    assert qt.paired_classification(cand, live, 0.02, 0.95).status == "inconclusive", "one row is 2.2 % of 45"


def test_paired_bootstrap_judges_the_ratio_of_mean_absolute_errors() -> None:
    rng = np.random.default_rng(1)
    live = rng.normal(0, 1.0, 400)
    worse = qt.paired_regression(live * 1.5, live, margin=0.1, confidence=0.95)
    assert worse.status == "fail" and worse.figures["mae_ratio"] == pytest.approx(1.5), worse.reason
    same = qt.paired_regression(live * 0.98 + rng.normal(0, 0.01, 400), live, margin=0.1, confidence=0.95)
    assert same.status == "pass", same.reason
    few = rng.normal(0, 1.0, 12)
    unsure = qt.paired_regression(few * rng.uniform(0.5, 1.9, 12), few, margin=0.1, confidence=0.95)
    assert unsure.status == "inconclusive", unsure.reason
    assert unsure.figures["mae_ratio_low"] < 1.1 < unsure.figures["mae_ratio_high"]


def test_the_floor_fails_below_passes_above_and_is_unsure_on_few_rows() -> None:
    assert qt.accuracy_floor(17, 45, floor=0.8, confidence=0.95).status == "fail"
    assert qt.accuracy_floor(44, 45, floor=0.8, confidence=0.95).status == "pass"
    unsure = qt.accuracy_floor(8, 10, floor=0.8, confidence=0.95)
    assert unsure.status == "inconclusive" and "straddles the floor 80%" in unsure.reason


def test_a_model_no_better_than_a_constant_answer_fails() -> None:
    labels = ["a"] * 18 + ["b"] * 15 + ["c"] * 12  # the most frequent label is 40 % of the rows
    shuffled = qt.better_than_constant(17, labels, 0.95)
    assert shuffled.status == "fail" and "no better than a constant answer" in shuffled.reason
    assert shuffled.figures["constant_share"] == pytest.approx(0.4)
    assert qt.better_than_constant(44, labels, 0.95).status == "pass"
    assert qt.better_than_constant(22, labels, 0.95).status == "inconclusive", "49 % on 45 rows is not shown"
