"""Step loads to numbers: per-step windows, clean capacity, knees, bounds, distortion, the plan (fixed inputs)."""

from __future__ import annotations

import pytest

from modelops.gate import capacity
from modelops.gate.capacity import Limits, read_curve
from modelops.gate.loadgen import CpuSample, Figures, LoadResult, Window, figures, percentile
from modelops.gate.summary import CapacityPlan, Step, Summary
from stacks.capacity import ASG_TARGET_REQUESTS, CAPACITY_PLAN, HPA_TARGET_CPU
from stacks.config import SloSettings

LIMITS = Limits(max_generator_load=0.85, min_idle_cpu=0.1)


def slo(max_error_ratio: float = 0.001, p95_ms: float = 100, p99_ms: float = 200) -> SloSettings:
    return SloSettings(p95_ms=p95_ms, p99_ms=p99_ms, max_error_ratio=max_error_ratio, min_rps=0)


def step(
    users: int, rps: float, errors: int = 0, requests: int = 1000, distorted: str | None = None, p95: float = 10
) -> Step:
    # Latencies with real spread: p50 a third of p95, p99 half as much again.
    return Step(users=users, rps=rps, p50_ms=p95 / 3, p95_ms=p95, p99_ms=p95 * 1.5, errors=errors, requests=requests,
                distorted=distorted)  # fmt: skip


def load_result(windows: list[Window], starts: list[tuple[float, int]], cpu: list[CpuSample] | None = None):
    end = max(w.t for w in windows) + 0.5
    measured = figures(windows, 0.5, cpu or [], starts[0][0], end)
    return LoadResult(url="", prefix="x", out_dir="", exit_code=0, processes=1, started=starts[0][0],
                      measured_from=starts[0][0], windows=windows, window_s=0.5, steps_started=starts,
                      cpu=cpu or [], golden_checks=0, cpu_warning=False, failure_messages={},
                      measured=measured)  # fmt: skip


def test_each_step_is_measured_over_its_own_window_not_cumulatively() -> None:
    # step 1 (t 0-4): 100 good req/s at 20 ms; step 2 (t 4-8): 150 req/s at 80 ms of which 10/s fail.
    windows = [Window(t=t / 2, kind="single", ok=50, failed=0, latencies={20: 50}) for t in range(8)]
    windows += [Window(t=4 + t / 2, kind="single", ok=70, failed=5, latencies={80: 75}) for t in range(8)]
    result = load_result(windows, [(0.0, 8), (4.0, 16)])
    first, second = capacity.steps_from(result, LIMITS)
    assert (first.users, first.rps, first.p95_ms, first.errors) == (8, 100, 20, 0)
    assert (second.users, second.rps, second.p95_ms, second.errors) == (16, 140, 80, 30), "good answers only"
    assert second.requests == 150 * 3 and second.error_ratio == pytest.approx(30 / 450)


def test_a_failed_golden_check_counts_as_a_failed_request_but_not_as_throughput_or_latency() -> None:
    windows = [Window(t=t / 2, kind="single", ok=50, failed=0, latencies={20: 50}) for t in range(8)]
    clean = capacity.steps_from(load_result(windows, [(0.0, 8)]), LIMITS)[0]
    windows += [Window(t=t / 2, kind="golden", ok=1, failed=1, latencies={999: 2}) for t in range(8)]
    (step,) = capacity.steps_from(load_result(windows, [(0.0, 8)]), LIMITS)
    assert (step.rps, step.p95_ms) == (clean.rps, clean.p95_ms) == (100, 20), "the measured load's figures"
    assert (step.errors, step.requests) == (clean.errors + 6, clean.requests + 12), "every golden check counts"
    assert step.error_ratio > 0


def test_percentiles_come_from_the_counted_latencies() -> None:
    latencies = {10: 90, 50: 5, 200: 5}
    assert (percentile(latencies, 0.5), percentile(latencies, 0.95), percentile(latencies, 0.99)) == (10, 50, 200)
    assert percentile({}, 0.95) is None


def test_cpu_samples_mark_a_saturated_generator_and_a_full_machine() -> None:
    hot = [CpuSample(t=t, generator_cpu=0.9, generator_load=0.95, machine_idle=0.5) for t in (1, 1.5, 2)]
    windows = [Window(t=t / 2, kind="single", ok=10, failed=0, latencies={5: 10}) for t in range(6)]
    (only,) = capacity.steps_from(load_result(windows, [(0.0, 8)], hot), LIMITS)
    assert only.generator_load == pytest.approx(0.95) and "load generator was saturated" in only.distorted
    full = [CpuSample(t=t, generator_cpu=0.2, generator_load=0.2, machine_idle=0.0, budget=(100 * t, 10 * t))
            for t in (1, 1.5, 2, 2.5)]  # fmt: skip
    (only,) = capacity.steps_from(load_result(windows, [(0.0, 8)], full), LIMITS)
    assert "no idle CPU" in only.distorted and only.throttled == pytest.approx(0.1)


def test_a_full_machine_does_not_distort_replicas_held_at_their_own_budget() -> None:
    assert capacity.distortion(0.3, 0.0, throttled=0.9, limits=LIMITS) is None, "the candidate is the bottleneck"
    assert capacity.distortion(0.3, 0.0, throttled=0.1, limits=LIMITS) is not None
    assert capacity.distortion(0.3, 0.5, throttled=None, limits=LIMITS) is None


def test_errors_end_the_usable_curve_and_the_last_clean_step_is_the_knee() -> None:
    curve = read_curve("replicas=1", [step(8, 100), step(16, 180), step(32, 400, errors=300)], slo(0.001))
    assert (curve.capacity, curve.knee_users, curve.exact) == (180, 16, True)
    assert "32 users" in curve.ended and "failed" in curve.ended


def test_a_curve_failing_at_every_step_has_no_clean_step() -> None:
    curve = read_curve("replicas=1", [step(8, 500, errors=100), step(16, 900, errors=300)], slo(0.001))
    assert curve.no_clean_step and curve.capacity == 0


def test_a_distorted_step_before_the_knee_leaves_a_lower_bound() -> None:
    curve = read_curve("replicas=2", [step(8, 100), step(16, 190), step(32, 380, distorted="generator")], slo(0.001))
    assert (curve.capacity, curve.exact) == (190, False)
    steps = [step(8, 100), step(16, 190), step(32, 195), step(64, 0, distorted="x")]
    plateaued = read_curve("replicas=2", steps, slo(0))
    assert (plateaued.capacity, plateaued.exact) == (195, True), "the knee came before the distortion"
    nothing = read_curve("replicas=2", [step(8, 100, distorted="generator")], slo(0.001))
    assert nothing.unknown and not nothing.no_clean_step


def test_a_curve_still_rising_at_its_last_step_is_a_lower_bound() -> None:
    assert not read_curve("w=1", [step(8, 100), step(16, 180), step(32, 260)], slo(0)).exact
    assert read_curve("w=1", [step(8, 100), step(16, 180), step(32, 260), step(64, 265)], slo(0)).exact


def test_configurations_are_compared_at_the_same_load_per_replica() -> None:
    one = read_curve("replicas=1", [step(4, 100), step(16, 200), step(32, 250)], slo(0.001))
    two = read_curve("replicas=2", [step(8, 200), step(32, 380), step(64, 450)], slo(0.001))
    m = capacity.matched(one, two, 2, slo())
    assert m.per_step == pytest.approx([1.0, 0.95, 0.9]) and (m.value, m.at_users) == (pytest.approx(0.9), 32)


def test_a_larger_configuration_failing_where_the_smaller_served_cleanly_is_a_failure() -> None:
    one = read_curve("replicas=1", [step(4, 100), step(16, 200)], slo(0.001))
    two = read_curve("replicas=2", [step(8, 200), step(32, 380, errors=100)], slo(0.001))
    m = capacity.matched(one, two, 2, slo())
    assert m.failing == "replicas=2 failed 10.0% of requests at 32 users where replicas=1 served 16 users cleanly"


def test_comparison_stops_where_the_smaller_configuration_errs_or_a_step_is_distorted() -> None:
    one = read_curve("replicas=1", [step(4, 100), step(16, 200), step(32, 900, errors=500)], slo(0.001))
    two = read_curve("replicas=2", [step(8, 200), step(32, 300), step(64, 1800)], slo(0.001))
    assert capacity.matched(one, two, 2, slo()).per_step == pytest.approx([1.0, 0.75])
    hot = read_curve("replicas=2", [step(8, 200), step(32, 300, distorted="generator"), step(64, 500)], slo(0.001))
    assert capacity.matched(one, hot, 2, slo()).per_step == pytest.approx([1.0])
    cold = read_curve("replicas=2", [step(8, 200, distorted="the load generator was saturated")], slo(0.001))
    nothing = capacity.matched(one, cold, 2, slo())
    assert nothing.value is None and "load generator" in nothing.unknown


def test_capacity_is_capacity_within_the_slo_a_latency_breach_ends_the_usable_curve() -> None:
    # A replica fast at light load and slow with requests in flight: throughput still grows past the SLO's p95.
    steps = [step(8, 100, p95=30), step(16, 190, p95=60), step(32, 200, p95=120), step(64, 300, p95=50)]
    curve = read_curve("replicas=1", steps, slo(p95_ms=100))
    assert (curve.capacity, curve.within, curve.knee_users, curve.exact) == (190, 2, 16, True)
    assert curve.ended == "at 32 users p95 120 ms > 100 ms (the SLO)", "the 64-user step back under it is noise"
    assert curve.last_within is steps[1] and not curve.no_slo_step


def test_a_p99_breach_ends_the_usable_curve_too() -> None:
    steps = [step(8, 100, p95=30), Step(users=16, rps=190, p50_ms=20, p95_ms=90, p99_ms=450, errors=0, requests=900)]
    curve = read_curve("replicas=1", steps, slo(p95_ms=100, p99_ms=200))
    assert curve.capacity == 100 and curve.ended == "at 16 users p99 450 ms > 200 ms (the SLO)"


def test_a_curve_with_no_step_within_the_latency_slo_names_its_first_steps_p95() -> None:
    curve = read_curve("replicas=1", [step(8, 100, p95=140), step(16, 110, p95=290)], slo(p95_ms=100))
    assert curve.capacity == 0 and curve.last_within is None and not curve.no_clean_step and not curve.unknown
    assert curve.no_slo_step == "no step met the latency SLO: the first step (8 users) had p95 140 ms > 100 ms"


def test_a_step_that_answered_nothing_is_outside_the_slo() -> None:
    silent = Step(users=8, rps=0, p95_ms=None, errors=0, requests=0)
    assert capacity.latency_breach(silent, slo()) == "no request was answered"
    assert capacity.slo_breach(step(8, 100, errors=10, requests=1000), slo()) == "1.0% of requests failed (limit 0.1%)"
    assert capacity.slo_breach(step(8, 100, p95=100), slo()) is None, "at the limit is within it"


def test_configurations_are_compared_only_where_the_smaller_one_met_the_slo() -> None:
    one = read_curve("replicas=1", [step(4, 100, p95=20), step(16, 200, p95=80), step(32, 210, p95=150)], slo())
    two = read_curve("replicas=2", [step(8, 200, p95=20), step(32, 360, p95=90), step(64, 500, p95=300)], slo())
    m = capacity.matched(one, two, 2, slo())
    assert m.per_step == pytest.approx([1.0, 0.9]) and m.at_users == 16, "not at 32 users: one replica broke the SLO"


def test_plan_says_when_the_capacity_at_the_slo_is_only_a_lower_bound() -> None:
    kwargs = {"rps_per_replica_at_slo": 100, "efficiency": 1, "target_rps": 100, "cpu_budget": 0.5,
              "cpu_seconds_per_request": 0.004}  # fmt: skip
    rising = capacity.plan(**kwargs, exact=False, measured_at_users=64)
    assert "still growing at its last step at 64 users" in rising.notes[0] and "lower bound" in rising.notes[0]
    assert not any("lower bound" in n for n in capacity.plan(**kwargs).notes)


def test_plan_sizes_replicas_and_autoscaler_targets_with_headroom() -> None:
    plan = capacity.plan(rps_per_replica_at_slo=100, efficiency=0.9, target_rps=500, cpu_budget=0.5,
                         cpu_seconds_per_request=0.004)  # fmt: skip
    # usable per replica: 100 * 0.7 headroom * 0.9 efficiency = 63 -> ceil(500 / 63) = 8
    assert (plan.recommended_min_replicas, plan.recommended_max_replicas) == (8, 16)
    assert plan.asg_target_requests_per_target_per_minute == pytest.approx(100 * 0.7 * 60)
    assert plan.hpa_target_cpu_utilization == 56, "4 ms x 70 req/s = 0.28 cores of a 0.5-core budget"
    assert plan.rps_per_vcpu_at_slo == 200 and plan.cpu_seconds_per_request == 0.004


def test_plan_says_when_a_replica_is_not_cpu_bound_instead_of_clamping() -> None:
    plan = capacity.plan(rps_per_replica_at_slo=100, efficiency=1, target_rps=100, cpu_budget=1,
                         cpu_seconds_per_request=0.0005)  # fmt: skip
    assert plan.hpa_target_cpu_utilization == 4 and "not CPU-bound" in plan.notes[0]


def test_plan_sets_no_hpa_target_when_cpu_per_request_at_low_load_overstates_it() -> None:
    plan = capacity.plan(rps_per_replica_at_slo=270, efficiency=1, target_rps=100, cpu_budget=0.5,
                         cpu_seconds_per_request=0.0094)  # fmt: skip
    assert plan.hpa_target_cpu_utilization is None and "355 % of its budget" in plan.notes[0]


def test_plan_never_recommends_fewer_than_two_replicas_and_says_when_it_cannot_plan() -> None:
    assert capacity.plan(rps_per_replica_at_slo=1000, efficiency=1, target_rps=1, cpu_budget=None,
                         cpu_seconds_per_request=None).recommended_min_replicas == 2  # fmt: skip
    empty = capacity.plan(rps_per_replica_at_slo=0, efficiency=1, target_rps=100, cpu_budget=1,
                          cpu_seconds_per_request=0.001)  # fmt: skip
    assert empty.recommended_min_replicas is None and "no clean step met the latency SLO" in empty.notes[0]


def test_the_fields_the_stacks_read_exist_in_the_summary_model() -> None:
    assert CAPACITY_PLAN in Summary.model_fields
    assert {ASG_TARGET_REQUESTS, HPA_TARGET_CPU, "rps_per_vcpu_at_slo", "cpu_seconds_per_request"} <= set(
        CapacityPlan.model_fields
    )


def test_figures_count_good_answers_over_the_span_only() -> None:
    windows = [Window(t=t / 2, kind="single", ok=9, failed=1, latencies={5: 10}) for t in range(10)]
    f: Figures = figures(windows, 0.5, [], start=1.0, end=3.0)
    assert (f.requests, f.failures, f.seconds, f.good_rps) == (40, 4, 2.0, 18.0)
