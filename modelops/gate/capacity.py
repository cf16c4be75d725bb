"""From measured curves to numbers: step-load knees, scaling efficiency and the capacity plan.

Pure functions over measurements, so they are tested with fixed inputs and explained where they decide.
"""

from __future__ import annotations

import math

from modelops.gate.loadgen import LoadResult
from modelops.gate.summary import CapacityPlan, Step

# Scale out before the SLO is at risk: plan for replicas running at 70 % of the capacity measured at the SLO.
HEADROOM = 0.7
# A step counts once load has settled: drop its first second.
SETTLE_S = 1.0


def steps_from(result: LoadResult, plan: list[tuple[float, int]]) -> list[Step]:
    """Per-step req/s (from Locust's cumulative counts) and p95 (its 2-s window at the step's end)."""
    samples = result.timeline
    steps = []
    start = 0.0
    for end, users in plan:
        inside = [s for s in samples if start + SETTLE_S <= s.t <= end]
        start = end
        if len(inside) < 2:
            continue
        first, last = inside[0], inside[-1]
        elapsed = last.t - first.t
        if elapsed <= 0:
            continue
        p95 = next((s.p95_ms for s in reversed(inside) if s.p95_ms is not None), None)
        steps.append(
            Step(
                users=users,
                rps=(last.total_requests - first.total_requests) / elapsed,
                p95_ms=p95,
                errors=last.total_failures - first.total_failures,
            )
        )
    return steps


def plateau(steps: list[Step]) -> float:
    """The capacity a curve reaches: the highest step throughput (the knee is where it stops growing)."""
    return max((s.rps for s in steps), default=0.0)


def knee(steps: list[Step], tolerance: float = 0.05) -> Step | None:
    """The first step within ``tolerance`` of the plateau: more users beyond it only add latency."""
    top = plateau(steps)
    return next((s for s in steps if s.rps >= (1 - tolerance) * top), None) if top else None


def saturated(steps: list[Step], tolerance: float = 0.05) -> bool:
    """Whether the curve reached its knee: the last step gained less than ``tolerance`` over the one before."""
    return len(steps) >= 2 and steps[-1].rps <= (1 + tolerance) * steps[-2].rps


def within_slo(steps: list[Step], p95_ms: float) -> float:
    """The most req/s a curve carried while its p95 stayed within the SLO and nothing failed (0 if never)."""
    return max((s.rps for s in steps if s.p95_ms is not None and s.p95_ms <= p95_ms and s.errors == 0), default=0.0)


def efficiencies(replicas: list[int], rps: list[float]) -> list[float]:
    """E(N) = RPS(N) / (N * RPS(1)), with the smallest measured count standing in for 1."""
    if not rps or rps[0] <= 0:
        return [0.0 for _ in rps]
    per_replica = rps[0] / replicas[0]
    return [r / (n * per_replica) for n, r in zip(replicas, rps, strict=True)]


def plan(
    *,
    rps_per_replica_at_slo: float,
    efficiency: float,
    target_rps: float,
    cpu_budget: float | None,
    utilization_at_slo: float | None,
) -> CapacityPlan:
    """Replicas and autoscaler targets for ``target_rps``.

    - min replicas: enough for the target load at HEADROOM of the measured per-replica capacity, corrected by
      the measured scaling efficiency, and never fewer than 2 (the failover suite proves 2 survive a loss);
    - max replicas: twice the minimum, room for a 2x burst while new capacity starts;
    - ASG target: requests per target per minute at HEADROOM of the per-replica capacity;
    - HPA target: the CPU utilization a replica runs at when it carries HEADROOM of its capacity.
    """
    notes = []
    if rps_per_replica_at_slo <= 0:
        return CapacityPlan(
            rps_per_replica_at_slo=0.0,
            target_rps=target_rps,
            notes=["no step met the latency SLO: no capacity can be planned from this run"],
        )
    usable = rps_per_replica_at_slo * HEADROOM * max(min(efficiency, 1.0), 0.1)
    minimum = max(2, math.ceil(target_rps / usable))
    hpa = None
    if utilization_at_slo is not None:
        hpa = int(min(90, max(30, round(100 * HEADROOM * min(utilization_at_slo, 1.0)))))
    else:
        notes.append("CPU use was not measured on this target: HPA target left to the stack settings")
    return CapacityPlan(
        rps_per_replica_at_slo=rps_per_replica_at_slo,
        recommended_min_replicas=minimum,
        recommended_max_replicas=2 * minimum,
        asg_target_requests_per_target_per_minute=round(rps_per_replica_at_slo * HEADROOM * 60, 1),
        hpa_target_cpu_utilization=hpa,
        target_rps=target_rps,
        cpu_per_vcpu_rps=rps_per_replica_at_slo / cpu_budget if cpu_budget else None,
        notes=notes,
    )
