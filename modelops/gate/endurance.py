"""The plan and soak suites' measurement: the capacity plan's own load, open-loop, on the deploy shape, for minutes,
on the same replica processes, with their memory and open files sampled every second.

Why one measurement for two suites: the plan suite proves the load the plan promises (its first ``gate.plan_s``
seconds), the soak shows what minutes of that same load do to the same processes (all ``gate.soak_s`` seconds, the
plan's included). Run separately they would cost plan_s more gate time and prove the plan on processes the soak
then does not watch. They are two Locust runs back to back, not one: the plan is judged when its seconds are over, so
a candidate that cannot carry its plan is rejected without minutes of soak, and each suite's wall time is its own.
The replicas are not touched between the two (the gap is Locust starting again, a few seconds with no load); memory
sampling runs through both.

The load: ``rps_per_replica_at_slo`` x HEADROOM (the utilisation the plan's autoscaler targets,
modelops/gate/capacity.py) per replica, times the deploy shape's replicas. Without a capacity plan in this run (the
horizontal suite did not pass or did not run) the plan suite has nothing to prove, and the soak runs at the
configured production load (gate.target_rps) instead, saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from modelops.gate.capacity import HEADROOM
from modelops.gate.loadgen import LoadResult, LoadSpec
from modelops.gate.suites import Suites
from modelops.gate.summary import CapacityPlan
from modelops.monitor import resources
from modelops.monitor.resources import Sample
from stacks.config import StackConfig

# Open-loop users: each sends every users/rate seconds. With rate x p99 SLO users, a user's period is the p99 SLO, so
# a candidate within its SLO rarely keeps a user from sending on time; beyond it the sends go out late and count from
# when they were due (loadtests/locustfile.py), so the latencies stay right either way: the user count only bounds
# how many requests the pool sees in flight at once. But a period of at most MAX_PERIOD_S: every user keeps its own
# connection, and one used every few seconds is one the server side closes (uvicorn after 5 s idle) and the balancer
# opens again. Seen here with a 4-s p99 SLO: 1,546 users at 386 req/s, a request each 4 s, and a quarter-core replica
# that had served 552 req/s from 32 users answered 216 req/s, half of them 503s, from the first second.
MAX_PERIOD_S = 0.5
MAX_USERS = 2000


@dataclass(frozen=True)
class PlannedLoad:
    rate: float  # req/s offered to the pool
    per_replica: float  # req/s per replica
    replicas: int
    users: int
    from_plan: bool  # False: no capacity plan in this run, gate.target_rps offered instead
    source: str  # where the figure came from, for reasons and reports
    rps_per_replica_at_slo: float | None = None


def planned_load(plan: CapacityPlan | None, settings: StackConfig) -> PlannedLoad:
    replicas = settings.deploy.replicas
    at_slo = plan.rps_per_replica_at_slo if plan is not None else None
    if at_slo:
        per_replica = at_slo * HEADROOM
        source = (
            f"the capacity plan: {HEADROOM:.0%} of {at_slo:.0f} good req/s per replica at the SLO x {replicas} "
            f"replica(s)"
        )
        from_plan = True
    else:
        per_replica = settings.gate.target_rps / replicas
        source = "gate.target_rps (this run made no capacity plan: the horizontal suite did not pass or run)"
        from_plan = False
    rate = per_replica * replicas
    users = max(settings.gate.users, math.ceil(rate * min(settings.slo.p99_ms / 1000, MAX_PERIOD_S)))
    return PlannedLoad(rate=rate, per_replica=per_replica, replicas=replicas, users=min(users, MAX_USERS),
                       from_plan=from_plan, source=source, rps_per_replica_at_slo=at_slo)  # fmt: skip


@dataclass
class EnduranceRun:
    """What the plan and soak loads measured so far."""

    load: PlannedLoad
    results: list[LoadResult] = field(default_factory=list)  # the plan's load, then the rest of the soak
    samples: list[Sample] = field(default_factory=list)  # memory and open files, every second, through both
    resources_note: str | None = None  # why nothing was sampled (a target whose replicas this machine cannot see)
    replicas_at_start: dict[str, int | None] = field(default_factory=dict)  # name -> pid when the plan began
    replicas_at_end: dict[str, int | None] = field(default_factory=dict)
    soak_s: float = 0.0  # seconds the soak was meant to measure (the plan's included)
    plan_s: float = 0.0

    @property
    def lost(self) -> list[str]:
        """Replicas that died or were replaced between the plan's start and the soak's end."""
        return sorted(
            f"{name} (pid {pid})"
            for name, pid in self.replicas_at_start.items()
            if self.replicas_at_end.get(name) != pid
        )


class Endurance:
    """Runs the plan's load, then the rest of the soak, on the candidate pool at the deploy shape.

    ``suites`` is the gate's Suites (its load runner, generator planning and shape); ``capacity`` returns the run's
    capacity plan when the plan suite starts (after the scaling suites)."""

    def __init__(self, suites: Suites, capacity: Callable[[], CapacityPlan | None]) -> None:
        self.suites = suites
        self.capacity = capacity
        self.run: EnduranceRun | None = None
        self._sampler: resources.Sampler | None = None

    @property
    def settings(self) -> StackConfig:
        return self.suites.settings

    def _spec(self, load: PlannedLoad, seconds: float, warmup_s: float, processes: int) -> LoadSpec:
        gate = self.settings.gate
        return LoadSpec(users=load.users, spawn_rate=load.users, duration_s=seconds, warmup_s=warmup_s,
                        rate=load.rate, rows_per_request=gate.rows_per_request, processes=processes)  # fmt: skip

    def _start(self) -> EnduranceRun:
        gate, deploy = self.settings.gate, self.settings.deploy
        load = planned_load(self.capacity(), self.settings)
        run = self.run = EnduranceRun(load=load, soak_s=gate.soak_s, plan_s=gate.plan_s)
        self.suites.to_shape(deploy.replicas)
        run.replicas_at_start = self._replicas()
        target = self.suites.target
        find = resources.pool_processes(target, "candidate")
        if find is None:
            run.resources_note = (
                f"the {target.name} target's replicas are not processes of this machine, and modelops does not read "
                "their memory there yet; to promote without the soak, leave it out of modelops:gate.required_suites"
            )
        self._sampler = resources.Sampler(find).start()
        return run

    def _replicas(self) -> dict[str, int | None]:
        pool = self.suites.target.status().candidate
        return {r.name: r.pid for r in pool.replicas} if pool else {}

    def _load(self, run: EnduranceRun, name: str, seconds: float) -> None:
        # Warm-up: at least one user period, so every user has started its schedule before anything counts. Whole
        # seconds: Locust's run time takes no fractions.
        warmup = math.ceil(max(self.settings.gate.warmup_s, run.load.users / run.load.rate)) if not run.results else 0
        seconds = math.ceil(seconds)
        processes = self.suites.generator(run.load.rate, run.load.users)
        self.suites.note(f"{run.load.rate:.0f} req/s open-loop from {run.load.users} users for {seconds:g} s")
        run.results.append(self.suites.load(name, self._spec(run.load, seconds, warmup, processes)))

    def plan(self) -> EnduranceRun:
        """The plan's load for gate.plan_s (after warm-up). Sampling continues for the soak (close() ends it)."""
        run = self._start()
        self._load(run, "plan", self.settings.gate.plan_s)
        self._sample(run)
        return run

    def soak(self) -> EnduranceRun:
        """The soak: the rest of gate.soak_s after the plan's load, on the same processes (or all of it, when the
        plan suite did not run)."""
        run = self.run or self._start()
        measured = sum(r.measured.seconds for r in run.results)
        remaining = math.ceil(run.soak_s - measured - 0.5)  # whole seconds, as Locust's run time
        if remaining >= 1:
            self._load(run, "soak", remaining)
        self.close()
        return run

    def _sample(self, run: EnduranceRun) -> None:
        if self._sampler is not None:
            run.samples = list(self._sampler.samples)
        run.replicas_at_end = self._replicas()

    def close(self) -> None:
        """Stop sampling (the soak ended, or it will not run)."""
        if self.run is not None and self._sampler is not None:
            self._sampler.stop()
            self._sample(self.run)
            self._sampler = None
