"""The canary's statistics on fixed inputs with real spread: each rule fails once, passes once, and missing data is
inconclusive, never a pass."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modelops import canary_stats as cs
from modelops.canary_stats import Side, Thresholds

T = Thresholds()  # alpha 0.01, power 0.8, detect 5 % errors / 75 % slower, max_error_ratio 1 %, p95 +50 % and 25 ms
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, float("inf")]


def histogram(latencies_s: np.ndarray) -> dict[float, float]:
    """Cumulative bucket counts of these latencies, as a Prometheus histogram holds them."""
    return {b: float((latencies_s <= b).sum()) for b in BOUNDS}


def side(n: int, errors: int = 0, median_ms: float = 20.0, seed: int = 0, buckets=True) -> Side:
    """n requests with lognormal latencies around ``median_ms`` (a real spread: p95 about 2.3x the median)."""
    latencies = np.random.default_rng(seed).lognormal(np.log(median_ms / 1000), 0.5, n)
    return Side(n, errors, histogram(latencies) if buckets else None, None if buckets else "replica r1: refused")


def test_interval_sizes_follow_the_power_formulas() -> None:
    n = cs.min_requests_errors(0.05, 0.01, 0.8)
    k = cs.critical_errors(n, 0.01)
    assert k is not None and stats.binom.sf(k - 1, n, 0.05) >= 0.8 > stats.binom.sf(k - 1, n - 1, 0.05)
    assert cs.fisher_p_against_clean(k, n) == pytest.approx(
        stats.fisher_exact([[k, n - k], [0, n]], alternative="greater").pvalue
    )
    assert cs.min_requests_errors(0.03, 0.01, 0.8) > n, "a smaller error ratio needs more requests"
    z = stats.norm.ppf(0.99) + stats.norm.ppf(0.8)
    assert cs.min_requests_latency(0.75, 0.01, 0.8) == int(np.ceil(z**2 / (6 * 0.25**2))) == 27
    assert cs.min_requests(T) == n == 180


def test_errors_fail_a_candidate_with_significantly_more_and_pass_one_within_chance() -> None:
    live = side(400, errors=1, seed=1)
    bad = cs.judge_interval(side(400, errors=12, seed=2), live, T, full=True)
    assert bad.status == "fail" and bad.rules["errors"] == "fail", bad
    assert "12 of 400" in bad.reasons[0] and "Fisher p" in bad.reasons[0]
    fine = cs.judge_interval(side(400, errors=2, seed=2), live, T, full=True)
    assert fine.status == "pass" and fine.rules["errors"] == "pass", fine


def test_a_significant_but_tiny_error_ratio_does_not_fail() -> None:
    # 9 errors in 2000 against 0 in 20000: significant, but 0.45 % is under max_error_ratio (1 %).
    verdict = cs.judge_interval(side(2000, errors=9, seed=2), side(20000, seed=1), T, full=True)
    assert verdict.figures["errors_p"] < 0.01 and verdict.rules["errors"] == "pass"


def test_latency_fails_a_slower_candidate_by_mann_whitney_and_passes_the_same_distribution() -> None:
    live = side(400, median_ms=20, seed=1)
    slow = cs.judge_interval(side(400, median_ms=60, seed=2), live, T, full=True)
    assert slow.status == "fail" and slow.rules["latency"] == "fail", slow
    assert slow.figures["candidate_slower_share"] > 0.9 and "Mann-Whitney p" in slow.reasons[0]
    same = cs.judge_interval(side(400, median_ms=20, seed=2), live, T, full=True)
    assert same.status == "pass" and same.rules["latency"] == "pass", same
    assert 0.4 < same.figures["candidate_slower_share"] < 0.6


def test_a_slightly_slower_candidate_within_the_practical_threshold_passes() -> None:
    # 10 % slower on 5000 requests a side: Mann-Whitney sees it, but p95 rises far less than 50 % and 25 ms.
    verdict = cs.judge_interval(side(5000, median_ms=22, seed=2), side(5000, median_ms=20, seed=1), T, full=True)
    assert verdict.figures["latency_p"] < 0.01 and verdict.rules["latency"] == "pass", verdict


def test_missing_latencies_are_inconclusive_never_a_pass() -> None:
    verdict = cs.judge_interval(side(400, seed=2, buckets=False), side(400, seed=1), T, full=True)
    assert verdict.status == "inconclusive" and verdict.rules["latency"].startswith("inconclusive: replica r1")
    uncounted = Side(0, 0, None, missing="HAProxy's stats could not be read (OSError: gone)", counted=False)
    verdict = cs.judge_interval(uncounted, side(400, seed=1), T, full=True)
    assert verdict.status == "inconclusive" and "HAProxy's stats could not be read" in verdict.reasons[0]


def test_too_few_requests_when_the_interval_is_up_are_inconclusive() -> None:
    verdict = cs.judge_interval(side(60, seed=2), side(600, seed=1), T, full=True)
    assert verdict.status == "inconclusive" and "candidate 60 of the 180 per colour" in verdict.reasons[0], verdict


def test_an_early_look_fails_only_a_clear_breach_and_never_passes() -> None:
    live = side(80, seed=1)
    clear = cs.judge_interval(side(80, errors=20, seed=2), live, T, full=False, looks=30)
    assert clear.status == "fail" and clear.figures["alpha"] == pytest.approx(0.01 / 30)
    # 4 errors in 80 against none: p 0.06, not clear at an early look (alpha / 30), nor at the interval's end.
    unsure = cs.judge_interval(side(80, errors=4, seed=2), live, T, full=False, looks=30)
    assert unsure.status == "inconclusive" and unsure.rules["errors"] == "pass"
    healthy = cs.judge_interval(side(80, seed=2), live, T, full=False, looks=30)
    assert healthy.status == "inconclusive", "an early look with too few requests cannot pass"


def test_histogram_quantile_is_prometheus_linear_interpolation() -> None:
    buckets = {0.01: 50.0, 0.1: 100.0, float("inf"): 100.0}
    assert cs.quantile_ms(buckets, 0.5) == pytest.approx(10.0)
    assert cs.quantile_ms(buckets, 0.95) == pytest.approx(10 + 90 * 0.9)
    assert cs.quantile_ms({0.1: 0.0, float("inf"): 0.0}, 0.95) is None
