"""The local autoscaler: a small supervisor that keeps a pool's replica count on the stack's scaling definition.

Two halves. :func:`decide` is the rule, pure (no I/O, no clock of its own): the Kubernetes HPA's formula
``desired = ceil(current x metric / target)``, no change within the tolerance, clamped to deploy.min_replicas /
max_replicas, and stabilisation windows — a scale-up takes the *lowest* recommendation of the last
scale_up_window_s, a scale-down the *highest* of the last scale_down_window_s (scale out fast, scale in slowly).
:class:`Supervisor` is the loop around it: every sync period it averages the metric (HAProxy's requests in flight per
ready replica, or the replicas' cgroup CPU as % of their budget), decides, and acts through the LocalTarget — new
replicas join the live pool through HAProxy's runtime API once healthy, removed ones drain first (no new requests,
in-flight ones finish), so scaling fails no request. It writes what it sees and decides to
``<state dir>/autoscale-<pool>.json`` (``modelops status`` shows it) and pauses while the gate holds scaling.

A hold names its owner (pid and start time) and expires (``autoscale.hold_max_s``): a gate killed while it held
scaling does not pin the pool for good — the supervisor ignores a hold whose owner is gone or whose time is up.
Periods and stabilisation windows run on the monotonic clock (a wall-clock step must not fire or stall a scale-in);
the records it writes carry wall time for people. A failing write of its state file (a full disk) is reported and
retried next period, never the end of the supervisor.

It runs as its own process (:func:`main`, see :data:`COMMAND`), started by ``modelops up --autoscale``
with the deployment's marker, so ``modelops down`` stops it with everything else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal

from modelops.errors import ModelopsError, NotDeployedError, UsageError
from modelops.state import read_json, write_json
from modelops.targets.base import Pool
from modelops.targets.local import haproxy, procs
from stacks.config import StackConfig, validate_settings

if TYPE_CHECKING:
    from modelops.targets.local.target import LocalTarget

Metric = Literal["in_flight", "cpu"]
METRIC_LABEL = {"in_flight": "requests in flight per replica", "cpu": "CPU, % of budget per replica"}
SAMPLE_INTERVAL_S = 0.25  # the metric is sampled this often and averaged over each sync period
HOLD_FILE = "autoscale.hold"
# How LocalTarget starts the supervisor (arguments follow). Not `python -m`: this package's __init__ imports this
# module, which would then run twice.
COMMAND = [sys.executable, "-c", "import sys; from modelops.targets.local.autoscale import main; sys.exit(main())"]


def state_file(state_dir: Path, pool: Pool) -> Path:
    return state_dir / f"autoscale-{pool}.json"


# ------------------------------------------------------------------------------------------------ holds
@dataclass(frozen=True)
class Hold:
    """Who holds scaling, since when and until when. ``expires`` is on the monotonic clock, which on Linux is one
    clock for every process of the machine (CLOCK_MONOTONIC), so another process can compare with it."""

    pid: int
    started: float | None  # the owner's process start time: a recycled pid is not the owner
    since: float  # wall time, for people
    expires: float  # time.monotonic() deadline

    def active(self, now: float) -> tuple[bool, str]:
        """(held, why)."""
        if not procs.is_alive(self.pid, self.started):
            return False, f"the hold of pid {self.pid} is ignored: that process is gone (a crashed or killed gate)"
        if now >= self.expires:
            return False, f"the hold of pid {self.pid} is ignored: it expired (modelops:autoscale.hold_max_s)"
        return True, f"held by pid {self.pid}: the gate pins the replica count"


def write_hold(
    state_dir: Path, max_s: float, pid: int | None = None, now: Callable[[], float] = time.monotonic
) -> Hold:
    """Hold scaling for the calling process (or ``pid``) for at most ``max_s`` seconds."""
    owner = pid or os.getpid()
    hold = Hold(owner, procs.start_time(owner), time.time(), now() + max_s)
    write_json(state_dir / HOLD_FILE, asdict(hold))
    return hold


def read_hold(state_dir: Path) -> Hold | None:
    """The recorded hold; a file without an owner (written before holds had one) reads as nobody's."""
    try:
        data = read_json(state_dir / HOLD_FILE)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Hold(0, None, 0.0, 0.0) if (state_dir / HOLD_FILE).exists() else None
    try:
        return Hold(int(data["pid"]), data.get("started"), float(data["since"]), float(data["expires"]))
    except (KeyError, TypeError, ValueError):
        return Hold(0, None, 0.0, 0.0)


# ------------------------------------------------------------------------------------------------ the rule
@dataclass(frozen=True)
class Policy:
    metric: Metric
    target: float
    min_replicas: int
    max_replicas: int
    tolerance: float = 0.1
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 300.0

    @classmethod
    def of(cls, settings: StackConfig) -> Policy:
        a, d = settings.autoscale, settings.deploy
        return cls(a.metric, a.target, d.min_replicas, d.max_replicas, a.tolerance, a.scale_up_window_s,
                   a.scale_down_window_s)  # fmt: skip


@dataclass(frozen=True)
class Recommendation:
    t: float
    replicas: int


@dataclass(frozen=True)
class Decision:
    t: float
    current: int
    desired: int
    metric: float | None
    reason: str
    recommendations: tuple[Recommendation, ...] = ()  # what the windows remember for the next decision

    @property
    def changes(self) -> bool:
        return self.desired != self.current


def _clamp(n: int, policy: Policy) -> int:
    return min(max(n, policy.min_replicas), policy.max_replicas)


def decide(
    current: int,
    metric: float | None,
    now: float,
    policy: Policy,
    history: tuple[Recommendation, ...] = (),
) -> Decision:
    """The replica count the pool should have, and why. ``metric`` is the average per ready replica over the last
    sync period (None: nothing measured); ``history`` the recommendations of earlier decisions."""
    unit = "in flight" if policy.metric == "in_flight" else "% CPU"
    if metric is None:
        desired = _clamp(current, policy)
        why = "no metric this period (no ready replica or no sample)"
        return Decision(now, current, desired, None, why if desired == current else f"{why}; held to the bounds",
                        history)  # fmt: skip
    ratio = metric / policy.target
    seen = f"{metric:.3g} {unit}/replica vs target {policy.target:g}"
    if abs(ratio - 1) <= policy.tolerance:
        raw, how = current, f"{seen}: within the {policy.tolerance:.0%} tolerance"
    else:
        raw = max(1, math.ceil(current * ratio - 1e-9))
        how = f"{seen}: ceil({current} x {ratio:.2f}) = {raw}"
    recommended = _clamp(raw, policy)
    if recommended != raw:
        bound = "max_replicas" if raw > policy.max_replicas else "min_replicas"
        how += f", clamped to {bound} {recommended}"
    keep = max(policy.scale_up_window_s, policy.scale_down_window_s)
    window = (*(r for r in history if now - r.t <= keep), Recommendation(now, recommended))
    # HPA stabilisation: never above the lowest recommendation of the up-window, nor below the highest of the down-one.
    up = min(r.replicas for r in window if now - r.t <= policy.scale_up_window_s)
    down = max(r.replicas for r in window if now - r.t <= policy.scale_down_window_s)
    desired = current
    if desired < up:
        desired = up
    if desired > down:
        desired = down
    desired = _clamp(desired, policy)
    if desired != recommended:
        if recommended < current:
            how += (f"; scale-in held at {desired}: the highest recommendation of the last "
                    f"{policy.scale_down_window_s:g} s")  # fmt: skip
        else:
            how += (
                f"; scale-out held at {desired}: the lowest recommendation of the last {policy.scale_up_window_s:g} s"
            )
    return Decision(now, current, desired, metric, how, window)


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class Sample:
    in_flight: float | None  # per ready replica
    ready: int
    requests_total: int  # the backend's cumulative sessions (req/s from two samples)


@dataclass
class Supervisor:
    """Keeps one pool of a LocalTarget on the policy. ``clock`` and ``sleep`` are injectable for tests."""

    target: LocalTarget
    pool: Pool = "live"
    clock: Callable[[], float] = time.monotonic  # periods and windows: never stepped by an NTP or manual change
    sleep: Callable[[float], None] = time.sleep
    wall_clock: Callable[[], float] = time.time  # only for the times people read (decisions, last update)
    decisions: list[dict] = field(default_factory=list)
    _history: tuple[Recommendation, ...] = ()
    _stopping: bool = False
    _acting: bool = False  # inside target.scale(): a stop lets it finish (a drain half done would strand a replica)

    @property
    def settings(self) -> StackConfig:
        return self.target.settings

    @property
    def policy(self) -> Policy:
        return Policy.of(self.settings)

    @property
    def path(self) -> Path:
        return state_file(self.target.dir, self.pool)

    def held(self) -> tuple[bool, str]:
        """(held, why): a hold counts only while its owner runs and before it expires."""
        hold = read_hold(self.target.dir)
        if hold is None:
            return False, ""
        return hold.active(time.monotonic())

    def stop(self) -> None:
        """Stop after the current step; at once when it is only measuring (nothing half done)."""
        self._stopping = True
        if not self._acting:
            raise SystemExit(0)

    # --- measuring
    def _colour_and_replicas(self) -> tuple[str, list]:
        state = self.target.load()
        if state is None:
            raise NotDeployedError(f"the deployment in {self.target.dir} is gone")
        record = self.target._pool(state, self.pool)
        return record.colour, record.replicas

    def _sample(self, colour: str, replicas: list) -> Sample:
        rows = self.target.api.stats()
        names = {haproxy.slot_name(colour, r.slot) for r in replicas}
        backend = f"be_{colour}"
        servers = [r for r in rows if r["pxname"] == backend and r["svname"] in names]
        ready = [r for r in servers if r.get("status", "").startswith("UP")]
        total = next((r for r in rows if r["pxname"] == backend and r["svname"] == "BACKEND"), {})
        in_flight = sum(int(r.get("scur") or 0) for r in ready) + int(total.get("qcur") or 0)
        return Sample(
            in_flight=in_flight / len(ready) if ready else None,
            ready=len(ready),
            requests_total=int(total.get("stot") or 0),
        )

    def _cpu_seconds(self, replicas: list) -> float | None:
        budgets = self.target.budgets
        if budgets.enabled:
            used = [budgets.usage_seconds(r.cgroup) for r in replicas if r.cgroup]
            if used and all(u is not None for u in used):
                return sum(u for u in used if u is not None)
        return sum(procs.cpu_seconds(r.proc) for r in replicas if r.proc.alive())

    def _budget(self, replicas: list) -> float:
        state = self.target.load()
        record = self.target._pool(state, self.pool) if state else None
        per = (record.cpu if record and record.cpu else None) or self.settings.deploy.cpu_per_replica * (
            record.workers if record else self.settings.deploy.workers
        )
        return per * max(1, len(replicas))

    def measure(self, period: float) -> tuple[float | None, int, float, str]:
        """Average the metric over ``period`` seconds: (metric per ready replica, replicas, req/s, colour)."""
        colour, replicas = self._colour_and_replicas()
        started = self.clock()
        cpu_before = self._cpu_seconds(replicas) if self.policy.metric == "cpu" else None
        samples = [self._sample(colour, replicas)]
        while self.clock() - started < period and not self._stopping:
            self.sleep(SAMPLE_INTERVAL_S)
            samples.append(self._sample(colour, replicas))
        elapsed = max(self.clock() - started, 1e-6)
        rps = max(0, samples[-1].requests_total - samples[0].requests_total) / elapsed
        if self.policy.metric == "cpu":
            cpu_after = self._cpu_seconds(replicas)
            ready = samples[-1].ready
            metric = (
                100 * (cpu_after - cpu_before) / elapsed / self._budget(replicas)
                if cpu_before is not None and cpu_after is not None and ready
                else None
            )
        else:
            values = [s.in_flight for s in samples if s.in_flight is not None]
            metric = sum(values) / len(values) if values else None
        return metric, len(replicas), rps, colour

    # --- acting
    def step(self) -> Decision | None:
        """One sync period: measure, decide, act, write the state file. None while held."""
        period = self.settings.autoscale.sync_period_s
        metric, current, rps, colour = self.measure(period)
        now = self.clock()
        held, why = self.held()
        if held:
            self._write(colour, current, current, metric, rps, held=True, note=why)
            self._history = ()  # what was seen before the hold says nothing about the load after it
            return None
        decision = decide(current, metric, now, self.policy, self._history)
        if why:
            decision = replace(decision, reason=f"{decision.reason} ({why})")
        self._history = decision.recommendations
        error = None
        if decision.changes:
            self._record(decision, colour)
            self._write(colour, decision.desired, current, metric, rps, note=decision.reason)
            self._acting = True
            try:
                self.target.scale(decision.desired, self.pool)
            except NotDeployedError:
                raise
            except ModelopsError as exc:
                error = str(exc)
                self._record(decision, colour, error=error)
            finally:
                self._acting = False
            current = len(self._colour_and_replicas()[1])
        self._write(colour, decision.desired, current, metric, rps, note=error or decision.reason)
        return decision

    def _record(self, decision: Decision, colour: str, error: str | None = None) -> None:
        entry = {
            "time": self.wall_clock(),
            "colour": colour,
            "from": decision.current,
            "to": decision.desired,
            "metric": decision.metric,
            "reason": decision.reason if error is None else f"failed: {error}",
        }
        self.decisions = [*self.decisions, entry][-self.settings.autoscale.decisions_kept :]

    def _write(self, colour: str, desired: int, actual: int, metric: float | None, rps: float, held: bool = False,
               note: str = "") -> None:  # fmt: skip
        policy = self.policy
        write_json(
            self.path,
            {
                "pool": self.pool,
                "colour": colour,
                "pid": os.getpid(),
                "metric": policy.metric,
                "metric_label": METRIC_LABEL[policy.metric],
                "target": policy.target,
                "min_replicas": policy.min_replicas,
                "max_replicas": policy.max_replicas,
                "desired": desired,
                "actual": actual,
                "value": metric,
                "rps": round(rps, 2),
                "held": held,
                "updated": self.wall_clock(),
                "last": note,
                "decisions": self.decisions,
                "policy": asdict(policy),
            },
        )

    def run(self) -> None:
        previous = read_json(self.path) or {}
        self.decisions = list(previous.get("decisions") or [])  # a restarted supervisor keeps the record
        while not self._stopping:
            try:
                self.step()
            except (NotDeployedError, UsageError):
                return  # the deployment or the pool is gone: nothing left to scale
            except ModelopsError as exc:  # HAProxy restarting, a state file mid-change: say so, try next period
                _say(f"autoscaler: {exc}")
                self.sleep(self.settings.autoscale.sync_period_s)
            except OSError as exc:
                # A full disk (its state file, the deployment's state) or a vanished file: the pool still needs its
                # supervisor. Nothing half done is lost: target.scale() saves after each replica it changes.
                _say(f"autoscaler: {exc.strerror or exc} ({exc.filename or 'a file'}): retrying next period")
                self.sleep(self.settings.autoscale.sync_period_s)


def _say(message: str) -> None:
    """To the supervisor's log; with the disk full even that fails, and that must not stop it either."""
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def read_status(state_dir: Path, pool: Pool = "live") -> dict | None:
    """What the pool's supervisor last wrote, or None when none ran."""
    data = read_json(state_file(state_dir, pool))
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> int:
    from modelops.targets.local.target import LocalTarget

    parser = argparse.ArgumentParser(description="the local autoscaler of one pool (started by `modelops up`)")
    parser.add_argument("--settings", type=Path, required=True, help="the deployment's settings, JSON")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--pool", choices=("live", "candidate"), default="live")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = validate_settings(json.loads(args.settings.read_text()), source=str(args.settings))
    supervisor = Supervisor(LocalTarget(settings, state_dir=args.state_dir), pool=args.pool)

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_term)
    supervisor.run()
    return 0
