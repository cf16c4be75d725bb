"""The bench's bookkeeping on fixed numbers: which comparisons are judged how, and which variants get more rounds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console

from modelops.bench.core import (
    DEPLOYMENTS,
    FIGURES,
    RATIOS,
    VARIANTS,
    BenchOptions,
    judge_all,
    measure_rounds,
    pending,
    selected,
    summarise,
    verdict,
)
from modelops.bench.tables import comparisons_table
from modelops.errors import UsageError


def run(rps: float, p95_ms: float = 60.0, failures: int = 0) -> SimpleNamespace:
    """The LoadResult fields the bench reads."""
    measured = SimpleNamespace(generator_load=0.4)
    return SimpleNamespace(rps=rps, p50_ms=p95_ms / 2, p95_ms=p95_ms, p99_ms=p95_ms * 1.2, failures=failures,
                           requests=int(rps * 15), cpu_warning=False, measured=measured)  # fmt: skip


def rounds(*rps: float, **kw) -> dict:
    return {i: run(r, **kw) for i, r in enumerate(rps, start=1)}


def clear_results() -> dict:
    """Every judged comparison clear of its goal: batched 1.1x the floor, the log 1 % slower, HAProxy 1 % slower,
    p95 60 ms."""
    return {
        "noop": rounds(1000, 1010, 990),
        "naive": rounds(120, 125, 118),
        "batched": rounds(1100, 1110, 1090),
        "logged": rounds(1090, 1095, 1085),
        "direct_half": rounds(550, 545, 552),
        "haproxy_half": rounds(545, 540, 547),
        "omp_unset": rounds(33, 35, 30),
        "omp_set": rounds(109, 104, 111),
    }


def test_clear_rounds_settle_every_judged_comparison_and_ask_for_no_more() -> None:
    results = clear_results()
    judged = judge_all(results)
    assert {name: verdict(results, name, e) for name, e in judged.items()} == {
        "batched_vs_noop": "met",
        "batched_vs_naive": None,
        "logged_vs_batched": "met",
        "haproxy_vs_direct": "met",
        "omp_set_vs_unset": None,
        "batched_p95_ms": "met",
    }
    assert pending(results) == set()


def test_only_the_variants_behind_an_inconclusive_verdict_get_more_rounds() -> None:
    results = {**clear_results(), "haproxy_half": rounds(380, 309, 330), "direct_half": rounds(300, 334, 310)}
    assert verdict(results, "haproxy_vs_direct", judge_all(results)["haproxy_vs_direct"]) == "inconclusive"
    assert pending(results) == {"haproxy_half", "direct_half"}


def test_added_rounds_of_a_few_variants_pair_with_each_other() -> None:
    results = clear_results()
    results["direct_half"] |= {4: run(551), 5: run(549)}
    results["haproxy_half"] |= {4: run(546), 5: run(544)}
    judged = judge_all(results)
    assert judged["haproxy_vs_direct"].rounds == 5
    assert judged["batched_vs_noop"].rounds == 3


def test_a_failed_request_makes_a_judged_comparison_missed_however_fast() -> None:
    results = {**clear_results(), "batched": rounds(1100, 1110, 1090, failures=1)}
    assert verdict(results, "batched_vs_noop", judge_all(results)["batched_vs_noop"]) == "missed"
    assert "batched" not in pending(results), "a failed request is a fact: more rounds cannot change it"


def test_the_summary_shows_each_comparison_with_its_interval_and_verdict() -> None:
    summary = summarise(clear_results(), BenchOptions(), {}, "on", rounds_run=3)
    ratio = summary["comparisons"]["haproxy_vs_direct"]
    assert ratio["low"] <= ratio["value"] <= ratio["high"] and ratio["verdict"] == "met" and ratio["rounds"] == 3
    assert summary["variants"]["omp_unset"]["users"] == VARIANTS["omp_unset"].users


def test_no_omp_leaves_out_the_openmp_variants() -> None:
    assert not {"omp_unset", "omp_set"} & set(selected(BenchOptions(omp=False)))
    assert {"omp_unset", "omp_set"} <= set(selected(BenchOptions()))


def test_every_ratio_and_figure_names_measured_variants_and_every_variant_a_deployment() -> None:
    for name, ratio in RATIOS.items():
        assert {ratio.numerator, ratio.denominator} <= set(VARIANTS), f"RATIOS[{name!r}] names an unknown variant"
    for name, figure in FIGURES.items():
        assert figure.variant in VARIANTS, f"FIGURES[{name!r}] names an unknown variant"
    for name, variant in VARIANTS.items():
        assert variant.deployment in DEPLOYMENTS, f"VARIANTS[{name!r}] names an unknown deployment"


class Clock:
    """A fake clock: the measurer below moves it 20 s per measurement."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def measurer(clock: Clock, figures: dict[str, list[float]]):
    """A measure function replaying each variant's req/s round after round (the last value repeats)."""
    calls: list[tuple[str, int]] = []

    def measure(name: str, round_no: int) -> SimpleNamespace:
        clock.now += 20
        calls.append((name, round_no))
        series = figures[name]
        return run(series[min(round_no, len(series)) - 1])

    return measure, calls


def test_clear_verdicts_stop_after_the_minimum_rounds() -> None:
    clock, figures = Clock(), {name: [r.rps for r in by_round.values()] for name, by_round in clear_results().items()}
    measure, calls = measurer(clock, figures)
    rounds_run, stopped = measure_rounds(list(VARIANTS), measure, BenchOptions(rounds=3), {}, clock)
    assert (rounds_run, stopped) == (3, "")
    assert len(calls) == 3 * len(VARIANTS)


def test_an_inconclusive_ratio_gets_rounds_of_its_two_variants_until_it_settles() -> None:
    clock = Clock()
    figures = {name: [r.rps for r in by_round.values()] for name, by_round in clear_results().items()}
    # Round 1-3 straddle the goal (0.97); from round 4 on HAProxy is steadily 1 % slower.
    figures["direct_half"] = [300, 334, 310, 320]
    figures["haproxy_half"] = [380, 309, 330, 316.8]
    measure, calls = measurer(clock, figures)
    results: dict = {}
    rounds_run, stopped = measure_rounds(list(VARIANTS), measure, BenchOptions(rounds=3), results, clock)
    assert stopped == "" and rounds_run > 3
    assert {name for name, round_no in calls if round_no > 3} == {"direct_half", "haproxy_half"}
    assert verdict(results, "haproxy_vs_direct", judge_all(results)["haproxy_vs_direct"]) == "met"


def test_a_ratio_that_never_settles_stops_when_the_time_budget_is_spent_and_says_so() -> None:
    clock = Clock()
    figures = {name: [r.rps for r in by_round.values()] for name, by_round in clear_results().items()}
    figures["direct_half"] = [300, 334, 310] * 20
    figures["haproxy_half"] = [380, 309, 330] * 20
    measure, _ = measurer(clock, figures)
    options = BenchOptions(rounds=3, time_budget_min=10)
    rounds_run, stopped = measure_rounds(list(VARIANTS), measure, options, {}, clock)
    assert stopped.startswith(f"inconclusive after {rounds_run} rounds: another round of direct_half, haproxy_half")
    assert clock.now <= options.time_budget_min * 60, "no round may start that would overrun the budget"


@pytest.mark.parametrize("bad", [{"rounds": 0}, {"duration_s": 0}, {"time_budget_min": -1}, {"users": 0}])
def test_options_that_cannot_measure_are_refused_naming_the_flags(bad) -> None:
    BenchOptions(rounds=1, duration_s=1, time_budget_min=0)  # the smallest valid run
    with pytest.raises(UsageError, match="bench needs --rounds >= 1, --duration > 0"):
        BenchOptions(**bad)


def test_the_printed_comparisons_show_value_interval_rounds_goal_and_verdict() -> None:
    results = {**clear_results(), "haproxy_half": rounds(380, 309, 330), "direct_half": rounds(300, 334, 310)}
    console = Console(record=True, width=200)
    console.print(comparisons_table(summarise(results, BenchOptions(), {}, "on", rounds_run=3)))
    lines = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if "│" in line}
    haproxy, floor = lines["via HAProxy / direct (½ core)"], lines["batched / no-op floor"]
    assert "inconclusive" in haproxy and " met " not in haproxy, haproxy
    assert "1.065" in haproxy and "0.925-1.267" in haproxy and "│ 3 " in haproxy, haproxy
    assert " met " in floor and ">= 0.9" in floor, floor
