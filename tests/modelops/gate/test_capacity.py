"""Capacity planning from measured curves: knees, efficiency, the plan's numbers (fixed inputs, exact outputs)."""

from __future__ import annotations

import pytest

from modelops.gate import capacity
from modelops.gate.loadgen import LoadResult, Sample
from modelops.gate.summary import CapacityPlan, Step, Summary
from stacks.capacity import ASG_TARGET_REQUESTS, CAPACITY_PLAN, HPA_TARGET_CPU


def result_with(samples: list[tuple[float, int, int, float]]) -> LoadResult:
    """A LoadResult whose timeline is (t, users, total_requests, p95) samples."""
    timeline = [Sample(t=t, users=u, rps=0, fail_rps=0, p50_ms=None, p95_ms=p95, total_requests=n, total_failures=0)
                for t, u, n, p95 in samples]  # fmt: skip
    return LoadResult(url="", requests=samples[-1][2], failures=0, rps=0, p50_ms=0, p95_ms=0, p99_ms=0, max_ms=0,
                      cpu_warning=False, golden_checks=0, exit_code=0, out_dir="", prefix="x", timeline=timeline,
                      failure_messages={})  # fmt: skip


def test_steps_take_throughput_from_cumulative_counts_after_the_settle_second() -> None:
    # two steps of 4 s: 100 req/s then 150 req/s; the first second of each step is dropped.
    samples = [(t, 8, 100 * t, 20.0) for t in range(5)] + [(4 + t, 16, 400 + 150 * t, 40.0) for t in range(1, 5)]
    steps = capacity.steps_from(result_with(samples), [(4.0, 8), (8.0, 16)])
    assert [(s.users, round(s.rps), s.p95_ms) for s in steps] == [(8, 100, 20.0), (16, 150, 40.0)]


def test_the_knee_is_the_first_step_near_the_plateau() -> None:
    steps = [Step(users=u, rps=r, p95_ms=p, errors=0) for u, r, p in [(8, 100, 30), (16, 190, 60), (32, 200, 120)]]
    assert capacity.plateau(steps) == 200
    assert capacity.knee(steps).users == 16
    assert capacity.within_slo(steps, p95_ms=100) == 190, "the 200 req/s step broke the 100 ms SLO"


def test_a_curve_still_rising_at_its_last_step_has_not_reached_its_knee() -> None:
    rising = [Step(users=u, rps=r, p95_ms=10, errors=0) for u, r in [(8, 100), (16, 180), (32, 260)]]
    flat = [*rising, Step(users=64, rps=265, p95_ms=30, errors=0)]
    assert not capacity.saturated(rising) and capacity.saturated(flat)


def test_efficiency_compares_each_count_with_linear_scaling_of_the_first() -> None:
    assert capacity.efficiencies([1, 2, 4], [100, 180, 300]) == pytest.approx([1.0, 0.9, 0.75])


def test_plan_sizes_replicas_and_autoscaler_targets_with_headroom() -> None:
    plan = capacity.plan(rps_per_replica_at_slo=100, efficiency=0.9, target_rps=500, cpu_budget=0.5,
                         utilization_at_slo=0.8)  # fmt: skip
    # usable per replica: 100 * 0.7 headroom * 0.9 efficiency = 63 -> ceil(500 / 63) = 8
    assert (plan.recommended_min_replicas, plan.recommended_max_replicas) == (8, 16)
    assert plan.asg_target_requests_per_target_per_minute == pytest.approx(100 * 0.7 * 60)
    assert plan.hpa_target_cpu_utilization == 56  # 0.7 * 80 %
    assert plan.cpu_per_vcpu_rps == 200


def test_plan_never_recommends_fewer_than_two_replicas_and_says_when_it_cannot_plan() -> None:
    assert capacity.plan(rps_per_replica_at_slo=1000, efficiency=1, target_rps=1, cpu_budget=None,
                         utilization_at_slo=None).recommended_min_replicas == 2  # fmt: skip
    empty = capacity.plan(rps_per_replica_at_slo=0, efficiency=1, target_rps=100, cpu_budget=1, utilization_at_slo=1)
    assert empty.recommended_min_replicas is None and "no step met the latency SLO" in empty.notes[0]


def test_the_fields_the_stacks_read_exist_in_the_summary_model() -> None:
    assert CAPACITY_PLAN in Summary.model_fields
    assert {ASG_TARGET_REQUESTS, HPA_TARGET_CPU} <= set(CapacityPlan.model_fields)
