"""Ratios over interleaved rounds: pairing, the interval, and the verdict against a threshold and a physical bound."""

from __future__ import annotations

import pytest

from modelops.bench.noise import Goal, compare
from modelops.gate import rounds
from modelops.gate.capacity import read_curve
from modelops.gate.loadgen import LoadResult, Window, figures
from modelops.gate.suites import Retries, retries_of
from modelops.gate.summary import Step
from stacks.config import SloSettings

SLO = SloSettings(p95_ms=100, p99_ms=200, max_error_ratio=0.01, min_rps=0)


def step(users: int, rps: float, p95: float = 40, errors: int = 0, distorted: str | None = None) -> Step:
    return Step(users=users, rps=rps, p50_ms=p95 / 4, p95_ms=p95, p99_ms=p95 * 1.6, errors=errors, requests=1000,
                distorted=distorted)  # fmt: skip


def one_step(label: str, s: Step):
    return read_curve(label, [s], SLO)


def test_rounds_are_paired_at_each_configurations_own_users_and_odd_rounds_are_said() -> None:
    measured = [
        {"a": one_step("a", step(16, 100)), "b": one_step("b", step(32, 190))},
        {"a": one_step("a", step(16, 90, p95=150)), "b": one_step("b", step(32, 185))},
        {"a": one_step("a", step(16, 95)), "b": one_step("b", step(32, 180, distorted="the machine had no idle CPU"))},
        {"a": one_step("a", step(16, 95))},
    ]
    pair = rounds.paired(measured, "a", "b", 16, 32, SLO)
    assert pair.rounds == [1, 2] and [s.rps for s in pair.b] == [190, 185]
    assert pair.dropped == ["round 3: the machine had no idle CPU", "round 4: b did not run the compared step"]
    assert pair.slo_misses == ["round 2: a p95 150 ms > 100 ms"], "a round outside the SLO is said, not hidden"
    assert pair.failing is None


def test_a_round_in_which_the_judged_configuration_failed_requests_is_a_failure() -> None:
    measured = [{"a": one_step("a", step(16, 100)), "b": one_step("b", step(32, 190, errors=50))}]
    pair = rounds.paired(measured, "a", "b", 16, 32, SLO)
    assert pair.failing == "b failed 5.0% of requests at 32 users in round 1 (limit 1.0%)"


@pytest.mark.parametrize(
    ("samples", "status", "words"),
    [
        ((0.95, 0.91, 0.97), "pass", "E(2)=0.95 [0.91, 0.97] over 3 rounds (0.95, 0.91, 0.97)"),
        ((0.50, 0.55, 0.61), "fail", "the whole interval is below 0.7"),
        ((0.65, 0.80, 0.75), "inconclusive", "spread 0.15) contains the threshold 0.7"),
        ((1.36, 1.22, 1.30), "inconclusive", "the noise exceeds the effect"),
        ((1.05, 0.98, 1.10), "pass", "E(2)=1.05"),
        ((0.95,), "inconclusive", "one round shows no spread"),
    ],
    ids=["above", "below", "straddles", "beyond-the-bound", "above-one-within-the-spread", "one-round"],
)
def test_a_ratio_is_judged_on_its_whole_interval_and_its_physical_bound(samples, status, words) -> None:
    estimate = compare(list(samples), [1.0] * len(samples), Goal.at_least(0.7))
    got, text = rounds.judge_ratio("E(2)", estimate, 0.7, bound=1.0)
    assert got == status and words in text, text


@pytest.mark.parametrize(("tolerance", "status"), [(0.0, "inconclusive"), (0.1, "inconclusive"), (0.25, "pass")])
def test_a_tolerance_above_the_bound_is_a_stated_margin_and_nothing_beyond_it(tolerance, status) -> None:
    estimate = compare([1.36, 1.22, 1.30], [1.0] * 3, Goal.at_least(0.7))  # [1.22, 1.36]: 22 % above the bound 1
    got, text = rounds.judge_ratio("E(2)", estimate, 0.7, bound=1.0, tolerance=tolerance)
    assert got == status, text
    if got == "inconclusive":
        assert "the noise exceeds the effect" in text and "larger batches" in text, "both explanations are named"


def test_ratios_come_from_good_answers_per_round_and_need_an_answer_in_every_round() -> None:
    pair = rounds.Paired(a=[step(16, 100), step(16, 110)], b=[step(32, 190), step(32, 200, p95=60)], rounds=[1, 2],
                         dropped=[], failing=None, slo_misses=[])  # fmt: skip
    estimate = rounds.rps_ratio(pair, 2.0, Goal.at_least(0.7))
    assert estimate is not None and estimate.samples == pytest.approx((0.95, 200 / 220))
    latency = rounds.p95_ratio(pair, Goal.at_most(1.3))
    assert latency is not None and latency.samples == pytest.approx((1.0, 1.5))
    silent = rounds.Paired(a=[step(16, 0)], b=[step(32, 10)], rounds=[1], dropped=[], failing=None, slo_misses=[])
    assert rounds.rps_ratio(silent, 2.0, Goal.at_least(0.7)) is None


def load_of(requests_per_window: int) -> LoadResult:
    windows = [Window(t=i / 2, kind=kind, ok=requests_per_window, failed=0, latencies={5: requests_per_window})
               for i in range(4) for kind in ("single", "hostile")]  # fmt: skip
    return LoadResult(url="", prefix="x", out_dir="", exit_code=0, processes=1, started=0, measured_from=0,
                      windows=windows, window_s=0.5, steps_started=[], cpu=[], golden_checks=0, cpu_warning=False,
                      failure_messages={}, measured=figures(windows, 0.5, [], 0, 2))  # fmt: skip


def test_a_loads_retries_are_the_balancers_counters_before_and_after_it() -> None:
    assert retries_of("slo", load_of(10), (5, 2), (8, 3)) == Retries("slo", 80, 3, 1)
    assert retries_of("slo", load_of(10), (50, 20), (4, 1)).retries == 4, "a reset counter counts from zero"
    assert retries_of("slo", load_of(10), None, (4, 1)).retries is None, "unknown, not zero"
