"""From measured step loads to numbers: each step's own figures, a curve's clean capacity and knee, the scaling
efficiency and the capacity plan.

Pure functions over measurements, tested with fixed inputs, explained where they decide:
- throughput is good answers only: a failed request is never capacity;
- capacity is capacity within the SLO: a step whose error ratio, p95 or p99 breaks the SLO ends the usable curve;
- a step in which the load generator or the machine, not the candidate, was the limit ends it too;
- configurations are compared step by step at the same load per replica (or worker), at the highest step both ran
  cleanly (``matched``): a batched model keeps gaining throughput with concurrency, so plateaus are no fair base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelops.gate.loadgen import LoadResult
from modelops.gate.summary import CapacityPlan, Step
from stacks.config import SloSettings

# Scale out before the SLO is at risk: plan for replicas running at 70 % of the capacity measured at the SLO.
HEADROOM = 0.7
# A step counts once load has settled: drop its first second (all of its users start within it).
SETTLE_S = 1.0
# A step gaining less than this over the one before has reached the curve's plateau.
PLATEAU_TOLERANCE = 0.05
# Replicas held at their CPU budget in at least this share of scheduler periods are the bottleneck themselves.
BUDGET_BOUND = 0.5


@dataclass(frozen=True)
class Limits:
    """When a step's figures are not the candidate's (gate settings)."""

    max_generator_load: float  # cores, per Locust process
    min_idle_cpu: float  # cores the machine must leave idle unless the replicas are at their budget
    max_generator_wait: float = 1.0  # share of time a Locust process may wait for a CPU


def distortion(
    generator_load: float | None,
    machine_idle: float | None,
    throttled: float | None,
    limits: Limits,
    generator_wait: float | None = None,
) -> str | None:
    """Why a span measured the machine or the generator rather than the candidate, or None."""
    if generator_load is not None and generator_load >= limits.max_generator_load:
        return (
            f"the load generator was saturated ({generator_load:.2f} of a core busy or waiting for a CPU, limit "
            f"{limits.max_generator_load:g}): the figures are the generator's, not the candidate's"
        )
    if generator_wait is not None and generator_wait >= limits.max_generator_wait:
        return (
            f"the load generator was starved: it waited for a CPU {generator_wait:.0%} of the time (limit "
            f"{limits.max_generator_wait:.0%}), so its latencies include that wait and it fell behind the load"
        )
    budget_bound = throttled is not None and throttled >= BUDGET_BOUND
    if machine_idle is not None and machine_idle < limits.min_idle_cpu and not budget_bound:
        held = (
            ""
            if throttled is None
            else f", while the replicas reached their CPU budget in only {throttled:.0%} of periods"
        )
        return (
            f"the machine had no idle CPU ({machine_idle:.2f} cores idle, need {limits.min_idle_cpu:g}{held}): "
            "other processes may have taken CPU the replicas were budgeted"
        )
    return None


def steps_from(result: LoadResult, limits: Limits) -> list[Step]:
    """Each step's figures from its own window (Locust's step start times; the first second dropped)."""
    starts = result.steps_started
    if not starts:
        return []
    end_of_run = max((w.t + result.window_s for w in result.windows), default=starts[-1][0])
    steps = []
    for i, (at, users) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else end_of_run
        f = result.figures(at + SETTLE_S, end)
        if f.requests == 0 and f.seconds == 0:
            continue
        throttled = result.throttled(at + SETTLE_S, end)
        steps.append(
            Step(
                users=users,
                rps=f.good_rps,
                p50_ms=f.p50_ms,
                p95_ms=f.p95_ms,
                p99_ms=f.p99_ms,
                errors=f.failures,
                requests=f.requests,
                generator_load=f.generator_load,
                generator_wait=f.generator_wait,
                machine_idle=f.machine_idle,
                throttled=throttled,
                distorted=distortion(f.generator_load, f.machine_idle, throttled, limits, f.generator_wait),
            )
        )
    return steps


def latency_breach(step: Step, slo: SloSettings) -> str | None:
    """Why a step's latency broke the SLO (p95 or p99 above its limit, or no answer at all), or None."""
    if step.p95_ms is None:
        return "no request was answered"
    if step.p95_ms > slo.p95_ms:
        return f"p95 {step.p95_ms:.0f} ms > {slo.p95_ms:g} ms"
    if step.p99_ms is not None and step.p99_ms > slo.p99_ms:
        return f"p99 {step.p99_ms:.0f} ms > {slo.p99_ms:g} ms"
    return None


def slo_breach(step: Step, slo: SloSettings) -> str | None:
    """Why a step is outside the SLO (errors beyond the limit, then latency), or None: it met the SLO."""
    if step.error_ratio > slo.max_error_ratio:
        return f"{step.error_ratio:.1%} of requests failed (limit {slo.max_error_ratio:.1%})"
    return latency_breach(step, slo)


@dataclass(frozen=True)
class Curve:
    """One step-load curve, read: the part of it within the SLO, its best throughput there and where it ended.

    Capacity is capacity within the SLO: a step counts only when its p95 and p99 met the SLO with errors within the
    limit and nothing distorted it; the first step that does not ends the curve's usable part (latency grows with the
    load: a later step back under the limit is noise, not capacity)."""

    label: str
    steps: list[Step]
    capacity: float  # the most good req/s of a step within the SLO (0.0 when no step is)
    # The usable part ended at an SLO breach, or reached a plateau (more users added < 5 %): ``capacity`` is the most
    # this configuration serves within the SLO. False: it still met the SLO and was still growing at its last step (or
    # a distortion cut it short), so ``capacity`` is a lower bound.
    exact: bool
    knee_users: int | None  # the fewest users within 5 % of ``capacity``
    ended: str | None  # why the usable part ends before the last step
    no_clean_step: bool  # the candidate failed more than the SLO allows at every step
    unknown: str | None  # why nothing at all could be measured (every step distorted)
    within: int = 0  # how many steps, from the first, met the SLO (the usable part)
    no_slo_step: str | None = None  # the steps were clean but none met the latency SLO: the first step's figures

    @property
    def last_within(self) -> Step | None:
        """The most loaded step that met the SLO: where this configuration is compared with others."""
        return self.steps[self.within - 1] if self.within else None

    def at_users(self, users: int) -> Step | None:
        return next((s for s in self.steps if s.users == users), None)


def read_curve(label: str, steps: list[Step], slo: SloSettings) -> Curve:
    usable: list[Step] = []
    ended = None
    stop: Step | None = None
    late = None
    for step in steps:
        if step.distorted:
            stop, ended = step, f"at {step.users} users {step.distorted}"
            break
        if step.error_ratio > slo.max_error_ratio:
            stop, ended = step, f"at {step.users} users {step.error_ratio:.1%} of requests failed"
            break
        late = latency_breach(step, slo)
        if late:
            stop, ended = step, f"at {step.users} users {late} (the SLO)"
            break
        usable.append(step)
    top = max((s.rps for s in usable), default=0.0)
    knee = next((s for s in usable if s.rps >= (1 - PLATEAU_TOLERANCE) * top), None) if top else None
    saturated = len(usable) >= 2 and usable[-1].rps <= (1 + PLATEAU_TOLERANCE) * usable[-2].rps
    by_breach = stop is not None and not stop.distorted
    by_latency = stop is not None and late is not None and not stop.distorted
    return Curve(
        label=label,
        steps=steps,
        capacity=top,
        exact=bool(usable) and (saturated or by_breach),
        knee_users=knee.users if knee else None,
        ended=ended,
        no_clean_step=not usable and by_breach and not by_latency,
        unknown=ended if not usable and not by_breach else None,
        within=len(usable),
        no_slo_step=(
            f"no step met the latency SLO: the first step ({stop.users} users) had {late}"
            if not usable and by_latency and stop is not None
            else None
        ),
    )


@dataclass(frozen=True)
class Matched:
    """A larger configuration against the smallest one, step by step at the same load per replica (or per worker):
    the N-replica run offers N times the users of the 1-replica run, so each replica sees the same concurrency and
    any shortfall is the scaling's, not the load's. The figure is taken at the most loaded step at which the smaller
    configuration met the SLO: capacity within the SLO is what scales (or not)."""

    value: float | None  # good req/s of the larger / (scale x the smaller's), at ``at_users``; None: no usable pair
    at_users: int | None  # users of the smaller configuration's step
    per_step: list[float]  # the ratio at every usable pair, in step order
    failing: str | None  # the larger configuration failed requests where the smaller one did not
    unknown: str | None  # no pair could be compared, and why


def matched(small: Curve, large: Curve, scale: float, slo: SloSettings) -> Matched:
    ratios: list[float] = []
    at = None
    for a, b in zip(small.steps[: small.within], large.steps, strict=False):
        # Only the smaller configuration's steps within the SLO: beyond them it is no capacity to scale from.
        if b.distorted:
            break
        if b.error_ratio > slo.max_error_ratio:
            return Matched(
                ratios[-1] if ratios else None, at, ratios,
                failing=f"{large.label} failed {b.error_ratio:.1%} of requests at {b.users} users where {small.label} "
                f"served {a.users} users cleanly",
                unknown=None,
            )  # fmt: skip
        if a.rps <= 0:
            break
        ratios.append(b.rps / (scale * a.rps))
        at = a.users
    if not ratios:
        first = small.steps[0] if small.steps else None
        why = small.unknown or large.unknown or (small.ended if first is not None else "no step ran")
        return Matched(None, None, [], failing=None, unknown=why or "no step to compare")
    return Matched(ratios[-1], at, ratios, failing=None, unknown=None)


def plan(
    *,
    rps_per_replica_at_slo: float,
    efficiency: float,
    target_rps: float,
    cpu_budget: float | None,
    cpu_seconds_per_request: float | None,
    exact: bool = True,
    measured_at_users: int | None = None,
) -> CapacityPlan:
    """Replicas and autoscaler targets for ``target_rps``.

    - min replicas: enough for the target load at HEADROOM of the measured per-replica capacity, corrected by
      the measured scaling efficiency, and never fewer than 2 (the failover suite proves 2 survive a loss);
    - max replicas: twice the minimum, room for a 2x burst while new capacity starts;
    - ASG target: requests per target per minute at HEADROOM of the per-replica capacity;
    - HPA target: the CPU utilisation (of the replica's budget) at which it carries HEADROOM of its capacity, from
      the CPU a request costs — not clamped: a service that is not CPU-bound scales on CPU poorly, and says so.

    ``exact`` False: the curve still met the SLO and still grew at its last step (``measured_at_users``), so the
    capacity is a lower bound; the plan says so (it over-provisions rather than promising a load never measured).
    """
    notes = []
    if not exact and rps_per_replica_at_slo > 0:
        at = f" at {measured_at_users} users" if measured_at_users else ""
        notes.append(
            f"the 1-replica curve still met the SLO and was still growing at its last step{at}: "
            f"{rps_per_replica_at_slo:.0f} req/s per replica is a lower bound of its capacity at the SLO; add a "
            "larger step to modelops:gate.step_users to find it"
        )
    if rps_per_replica_at_slo <= 0:
        return CapacityPlan(
            rps_per_replica_at_slo=0.0,
            target_rps=target_rps,
            notes=["no clean step met the latency SLO: no capacity can be planned from this run"],
        )
    usable = rps_per_replica_at_slo * HEADROOM * max(min(efficiency, 1.0), 0.1)
    minimum = max(2, math.ceil(target_rps / usable))
    hpa = None
    if cpu_seconds_per_request is not None and cpu_budget:
        hpa = round(100 * cpu_seconds_per_request * rps_per_replica_at_slo * HEADROOM / cpu_budget)
        if hpa > 100:
            notes.append(
                f"the CPU a request cost at the production load ({1000 * cpu_seconds_per_request:.1f} ms) would put a "
                f"replica at {hpa} % of its budget at 70 % of its capacity: it costs less per request under more "
                "load (batching), so its CPU does not measure its load; no HPA CPU target — scale on requests per "
                "replica (the ASG target)"
            )
            hpa = None
        elif hpa < 20:
            notes.append(
                f"at 70 % of its capacity a replica uses only {hpa} % of its CPU budget: it is not CPU-bound, so a "
                "CPU-based autoscaler reacts late; scale on requests per replica instead"
            )
    else:
        notes.append("CPU use was not measured on this target: HPA target left to the stack settings")
    return CapacityPlan(
        rps_per_replica_at_slo=rps_per_replica_at_slo,
        recommended_min_replicas=minimum,
        recommended_max_replicas=2 * minimum,
        asg_target_requests_per_target_per_minute=round(rps_per_replica_at_slo * HEADROOM * 60, 1),
        hpa_target_cpu_utilization=hpa,
        target_rps=target_rps,
        rps_per_vcpu_at_slo=rps_per_replica_at_slo / cpu_budget if cpu_budget else None,
        cpu_seconds_per_request=cpu_seconds_per_request,
        notes=notes,
    )
