"""Every verdict rule on fixed inputs, in milliseconds: where it passes, where it fails, where it cannot tell."""

from __future__ import annotations

import pytest

from modelops.gate import judge
from modelops.gate.capacity import Limits, read_curve
from modelops.gate.fuzz import FuzzResult
from modelops.gate.labelled import LabelledSet, SetAnswers
from modelops.gate.loadgen import CpuSample, LoadResult, Window, figures
from modelops.gate.suites import (
    AutoscaleRun,
    FailoverRun,
    QualityRun,
    Retries,
    RobustnessRun,
    SloRun,
    SmokeRun,
    Sweep,
)
from modelops.gate.summary import Step, SuiteResult, Summary
from modelops.monitor.quality import QualityFigures
from modelops.targets.base import CpuBudgets, KilledReplica
from stacks.config import GateSettings, SloSettings

GATE = GateSettings()
SLO = SloSettings(p95_ms=100, p99_ms=200, max_error_ratio=0.01, min_rps=10)
LIMITS = Limits(max_generator_load=0.85, min_idle_cpu=0.1, max_generator_wait=0.3)
BUDGETS = CpuBudgets(enforced=True, note="cgroup v1 cpu quota")


def load(
    ok_per_s: int = 100,
    failed_per_s: int = 0,
    ms: int = 20,
    seconds: int = 10,
    generator_load: float = 0.2,
    generator_wait: float = 0.0,
    idle: float = 1.0,
    golden: int = 0,
    failures: dict | None = None,
    answers: dict[int, dict[str, int]] | None = None,
) -> LoadResult:
    """A measured run: ``seconds`` of steady traffic at these rates and latency, with this CPU picture."""
    windows = [
        Window(
            t=100 + i / 2,
            kind="single",
            ok=ok_per_s // 2,
            failed=failed_per_s // 2,
            latencies={ms: (ok_per_s + failed_per_s) // 2},
        )
        for i in range(2 * seconds)
    ]
    cpu = [
        CpuSample(
            t=100 + i / 2,
            generator_cpu=generator_load,
            generator_load=generator_load,
            machine_idle=idle,
            generator_wait=generator_wait,
        )
        for i in range(1, 2 * seconds + 1)
    ]
    return LoadResult(url="u", prefix="slo", out_dir="", exit_code=0, processes=1, started=100, measured_from=100,
                      windows=windows, window_s=0.5, steps_started=[], cpu=cpu, golden_checks=golden,
                      cpu_warning=False, failure_messages=failures or {},
                      measured=figures(windows, 0.5, cpu, 100, 100 + seconds),
                      golden_answers=answers or {})  # fmt: skip


def slo_run(result: LoadResult, throttled: float | None = None) -> SloRun:
    return SloRun(result=result, replicas=2, workers=1, cpu_budget=0.5, cpu_seconds=4.0, throttled=throttled)


# ---------------------------------------------------------------------------------------------------- smoke
GOLDEN_TRUTH = ["a", "a", "a", "a", "a", "a", "b", "b", "b", "b", "b", "c", "c", "c", "c", "c"]  # 16 rows


def answered(labels: list[str], checks: int = 5) -> dict[int, dict[str, int]]:
    """Every golden check answered each row with ``labels[row]``."""
    return {i: {label: checks} for i, label in enumerate(labels)}


def smoke(answers: dict[int, dict[str, int]], gate=GATE, checks: int = 5):
    run = SmokeRun(load(golden=checks, answers=answers), golden=True, golden_labels=GOLDEN_TRUTH)
    return judge.judge_smoke(run, gate, LIMITS)


def test_smoke_fails_on_any_failed_request_and_needs_its_golden_checks() -> None:
    failing = load(failed_per_s=2, failures={"HTTP 500": 20})
    assert judge.judge_smoke(SmokeRun(failing, golden=True), GATE, LIMITS).status == "fail"
    unchecked = judge.judge_smoke(SmokeRun(load(), golden=True, golden_labels=GOLDEN_TRUTH), GATE, LIMITS)
    assert (unchecked.status, unchecked.reason) == ("inconclusive", "the golden rows were never checked")
    assert smoke(answered(GOLDEN_TRUTH)).status == "pass"


def test_smoke_counts_every_wrong_golden_answer_and_passes_a_model_that_is_mostly_right() -> None:
    one_wrong = answered(["b", *GOLDEN_TRUTH[1:]])  # row 0 wrong in each of 5 checks
    result = smoke(one_wrong)
    assert result.status == "pass", result.reason
    assert result.measured["golden_wrong_answers"] == 5 and result.measured["golden_answers"] == 80
    assert "5 wrong of 80 answers" in result.reason


def test_smoke_fails_a_model_no_better_than_a_constant_answer_on_the_golden_rows() -> None:
    shuffled = ["b", "c", "a", "a", "b", "c", "a", "c", "a", "b", "b", "a", "b", "a", "c", "b"]  # right on 5 of 16
    result = smoke(answered(shuffled))
    assert result.status == "fail", result.reason
    assert "no better than a constant answer" in result.reason and result.measured["golden_rows_right"] == 5


def test_smoke_fails_golden_rows_answered_differently_by_the_replicas() -> None:
    split = answered(GOLDEN_TRUTH)
    split[3] = {"a": 4, "c": 1}
    result = smoke(split)
    assert result.status == "fail" and "golden row 3 was answered 'a' 4x, 'c' 1x" in result.reason


def test_smoke_fails_golden_accuracy_confidently_below_the_floor() -> None:
    mostly = answered(["a", "a", "a", "a", "a", "a", "b", "b", "b", "b", "b", "c", "a", "a", "a", "a"])  # 12 of 16
    assert smoke(mostly).status == "pass", "75 %: better than a constant answer, no floor set"
    strict = GATE.model_copy(update={"quality_min_accuracy": 0.97})
    result = smoke(mostly, gate=strict)
    assert result.status == "fail" and "below the floor 97%" in result.reason


# ------------------------------------------------------------------------------------------------------ slo
def test_slo_passes_within_every_threshold_and_records_cpu_per_request() -> None:
    result = judge.judge_slo(slo_run(load()), SLO, GATE, LIMITS)
    assert result.status == "pass", result.reason
    assert result.measured["cpu_seconds_per_request"] == pytest.approx(4.0 / 1000)
    assert result.measured["offered_rps_per_replica"] == GATE.target_rps / 2


@pytest.mark.parametrize(
    ("run", "words"),
    [
        (load(ms=150), "p95 150 ms > 100 ms"),
        (load(ms=250), "p99 250 ms > 200 ms"),
        (load(ok_per_s=90, failed_per_s=10), "error ratio 10.00% > 1.00%"),
        (load(ok_per_s=8, seconds=30), "8 good req/s < 10 req/s"),
    ],
)
def test_slo_fails_on_each_threshold(run, words) -> None:
    result = judge.judge_slo(slo_run(run), SLO, GATE.model_copy(update={"min_requests": 10}), LIMITS)
    assert (result.status, words in result.reason) == ("fail", True), result.reason


def test_failed_requests_never_count_as_throughput() -> None:
    result = judge.judge_slo(slo_run(load(ok_per_s=40, failed_per_s=60)), SLO, GATE, LIMITS)
    assert result.rps == 40 and "40 good req/s" not in result.reason and result.status == "fail"


@pytest.mark.parametrize(
    ("run", "words"),
    [
        (load(ms=150, generator_load=0.9), "load generator was saturated"),
        (load(ms=150, generator_wait=0.5), "load generator was starved"),
        (load(ms=150, idle=0.0), "no idle CPU"),
    ],
)
def test_slo_is_inconclusive_when_the_generator_or_the_machine_was_the_limit(run, words) -> None:
    result = judge.judge_slo(slo_run(run), SLO, GATE, LIMITS)
    assert result.status == "inconclusive" and words in result.reason
    assert "it also measured: p95 150 ms" in result.reason, "what was measured is still reported"


def test_a_full_machine_does_not_void_a_run_whose_replicas_were_held_at_their_budget() -> None:
    assert judge.judge_slo(slo_run(load(idle=0.0), throttled=0.8), SLO, GATE, LIMITS).status == "pass"


def test_too_few_requests_are_inconclusive_unless_the_candidate_was_too_slow() -> None:
    gate = GATE.model_copy(update={"min_requests": 10_000})
    assert judge.judge_slo(slo_run(load()), SLO, gate, LIMITS).status == "inconclusive"
    assert judge.judge_slo(slo_run(load(ok_per_s=4)), SLO, gate, LIMITS).status == "fail"


# ------------------------------------------------------------------------------------------------- scaling
def spread_step(users: int, rps: float, p95: float = 20, errors: int = 0, distorted: str | None = None) -> Step:
    """A step with real latency spread: p50 a third of p95, p99 1.5 x p95."""
    return Step(users=users, rps=rps, p50_ms=p95 / 3, p95_ms=p95, p99_ms=1.5 * p95, errors=errors, requests=1000,
                distorted=distorted)  # fmt: skip


def curve(label: str, *rps: float, errors_at: int | None = None, distorted_at: int | None = None, base: int = 4,
          p95: list[float] | None = None):  # fmt: skip
    steps = []
    for i, r in enumerate(rps):
        errors = 500 if errors_at is not None and i >= errors_at else 0
        distorted = "the load generator was saturated" if distorted_at is not None and i >= distorted_at else None
        steps.append(spread_step(base * 4**i, r, p95[i] if p95 else 20, errors, distorted))
    return read_curve(label, steps, SLO)


def sweep(unit: str, values: list[int], *curves, later: list[list[float]] | None = None, live=None) -> Sweep:
    """Round 1 is ``curves`` (and ``live``, the live version's curve at values[0]); each entry of ``later`` is one
    more round: the factor each configuration's round-1 throughput at the compared step is measured at (live last)."""
    first = curves[0]
    compared = first.last_within.users if first.last_within else None
    configs = list(zip(values, curves, strict=True)) + ([(values[0], live)] if live else [])
    rounds = [{c.label: c for _, c in configs}]
    for factors in (later if later is not None else [[1.0] * len(configs)] * 2) if compared else []:
        this = {}
        for (value, c), factor in zip(configs, factors, strict=True):
            users = round((compared or 0) * value / values[0])
            at = c.at_users(users)
            step = spread_step(users, at.rps * factor, at.p95_ms or 20, at.errors)
            this[c.label] = read_curve(c.label, [step], SLO)
        rounds.append(this)
    return Sweep(unit=unit, values=values, curves=list(curves), reports=[], cpu=[], rounds=rounds,
                 compared_users=compared, reference="live:v1" if live else None)  # fmt: skip


def horizontal(one, two, budgets: CpuBudgets = BUDGETS, later=None) -> SuiteResult:
    return judge.judge_horizontal(sweep("replicas", [1, 2], one, two, later=later), GATE, SLO, budgets)


ONE = (100, 200, 250)


def test_horizontal_passes_when_twice_the_replicas_carry_twice_the_users_nearly_twice_as_fast() -> None:
    result = horizontal(curve("replicas=1", *ONE), curve("replicas=2", 200, 390, 480, base=8),
                        later=[[1.0, 0.98], [0.97, 1.0]])  # fmt: skip
    assert result.status == "pass", result.reason
    # Rounds at 64 users per replica: 480/500, 470.4/500, 480/485 -> median 0.96, interval the rounds' range.
    assert result.measured["efficiency_2"] == pytest.approx(0.96)
    assert result.measured["efficiency_2_low"] == pytest.approx(0.9408)
    assert result.measured["capacity_per_replica"] == 250
    assert "E(2)=0.96 [0.94, 0.99] over 3 rounds (0.96, 0.94, 0.99)" in result.reason
    assert "at 64 users per 1 replicas" in result.reason
    assert result.measured["compared_users"] == 64 and result.measured["rounds"] == 3
    assert len(result.rounds) == 3 and result.rounds[1]["replicas=2"][0].users == 128


def test_scaling_suites_record_how_many_steps_of_each_curve_met_the_slo_for_the_report() -> None:
    one = curve("replicas=1", 100, 200, 250, p95=[20, 40, 150])  # 150 ms > the 100-ms SLO at the third step
    two = curve("replicas=2", 200, 390, 480, base=8, p95=[20, 40, 60])
    result = horizontal(one, two)
    assert result.within_slo == {"replicas=1": 2, "replicas=2": 3}
    assert judge.judge_vertical(sweep("workers", [1, 2], curve("workers=1", 100, 180, p95=[300, 400]),
                                      curve("workers=2", 190, 350, base=8)), GATE, SLO, BUDGETS
                                ).within_slo == {"workers=1": 0, "workers=2": 2}  # fmt: skip


def test_horizontal_fails_when_a_second_replica_adds_too_little_in_every_round() -> None:
    result = horizontal(curve("replicas=1", *ONE), curve("replicas=2", 150, 220, 260, base=8))
    assert result.status == "fail" and "below min_efficiency 0.7" in result.reason, result.reason
    assert result.measured["efficiency_2"] == pytest.approx(0.52)


def test_an_efficiency_whose_interval_straddles_the_threshold_is_inconclusive_naming_the_spread() -> None:
    # 0.76 in round 1, then 0.62 and 0.84: the noise is wider than the difference from 0.7.
    result = horizontal(curve("replicas=1", *ONE), curve("replicas=2", 200, 380, 380, base=8),
                        later=[[1.0, 0.816], [1.0, 1.105]])  # fmt: skip
    assert result.status == "inconclusive", result.reason
    assert "E(2)=0.76 [0.62, 0.84]" in result.reason and "spread 0.22" in result.reason
    assert "contains the threshold 0.7" in result.reason


def test_an_efficiency_above_one_beyond_its_spread_measured_noise_and_is_never_a_pass() -> None:
    # This week's E(2) = 1.36: one replica sagged at its compared step in every round, two did not.
    result = horizontal(curve("replicas=1", *ONE), curve("replicas=2", 200, 400, 680, base=8),
                        later=[[0.9, 1.0], [0.95, 0.98]])  # fmt: skip
    assert result.status == "inconclusive", result.reason
    assert "the noise exceeds the effect" in result.reason and "physical bound 1" in result.reason
    assert result.measured["efficiency_2_low"] > 1


def test_an_efficiency_a_little_above_one_within_its_spread_passes() -> None:
    result = horizontal(curve("replicas=1", *ONE), curve("replicas=2", 200, 400, 520, base=8),
                        later=[[1.0, 0.94], [1.0, 0.98]])  # fmt: skip
    assert result.status == "pass", result.reason
    assert result.measured["efficiency_2"] > 1 >= result.measured["efficiency_2_low"]


def test_rounds_whose_compared_step_was_distorted_are_left_out_and_one_round_is_never_enough() -> None:
    one, two = curve("replicas=1", *ONE), curve("replicas=2", 200, 390, 480, base=8)
    measured = sweep("replicas", [1, 2], one, two)
    hot = spread_step(128, 480, distorted="the load generator was saturated")
    for later in measured.rounds[1:]:
        later["replicas=2"] = read_curve("replicas=2", [hot], SLO)
    result = judge.judge_horizontal(measured, GATE, SLO, BUDGETS)
    assert result.status == "inconclusive" and "one round shows no spread" in result.reason, result.reason
    assert "round 2: the load generator was saturated" in result.reason


def test_horizontal_fails_when_a_curve_has_no_clean_step() -> None:
    result = horizontal(curve("replicas=1", 400, 800, errors_at=0), curve("replicas=2", 200, 380, 390, base=8))
    assert result.status == "fail" and "no clean step" in result.reason and result.measured["rps_1"] == 0


def test_a_candidate_with_no_step_within_the_latency_slo_fails_naming_the_first_steps_p95() -> None:
    # Fast at light load (the slo suite's), slow with requests in flight: every step above the p95 limit.
    slow = curve("replicas=1", 100, 110, 112, p95=[180, 600, 1200])
    # The sweep stops after the first configuration: nothing else is measured once it met the SLO at no step.
    measured = Sweep(unit="replicas", values=[1, 2], curves=[slow], reports=[], cpu=[], rounds=[{"replicas=1": slow}],
                     compared_users=None)  # fmt: skip
    result = judge.judge_horizontal(measured, GATE, SLO, BUDGETS)
    assert result.status == "fail", result.reason
    assert "replicas=1: no step met the latency SLO: the first step (4 users) had p95 180 ms > 100 ms" in result.reason
    assert "(the SLO's p95 is 100 ms, p99 200 ms)" in result.reason
    assert judge.capacity_inputs({"horizontal": result}, SLO, 1) is None, "nothing to plan from"


def test_a_first_configuration_distorted_from_its_first_step_is_inconclusive_not_a_crash() -> None:
    """Seen on a busy machine: the generator starved at the first step, so the sweep measured nothing more."""
    starved = curve("replicas=1", 100, 200, distorted_at=0)
    measured = Sweep(unit="replicas", values=[1, 2], curves=[starved], reports=[], cpu=[],
                     rounds=[{"replicas=1": starved}], compared_users=None)  # fmt: skip
    result = judge.judge_horizontal(measured, GATE, SLO, BUDGETS)
    assert result.status == "inconclusive", result.reason
    assert "replicas=1 measured no usable step" in result.reason and "saturated" in result.reason


def test_a_larger_configuration_breaking_the_latency_slo_at_the_compared_step_in_every_round_fails() -> None:
    two = curve("replicas=2", 200, 390, 480, base=8, p95=[20, 20, 150])
    result = horizontal(curve("replicas=1", *ONE), two)
    assert result.status == "fail", result.reason
    assert "replicas=2 broke the latency SLO at 128 users in every round, where replicas=1 met it at 64" in (
        result.reason
    )
    assert "round 3: p95 150 ms > 100 ms" in result.reason


def test_a_larger_configurations_latency_breach_in_one_round_is_said_not_a_verdict() -> None:
    measured = sweep("replicas", [1, 2], curve("replicas=1", *ONE), curve("replicas=2", 200, 390, 480, base=8))
    measured.rounds[1]["replicas=2"] = read_curve("replicas=2", [spread_step(128, 470, p95=140)], SLO)
    result = judge.judge_horizontal(measured, GATE, SLO, BUDGETS)
    assert result.status == "pass", result.reason
    assert "replicas=2 round 2: p95 140 ms > 100 ms" in result.reason


def test_horizontal_fails_when_more_replicas_err_under_a_load_one_replica_served() -> None:
    result = horizontal(curve("replicas=1", *ONE), curve("replicas=2", 200, 390, 480, errors_at=2, base=8))
    assert result.status == "fail" and "replicas=2 failed 50.0% of requests at 128 users" in result.reason


def test_errors_of_the_smaller_configuration_end_the_comparison_at_its_last_clean_step() -> None:
    result = horizontal(curve("replicas=1", 100, 200, 900, errors_at=2), curve("replicas=2", 200, 390, 100, base=8))
    assert result.status == "pass" and result.measured["efficiency_2"] == pytest.approx(0.975), result.reason
    assert "at 64 users 50.0% of requests failed" in result.reason and result.measured["compared_users"] == 16


def test_scaling_is_not_judged_without_cpu_budgets() -> None:
    off = CpuBudgets(enforced=False, note="cannot create cgroups (not root)")
    result = horizontal(curve("replicas=1", *ONE), curve("replicas=2", 200, 390, 480, base=8), off)
    assert result.status == "inconclusive" and "CPU budgets are off" in result.reason


def test_scaling_with_nothing_comparable_is_inconclusive() -> None:
    one, two = curve("replicas=1", *ONE), curve("replicas=2", 200, 380, distorted_at=0, base=8)
    result = judge.judge_horizontal(Sweep(unit="replicas", values=[1, 2], curves=[one, two], reports=[], cpu=[],
                                          rounds=[], compared_users=64), GATE, SLO, BUDGETS)  # fmt: skip
    assert result.status == "inconclusive" and "nothing comparable" in result.reason


def vertical(one, two, later=None, gate: GateSettings = GATE) -> SuiteResult:
    return judge.judge_vertical(sweep("workers", [1, 2], one, two, later=later), gate, SLO, BUDGETS)


def test_vertical_fails_below_its_ratio_and_passes_above() -> None:
    one = curve("workers=1", 100, 110, 112)
    flat = vertical(one, curve("workers=2", 100, 112, 113, base=8))
    assert flat.status == "fail" and flat.measured["ratio"] == pytest.approx(113 / 112), flat.reason
    good = vertical(one, curve("workers=2", 150, 200, 204, base=8), later=[[1.0, 0.95], [1.02, 1.0]])
    # Rounds: 204/112, 193.8/112, 204/114.24: the median is the middle one, the interval the rounds' range.
    assert good.status == "pass" and good.measured["ratio"] == pytest.approx(204 / 114.24), good.reason
    assert good.measured["ratio_low"] == pytest.approx(204 * 0.95 / 112)


def test_a_vertical_ratio_above_the_worker_ratio_beyond_its_spread_is_inconclusive() -> None:
    # 2.3x one worker from two on twice the CPU: the one-worker runs sagged, or the candidate does more per CPU with
    # more of it. One run cannot tell which, and by default (bound_tolerance 0) such a ratio never passes.
    one = curve("workers=1", 100, 110, 100)
    result = vertical(one, curve("workers=2", 150, 200, 230, base=8), later=[[0.95, 1.0], [1.0, 1.05]])
    assert result.status == "inconclusive" and "the noise exceeds the effect" in result.reason, result.reason
    assert "physical bound 2." in result.reason and "modelops:gate.bound_tolerance" in result.reason
    assert result.thresholds["bound_tolerance"] == 0


@pytest.mark.parametrize(("tolerance", "status"), [(0.1, "inconclusive"), (0.2, "pass")])
def test_a_stated_bound_tolerance_accepts_a_ratio_that_far_above_the_bound_and_no_further(tolerance, status) -> None:
    # The rounds: 2.30, 2.42, 2.42 -> [2.30, 2.42]. Within 20 % of the bound 2 (2.4 > 2.30), not within 10 % (2.2).
    one = curve("workers=1", 100, 110, 100)
    gate = GATE.model_copy(update={"bound_tolerance": tolerance})
    result = vertical(one, curve("workers=2", 150, 200, 230, base=8), later=[[0.95, 1.0], [1.0, 1.05]], gate=gate)
    assert result.status == status, result.reason
    assert result.measured["ratio_low"] == pytest.approx(2.3)
    assert result.thresholds["bound_tolerance"] == tolerance
    if status == "inconclusive":
        assert "above the physical bound 2 by more than the 10% allowed" in result.reason


def test_scaling_fails_when_the_best_clean_throughput_did_not_grow_whatever_the_matched_ratio() -> None:
    # Measured on a busy machine: one worker held by a lock peaks at 49 req/s and sags to 37 at its last step; two
    # workers, held by the same lock, reach 49 at twice the users. Matched at that step: 1.32; peak to peak: 1.0.
    one, two = curve("workers=1", 45, 49, 37), curve("workers=2", 45, 49, 49, base=8)
    result = vertical(one, two, gate=GATE.model_copy(update={"min_vertical_ratio": 1.3}))
    assert result.status == "fail", result.reason
    assert "best throughput within the SLO did not grow as much (2 workers: 1.00" in result.reason
    # Two replicas matched at the last step (30 vs 2 x 20: E 0.75) but never above 50 against one replica's 49.
    sagging, pair = curve("replicas=1", 45, 49, 20), curve("replicas=2", 40, 50, 30, base=8)
    replicas = horizontal(sagging, pair)
    assert replicas.status == "fail" and "did not grow as much (2 replicas: 0.51" in replicas.reason, replicas.reason


def test_a_peak_cut_short_by_a_starved_generator_is_no_evidence_of_flat_scaling() -> None:
    # Seen on a busy machine: two workers' curve ended where the generator starved (its capacity a lower bound), and
    # its peak, 1.06 x one worker's, was read as "did not grow": a rejection that measured the generator.
    one = curve("workers=1", 100, 110, 112)
    starved = curve("workers=2", 100, 118, 200, base=8, distorted_at=1)
    result = vertical(one, starved, gate=GATE.model_copy(update={"min_vertical_ratio": 1.3}))
    # Judged on the rounds whose compared step was clean (round 1's was starved and is left out, and said).
    assert result.status == "pass" and "round 1: the load generator was saturated" in result.reason, result.reason
    assert "did not grow as much" not in result.reason
    # The same flat peak measured cleanly is the candidate's, and fails.
    clean = vertical(
        one, curve("workers=2", 100, 118, 119, base=8), gate=GATE.model_copy(update={"min_vertical_ratio": 1.3})
    )
    assert clean.status == "fail", clean.reason


# ------------------------------------------------------------------------------------------------ failover
def failover(down_after: float | None, result: LoadResult | None = None, killed: bool = True) -> SuiteResult:
    run = FailoverRun(result=result or load(seconds=20), replicas=2, workers=1,
                      killed=KilledReplica("green-2", "u", killed_at=105.0) if killed else None,
                      down_after_s=down_after)  # fmt: skip
    return judge.judge_failover(run, GATE, LIMITS)


def test_failover_passes_when_the_balancer_takes_the_replica_out_quickly_without_errors() -> None:
    result = failover(1.4)
    assert result.status == "pass" and "marked down 1.40 s after the kill" in result.reason
    assert result.measured["killed_at_s"] == 5.0


@pytest.mark.parametrize(
    ("down_after", "run", "words"),
    [
        (None, None, "never marked down"),
        (6.0, None, "limit 5 s"),
        (1.0, load(seconds=20, ok_per_s=98, failed_per_s=2), "limit 0.10%"),
    ],
)
def test_failover_fails_when_the_replica_stays_in_or_requests_fail(down_after, run, words) -> None:
    result = failover(down_after, run)
    assert result.status == "fail" and words in result.reason


def test_failover_without_a_kill_is_inconclusive() -> None:
    assert failover(None, killed=False).status == "inconclusive"


# ---------------------------------------------------------------------------------------------- robustness
def fuzzed(server_errors: int = 0, complete: bool = True) -> FuzzResult:
    return FuzzResult(url="u", command=["schemathesis"], exit_code=0, cases=500, server_errors=server_errors,
                      failures=server_errors, first_failures=["Server error on POST /predict"] if server_errors else [],
                      duration_s=10, report="", complete=complete)  # fmt: skip


def robust(result: LoadResult, fuzz: FuzzResult | None = None, lost: list[str] | None = None) -> SuiteResult:
    hostile = [Window(t=100 + i / 2, kind="hostile", ok=5, failed=0, latencies={3: 5}) for i in range(20)]
    mixed = LoadResult(**{**result.__dict__, "windows": result.windows + hostile})
    run = RobustnessRun(result=mixed, fuzz=fuzz or fuzzed(), fuzz_error=None, lost=lost or [])
    return judge.judge_robustness(run, GATE)


def test_robustness_passes_when_nobody_fails_beside_hostile_clients() -> None:
    result = robust(load())
    assert result.status == "pass", result.reason
    assert result.measured["hostile_requests"] == 100 and result.measured["fuzz_cases"] == 500


@pytest.mark.parametrize(
    ("result", "fuzz", "lost", "words"),
    [
        (
            load(ok_per_s=98, failed_per_s=2, failures={"HTTP 500: boom": 20}),
            None,
            None,
            "well-behaved requests failed",
        ),
        (load(), fuzzed(server_errors=1), None, "schemathesis found 1 server error"),
        (load(), None, ["green-1 (pid 42)"], "replicas died during the suite: green-1 (pid 42)"),
    ],
)
def test_robustness_fails_on_any_harm(result, fuzz, lost, words) -> None:
    judged = robust(result, fuzz, lost)
    assert judged.status == "fail" and words in judged.reason


def test_a_hostile_request_answered_with_a_5xx_fails_robustness() -> None:
    result = load()
    bad = [Window(t=100, kind="hostile", ok=0, failed=3, latencies={3: 3})]
    run = RobustnessRun(result=LoadResult(**{**result.__dict__, "windows": result.windows + bad}), fuzz=fuzzed(),
                        fuzz_error=None, lost=[])  # fmt: skip
    judged = judge.judge_robustness(run, GATE)
    assert judged.status == "fail" and "3 hostile requests got a 5xx" in judged.reason


def test_robustness_without_a_finished_fuzz_run_is_inconclusive() -> None:
    assert robust(load(), fuzzed(complete=False)).status == "inconclusive"


# ---------------------------------------------------------------------------------------------- regression
def summary_with(capacity: float | None, settings: dict | None = None) -> Summary:
    suites = {"horizontal": SuiteResult(status="pass", reason="", measured={"capacity_per_replica": capacity})}
    return Summary(run_id="r1", verdict="promote", exit_status=0, reason="", candidate="c", baseline="b",
                   target="local", stack="local", started=0, finished=1, suites=suites,
                   settings=settings or SETTINGS, cpu_budgets=BUDGETS.note)  # fmt: skip


SETTINGS = {"deploy": {"cpu_per_replica": 0.5, "workers": 1, "replicas": 2}, "gate": {"target_rps": 100},
            "cache": {"enabled": False, "max_entries": 10000, "ttl_s": 300.0}}  # fmt: skip


def live_beside(rps: tuple[float, ...], p95: list[float], live_rps: tuple[float, ...], live_p95: list[float],
                later: list[list[float]] | None = None) -> Sweep:  # fmt: skip
    """The horizontal sweep with the live version measured beside the candidate (1 replica each); ``later``: per
    round after the first, factors on [candidate 1 replica, candidate 2 replicas, live] throughput."""
    one = curve("replicas=1", *rps, p95=p95)
    two = curve("replicas=2", *(2 * r for r in rps), base=8, p95=p95)
    live = curve("live replicas=1", *live_rps, p95=live_p95)
    return sweep("replicas", [1, 2], one, two, live=live, later=later or [[1.0, 1.0, 0.97], [0.98, 1.0, 1.0]])


def regression(measured: Sweep | None, **kwargs) -> SuiteResult:
    return judge.judge_regression(measured, GATE, SLO, **kwargs)


def test_regression_compares_with_the_live_version_measured_beside_it_at_a_load_with_requests_in_flight() -> None:
    result = regression(live_beside((100, 200, 250), [10, 30, 60], (100, 210, 260), [10, 28, 58]))
    assert result.status == "pass", result.reason
    # Compared at 64 users (the candidate's most loaded step within the SLO), not at the slo suite's light load.
    assert result.measured["compared_users"] == 64 and result.measured["rounds"] == 3
    assert result.measured["capacity_drop"] == pytest.approx(1 - 250 / 260, abs=0.02)
    assert result.measured["p95_ms"] == 60 and result.measured["live_p95_ms"] == 58
    assert "good req/s candidate/live=0.96 [" in result.reason and "at 64 users on one replica each" in result.reason
    assert len(result.rounds) == 3 and set(result.rounds[0]) == {"replicas=1", "live replicas=1"}


def test_regression_fails_on_a_capacity_drop_in_every_round() -> None:
    result = regression(live_beside((100, 200, 250), [10, 30, 60], (140, 300, 400), [10, 30, 60]))
    assert result.status == "fail" and "capacity fell by more than 20%" in result.reason, result.reason
    assert result.measured["capacity_ratio_high"] < 0.8


def test_a_capacity_drop_within_the_noise_is_inconclusive() -> None:
    # 0.82 in round 1, then 0.74 and 0.86: straddles 0.8.
    result = regression(live_beside((100, 200, 250), [10, 30, 60], (100, 250, 305), [10, 30, 60],
                                    later=[[0.9, 1.0, 1.0], [1.05, 1.0, 1.0]]))  # fmt: skip
    assert result.status == "inconclusive" and "contains the threshold 0.8" in result.reason, result.reason


def test_a_p95_rise_needs_both_the_ratio_and_the_absolute_floor() -> None:
    within_ratio = regression(live_beside((100, 200, 250), [10, 30, 51], (100, 200, 250), [10, 30, 40]))
    assert within_ratio.status == "pass", "+11 ms but +28 %: within the ratio"
    below_floor = regression(live_beside((100, 200, 250), [5, 8, 14], (100, 200, 250), [5, 8, 10]))
    assert below_floor.status == "pass", "+40 % but 4 ms: below the 10 ms floor"
    slower = regression(live_beside((100, 200, 250), [10, 30, 60], (100, 200, 250), [10, 30, 40]))
    assert slower.status == "fail" and "p95 rose by more than 30% and 10 ms" in slower.reason, slower.reason
    assert slower.measured["p95_rise"] == pytest.approx(0.5) and slower.measured["p95_rise_ms"] == 20


def test_regression_without_the_live_version_measured_is_inconclusive_and_a_stored_baseline_only_history() -> None:
    note, stored = judge.history_note(summary_with(500, {**SETTINGS, "deploy": {**SETTINGS["deploy"], "replicas": 3}}),
                                      SETTINGS, BUDGETS.note)  # fmt: skip
    assert stored == 500 and "stored 500 good req/s per replica" in note and "deploy.replicas 2 vs 3" in note
    assert note.endswith("not the reference")
    no_sweep = regression(None, history=note)
    assert no_sweep.status == "inconclusive" and "run it too" in no_sweep.reason and note in no_sweep.reason
    missing = regression(live_beside((100, 200, 250), [10, 30, 60], (1, 1, 1), [1, 1, 1]), unmeasurable="not here")
    assert missing.status == "inconclusive" and missing.reason == "not here"
    assert judge.history_note(None, SETTINGS, BUDGETS.note) == ("", None)


def test_cache_settings_are_part_of_what_makes_runs_comparable() -> None:
    cached = {**SETTINGS, "cache": {**SETTINGS["cache"], "enabled": True}}
    assert judge.settings_differences(SETTINGS, cached) == ["cache.enabled False vs True"]


def test_regression_needs_a_step_where_the_candidate_met_the_slo() -> None:
    slow = curve("replicas=1", 100, 110, p95=[300, 600])
    measured = Sweep(unit="replicas", values=[1, 2], curves=[slow, slow], reports=[], cpu=[], rounds=[],
                     compared_users=None, reference=None)  # fmt: skip
    result = regression(measured)
    assert result.status == "inconclusive" and "met the SLO at no step" in result.reason


# -------------------------------------------------------------------------------------------------- quality
def quality_run(rows=200, agreement=0.98, labelled=0, candidate=None, live=None, error=None, sets=()) -> QualityRun:
    figures = QualityFigures(rows=rows, agreement=agreement if rows else None, labelled=labelled,
                             candidate_accuracy=candidate, live_accuracy=live)  # fmt: skip
    return QualityRun(live_model="wine_classifier:v1", log_dir="/logs", figures=None if error or not rows else figures,
                      error=error, sets=list(sets))  # fmt: skip


TRUTH = ["a"] * 20 + ["b"] * 15 + ["c"] * 10  # 45 rows, like wine's held-out set


def answers(right: int, truth: list[str] = TRUTH) -> list[str]:
    """Answers right on the first ``right`` rows, wrong (the next label round) on the rest."""
    wrong = {"a": "b", "b": "c", "c": "a"}
    return [t if i < right else wrong[t] for i, t in enumerate(truth)]


def labelled_set(source, candidate, live, truth=TRUTH, recorded=None, classification=True) -> SetAnswers:
    labelled = LabelledSet(name=source.replace("_", " "), source=source, rows=[[float(i)] for i in range(len(truth))],
                           labels=truth, recorded_right=recorded, classification=classification)  # fmt: skip
    return SetAnswers(labelled, candidate, live)


@pytest.mark.parametrize(
    ("run", "status", "words"),
    [
        (quality_run(), "pass", "agreement 98.0% on 200"),
        (quality_run(agreement=0.5), "fail", "agrees with the live version on 50.0%"),
        (quality_run(rows=40), "inconclusive", "fewer than 100, and no labelled rows"),
        (quality_run(rows=0), "skipped", "no labelled rows and no production traffic of wine_classifier:v1"),
        (quality_run(error="ConnectError: refused"), "inconclusive", "replay to the candidate failed"),
    ],
    ids=["agrees", "disagrees", "few-rows", "no-log", "error"],
)
def test_quality_without_labelled_rows_judges_agreement_on_the_live_versions_logged_rows(run, status, words) -> None:
    result = judge.judge_quality(run, GATE)
    assert (result.status, words in result.reason) == (status, True), result.reason
    assert result.thresholds["min_agreement"] == GATE.quality_min_agreement


def test_a_candidate_trained_on_shuffled_labels_fails_on_held_out_rows_with_no_production_traffic() -> None:
    shuffled = TRUTH[15:] + TRUTH[:15]  # its own held-out labels are as shuffled as its training data
    own = labelled_set("candidate_holdout", answers(17, shuffled), answers(15, shuffled), truth=shuffled, recorded=17)
    lives = labelled_set("live_holdout", answers(14), answers(45))
    result = judge.judge_quality(quality_run(rows=0, sets=[own, lives]), GATE)
    assert result.status == "fail", result.reason
    assert "live_holdout.paired: on live holdout, candidate 31.1% vs live 100.0% right" in result.reason
    assert "candidate_holdout.constant" in result.reason and "no better than a constant answer" in result.reason
    assert result.measured["live_holdout.paired.delta"] == pytest.approx(-31 / 45)


def test_a_candidate_as_good_on_both_held_out_sets_passes_and_a_lost_row_is_within_the_margin() -> None:
    own = labelled_set("candidate_holdout", answers(44), answers(45), recorded=44)
    lives = labelled_set("live_holdout", answers(44), answers(45))
    result = judge.judge_quality(quality_run(rows=0, sets=[own, lives]), GATE)
    assert result.status == "pass", result.reason
    assert result.measured["candidate_holdout.as_trained.served_right"] == 44


def test_an_unsure_paired_comparison_is_inconclusive() -> None:
    own = labelled_set("candidate_holdout", answers(41), answers(45), recorded=41)  # 4 of 45 lost: 8.9 %, unsure
    result = judge.judge_quality(quality_run(rows=0, sets=[own]), GATE)
    assert result.status == "inconclusive" and "straddles the margin" in result.reason, result.reason


def test_labelled_production_rows_decide_over_held_out_sets_and_disagreement_alone_does_not_fail() -> None:
    truth = (["a"] * 40 + ["b"] * 30 + ["c"] * 30) * 2  # 200 labelled production rows after a shift
    production = labelled_set("production", answers(190, truth), answers(170, truth), truth=truth)
    old = labelled_set("live_holdout", answers(30), answers(45))  # worse on the pre-shift rows: informs, not decides
    result = judge.judge_quality(quality_run(agreement=0.6, sets=[production, old]), GATE)
    assert result.status == "pass", result.reason
    assert "the held-out sets were not judged" in result.reason and "agreement 60.0%" in result.reason
    too_few = labelled_set("production", answers(19, truth[:20]), answers(17, truth[:20]), truth=truth[:20])
    result = judge.judge_quality(quality_run(agreement=0.6, sets=[too_few, old]), GATE)
    assert result.status == "fail" and "fewer than 50, not judged yet" in result.reason, result.reason


def test_a_first_deployment_judges_the_candidate_alone_against_the_floor() -> None:
    floor = GATE.model_copy(update={"quality_min_accuracy": 0.9})
    good = labelled_set("candidate_holdout", answers(45), None, recorded=45)
    result = judge.judge_quality(quality_run(rows=0, sets=[good]), floor)
    assert result.status == "pass" and "judged alone" in result.reason, result.reason
    poor = labelled_set("candidate_holdout", answers(33), None, recorded=33)  # 73 %: beats a constant answer (44 %)
    assert judge.judge_quality(quality_run(rows=0, sets=[poor]), GATE).status == "pass", "no floor set"
    result = judge.judge_quality(quality_run(rows=0, sets=[poor]), floor)
    assert result.status == "fail" and "below the floor 90%" in result.reason, result.reason


def test_a_bento_that_serves_its_model_unlike_at_training_fails() -> None:
    served = labelled_set("candidate_holdout", answers(40), None, recorded=45)
    result = judge.judge_quality(quality_run(rows=0, sets=[served]), GATE)
    assert result.status == "fail" and "does not serve the model as it was trained" in result.reason


def test_paired_regression_is_judged_on_absolute_errors() -> None:
    truth = [str(float(v)) for v in range(60)]
    candidate = [str(float(v) + 3.0) for v in range(60)]
    live = [str(float(v) + (1.0 if v % 2 else -1.0)) for v in range(60)]
    worse = labelled_set("quality_data", candidate, live, truth, classification=False)
    result = judge.judge_quality(quality_run(rows=0, sets=[worse]), GATE)
    assert result.status == "fail" and "mean absolute error candidate 3 vs live 1" in result.reason, result.reason
    same = labelled_set("quality_data", live, live, truth, classification=False)
    result = judge.judge_quality(quality_run(rows=0, sets=[same]), GATE)
    assert result.status == "pass", result.reason
    numbered_classes = labelled_set("quality_data", candidate, live, truth)  # class names that happen to be numbers
    numbered = judge.judge_quality(quality_run(rows=0, sets=[numbered_classes]), GATE)
    assert "quality_data.constant" in numbered.reason, "judged as class names: a classifier's rules"


# ----------------------------------------------------------------------------------------------- autoscale
# A 60-s ramp from t=100: peak from 105 to 135, base load after it; replicas sampled twice a second.
def ramp_samples(out_at: float | None = 110, back_at: float | None = 150, end: float = 160, top: int = 3):
    samples = []
    t = 100.0
    while t <= end:
        scaled = out_at is not None and t >= out_at and (back_at is None or t < back_at)
        count = top if scaled else 1
        samples.append((t, count, count))
        t += 0.5
    return samples


def autoscale(result: LoadResult | None = None, samples=None, skipped: str | None = None, peak: bool = True):
    run = AutoscaleRun(
        skipped=skipped,
        result=result or load(seconds=60),
        min_replicas=1,
        max_replicas=4,
        peak_started=105.0 if peak else None,
        peak_ended=135.0,
        replicas=ramp_samples() if samples is None else samples,
        decisions=[{"time": 107.0, "from": 1, "to": 3}],
    )
    return judge.judge_autoscale(run, GATE, LIMITS)


def test_autoscale_passes_when_it_scaled_out_in_time_served_everything_and_came_back_to_min() -> None:
    result = autoscale()
    assert result.status == "pass", result.reason
    assert result.measured["scale_out_s"] == pytest.approx(5.0)
    assert result.measured["decided_out_s"] == pytest.approx(2.0), "decided 2 s in, serving 3 s later"
    assert result.measured["back_to_min_s"] == pytest.approx(15.0)
    assert result.measured["most_replicas"] == 3 and result.measured["failed_requests"] == 0
    replicas = [p["replicas"] for p in result.timeline]
    assert replicas[0] == 1 and max(replicas) == 3 and replicas[-1] == 1, "the plot's replicas over time"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"result": load(seconds=60, failed_per_s=2, failures={"HTTP 503": 120})}, ["requests failed", "HTTP 503"]),
        ({"samples": ramp_samples(out_at=None)}, ["never scaled out", "autoscale_users"]),
        ({"samples": ramp_samples(out_at=140)}, ["35.0 s after the peak began", "autoscale_max_scale_out_s"]),
        ({"samples": ramp_samples(back_at=None)}, ["still at 3 replica(s)", "scale_down_window_s"]),
    ],
    ids=["failed-requests", "never-scaled-out", "too-slow", "never-back-to-min"],
)
def test_autoscale_fails_on_errors_a_late_or_missing_scale_out_or_no_return_to_min(kwargs, words) -> None:
    result = autoscale(**kwargs)
    assert result.status == "fail", result.reason
    for word in words:
        assert word in result.reason, f"{word!r} missing from: {result.reason}"


def test_autoscale_that_never_scaled_out_under_a_saturated_generator_is_inconclusive() -> None:
    result = autoscale(load(seconds=60, generator_load=0.95), samples=ramp_samples(out_at=None))
    assert result.status == "inconclusive" and "never scaled out" in result.reason


def test_autoscale_is_skipped_when_autoscaling_is_off_and_inconclusive_without_a_peak() -> None:
    assert autoscale(skipped="autoscaling is off").status == "skipped"
    assert autoscale(peak=False).status == "inconclusive"


# ---------------------------------------------------------------------------------------------- balancer retries
def retried(retries: int | None, redispatches: int | None = 0, requests: int = 2000) -> list[Retries]:
    return [Retries("slo", requests, retries, redispatches)]


PASSED = SuiteResult(status="pass", reason="p95 40 ms", measured={"seconds": 20.0})


def test_a_retried_request_counts_against_the_candidate_beyond_the_limit() -> None:
    result = judge.judge_retries("slo", PASSED, retried(3, 2), GATE)
    assert result.status == "fail", result.reason
    assert "the balancer retried 5 requests of 2000 (0.25%: 3 resent, 2 redispatched)" in result.reason
    assert "max_retried_ratio 0.10%" in result.reason and result.reason.endswith("pass otherwise: p95 40 ms")
    assert result.measured["balancer_retries"] == 3 and result.measured["retried_ratio"] == pytest.approx(0.0025)
    assert result.thresholds["max_retried_ratio"] == GATE.max_retried_ratio and result.measured["seconds"] == 20


def test_retries_within_the_limit_pass_and_are_recorded() -> None:
    none = judge.judge_retries("slo", PASSED, retried(0), GATE)
    assert none.status == "pass" and none.reason == "p95 40 ms" and none.measured["balancer_retries"] == 0
    few = judge.judge_retries("slo", PASSED, retried(1, 0, requests=5000), GATE)
    assert few.status == "pass" and "the balancer retried 1 requests of 5000" in few.reason


def test_failovers_retries_are_the_gates_own_kill_recorded_not_counted_against_the_candidate() -> None:
    result = judge.judge_retries("failover", PASSED, retried(40, 12), GATE)
    assert result.status == "pass" and result.measured["balancer_redispatches"] == 12


def test_a_target_whose_balancer_reports_no_retries_says_so() -> None:
    result = judge.judge_retries("slo", PASSED, retried(None, None), GATE)
    assert result.status == "pass" and result.measured["balancer_retries"] is None
    assert judge.judge_retries("slo", PASSED, [], GATE) == PASSED, "no load ran: nothing to count"
