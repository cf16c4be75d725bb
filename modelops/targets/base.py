"""The seam that lets one gate run on three targets.

Every driver offers the same few operations on two pools: ``live`` (blue or green, whichever takes the traffic)
and ``candidate`` (the other colour, reachable on its own URL while live traffic stays untouched). The gate,
promotion and monitoring code only ever talk to this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, runtime_checkable

Pool = Literal["live", "candidate"]
Colour = Literal["blue", "green"]


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


@dataclass(frozen=True)
class ReplicaStatus:
    name: str
    url: str
    healthy: bool
    pid: int | None = None  # local processes only; None on kind/aws
    in_rotation: bool | None = None  # the load balancer's own view: it sends this replica requests


@dataclass(frozen=True)
class KilledReplica:
    """What the failover suite's fault injection did: which replica, and when the kill signal left."""

    name: str
    url: str
    killed_at: float  # epoch seconds, stamped right before the kill (SIGKILL, pod delete, instance terminate)


@dataclass(frozen=True)
class CpuBudgets:
    """Whether each replica is held to a fixed CPU budget (a cgroup quota, a pod CPU limit, an instance size).
    Without budgets, N replicas on one machine measure CPU contention, not the product: scaling figures are then
    not judged."""

    enforced: bool
    note: str  # the mechanism, or why budgets are off


@dataclass(frozen=True)
class PoolStatus:
    colour: Colour
    bento: str
    url: str  # this pool alone, bypassing the live switch
    replicas: list[ReplicaStatus]
    workers: int
    weight: int  # share of live traffic, 0..100


@dataclass(frozen=True)
class TargetStatus:
    target: str
    url: str  # the load balancer: what clients use
    bento: str  # the live bento tag
    live: Colour
    pools: dict[str, PoolStatus] = field(default_factory=dict)  # by colour
    admin_url: str | None = None
    # By pool ("live", "candidate"): what its autoscaler last saw and decided (desired/actual, last decisions);
    # empty where no autoscaler of modelops runs (local without --autoscale; kind/aws scale in the platform).
    autoscale: dict[str, dict] = field(default_factory=dict)

    @property
    def replicas(self) -> list[ReplicaStatus]:
        return self.pools[self.live].replicas if self.live in self.pools else []

    @property
    def candidate(self) -> PoolStatus | None:
        return self.pools.get(other(self.live))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["replicas"] = [asdict(r) for r in self.replicas]
        return data


@runtime_checkable
class Target(Protocol):
    """What every target driver implements: everything the gate, promotion and the CLI use, and nothing else.
    Methods block until the change has taken effect or raise a ModelopsError."""

    name: str
    progress: Callable[[str], None]  # long operations report what they are doing here (the CLI's spinner)

    def up(self, bento: str, replicas: int, workers: int) -> TargetStatus: ...

    def down(self) -> list[str] | None:
        """Stop the deployment; returns what was stopped (local), or None where the infrastructure stays."""
        ...

    def status(self) -> TargetStatus: ...

    def scale(self, replicas: int, pool: Pool = "candidate") -> PoolStatus:
        """Horizontal: run this many replicas in the pool."""
        ...

    def resize(self, workers: int, cpu: float | None = None, pool: Pool = "candidate") -> PoolStatus:
        """Vertical: this many workers (and CPU budget, cores) per replica."""
        ...

    def deploy_candidate(self, bento: str, replicas: int, workers: int) -> PoolStatus: ...

    def remove_candidate(self) -> None: ...

    def abort(self) -> None:
        """Take the candidate pool out of live traffic and remove it: its share of live traffic back to 0 first,
        then drained and stopped; the live pool untouched. Nothing to do without a candidate. Every recovery (the
        gate's, rollback's, `modelops abort`) goes through this: remove_candidate alone may refuse while the
        candidate holds weight (aws) or drain a pool the live frontend still picks."""
        ...

    def shift(self, weight: int) -> TargetStatus:
        """Send ``weight`` % of live traffic to the candidate pool (100 makes it live)."""
        ...

    def retire_previous(self) -> None:
        """After a switch: drain and stop the pool that no longer takes traffic."""
        ...

    def kill_replica(self, pool: Pool = "candidate") -> KilledReplica:
        """Fault injection for the failover suite: abruptly lose one replica of the pool."""
        ...

    def cpu_seconds(self, pool: Pool = "candidate") -> float | None:
        """CPU time used so far by the pool's replicas, or None where the target cannot measure it."""
        ...

    def cpu_throttling(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """The pool's CPU-budget counters so far: (scheduler periods, periods in which a replica hit its budget),
        or None where the target cannot read them. The gate samples it to tell a candidate held at its budget
        (the bottleneck itself) from one starved by a busy machine."""
        ...

    def cpu_budgets(self) -> CpuBudgets:
        """Whether replicas are held to a fixed CPU budget on this target, and how."""
        ...

    def balancer_retries(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """The balancer's counters for the pool so far: (attempts resent to a server, attempts redispatched to
        another), or None where the target's balancer does not report them (the gate then says so)."""
        ...

    def firing_alarms(self, pool: Pool) -> list[str]:
        """The platform alarms firing now for the pool's colour (and the balancer's own): CloudWatch on aws. Targets
        without platform alarms return [] (the canary reads Prometheus alerts where one runs)."""
        ...

    def hold_scaling(self) -> None:
        """For the gate: keep the platform's autoscaling from changing the candidate pool while it is measured
        (aws: suspend the group's scaling processes, scale-in protection; kind: pin the HPA). Local: nothing."""
        ...

    def release_scaling(self) -> None:
        """Put both colours back to the stack's declared scaling range and processes. Idempotent: the gate calls it
        when it ends, and before it starts (which settles what a crashed gate left held)."""
        ...
