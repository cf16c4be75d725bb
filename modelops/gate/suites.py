"""The gate's measurements: each suite loads the candidate pool (its own URL only) and returns typed figures.

Nothing here decides a verdict; modelops/gate/judge.py does, from these figures and the thresholds alone.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import httpx

from modelops.bentos import BentoInfo
from modelops.errors import DeploymentError
from modelops.gate import loadgen, quality_run, userload
from modelops.gate.capacity import Curve, Limits, read_curve, steps_from
from modelops.gate.fuzz import FuzzError, FuzzResult, run_fuzz
from modelops.gate.labelled import SetAnswers
from modelops.gate.loadgen import LoadResult, LoadSpec
from modelops.gate.rounds import LIVE
from modelops.gate.summary import CpuWindow
from modelops.monitor import quality, resources, synthetic
from modelops.monitor.quality import QualityFigures
from modelops.monitor.resources import Sample
from modelops.targets.base import KilledReplica, Target
from modelops.waiting import wait_until
from stacks.config import StackConfig

Note = Callable[[str], None]


@dataclass(frozen=True)
class SmokeRun:
    result: LoadResult
    golden: bool  # the bento declares golden rows and one user checked them
    golden_labels: list[str] = field(default_factory=list)  # their true labels (the model's training data)


@dataclass(frozen=True)
class SloRun:
    result: LoadResult
    replicas: int
    workers: int
    cpu_budget: float  # cores per replica
    cpu_seconds: float | None  # CPU the pool used during the run (None where the target cannot measure it)
    throttled: float | None  # share of scheduler periods the replicas hit their budget


@dataclass(frozen=True)
class Sweep:
    """One step load per configuration (replica counts, or worker counts), each read as a curve; then rounds that
    measure every configuration again at the compared step, interleaved, each on fresh processes."""

    unit: str  # "replicas" or "workers"
    values: list[int]
    curves: list[Curve]  # round 1: each configuration's whole step plan, in ``values`` order
    reports: list[str]  # Locust's HTML reports, relative to the run folder
    cpu: list[CpuWindow]
    retried: list[str] = field(default_factory=list)  # configurations re-run with more Locust processes, and why
    # Every round, the first included: configuration label -> curve. Rounds after the first run only the compared
    # step (the first configuration's most loaded step within the SLO, scaled per configuration).
    rounds: list[dict[str, Curve]] = field(default_factory=list)
    compared_users: int | None = None  # the first configuration's users at the compared step; None: it had none
    reference: str | None = None  # the live bento, measured at values[0] as ``rounds.LIVE + label`` (regression)
    seconds: float = 0.0  # wall time of the whole sweep, deploys included


@dataclass(frozen=True)
class FailoverRun:
    result: LoadResult
    replicas: int
    workers: int
    killed: KilledReplica | None  # None: the load ended before a replica could be killed
    down_after_s: float | None  # from the kill to the balancer marking the replica down; None: never seen down


@dataclass(frozen=True)
class QualityRun:
    live_model: str | None  # the model version whose logged traffic was replayed (None: not in this store)
    log_dir: str
    figures: QualityFigures | None  # None: nothing logged to replay, or the replay failed
    error: str | None = None  # why the replay failed
    sets: list[SetAnswers] = field(default_factory=list)  # labelled sets, answered by both versions


@dataclass(frozen=True)
class AutoscaleRun:
    """The ramp load on the candidate pool with an autoscaler keeping it on modelops:autoscale."""

    skipped: str | None  # why the suite did not run (autoscaling off, a target that scales in the platform)
    result: LoadResult | None = None
    min_replicas: int = 1
    max_replicas: int = 1
    peak_started: float | None = None  # epoch seconds the peak phase began
    peak_ended: float | None = None
    # (epoch seconds, replicas in the pool, replicas serving): sampled every 0.5 s from the load's start until the
    # pool was back at min_replicas (or the wait for it ended)
    replicas: list[tuple[float, int, int]] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)  # the autoscaler's, with reasons


@dataclass(frozen=True)
class RobustnessRun:
    result: LoadResult  # production users + hostile users (kind "hostile") at the same time
    fuzz: FuzzResult | None  # schemathesis against one replica during the load (None: it could not run)
    fuzz_error: str | None
    lost: list[str]  # replicas that died or were replaced during the suite
    memory: list[Sample] = field(default_factory=list)  # every replica's memory, sampled through the suite


@dataclass(frozen=True)
class Retries:
    """What the balancer retried during one load of the candidate pool (HAProxy's per-backend counters): a request it
    resent to another replica after a dropped connection, an empty answer or a timeout looks like a success to the
    client, but a replica failed it."""

    load: str
    requests: int  # every request of the load, warm-up and all kinds included (the balancer saw them all)
    retries: int | None  # HAProxy wretr: attempts resent to a server; None: the target cannot tell
    redispatches: int | None  # HAProxy wredis: attempts sent to another server instead


def retries_of(name: str, result: LoadResult, before: tuple[int, int] | None, after: tuple[int, int] | None) -> Retries:
    requests = sum(w.ok + w.failed for w in result.windows)
    if before is None or after is None:
        return Retries(name, requests, None, None)
    # A counter that went down was reset (the balancer restarted): what it counted since is all that is known.
    retried = after[0] - before[0] if after[0] >= before[0] else after[0]
    redispatched = after[1] - before[1] if after[1] >= before[1] else after[1]
    return Retries(name, requests, retried, redispatched)


@dataclass(frozen=True)
class _Config:
    """One measured configuration of a sweep: which bento, in how many replicas of how many workers, and the users
    it gets (``scale`` x the first configuration's)."""

    label: str
    bento: str
    replicas: int
    workers: int
    scale: float

    @property
    def slug(self) -> str:
        return self.label.replace(" ", "-").replace("=", "-")


def cpu_window(label: str, result: LoadResult) -> CpuWindow:
    f = result.measured
    return CpuWindow(
        label=label,
        generator_load=f.generator_load,
        generator_cpu=f.generator_cpu,
        generator_wait=f.generator_wait,
        machine_idle=f.machine_idle,
        processes=result.processes,
    )


@dataclass
class Suites:
    target: Target
    settings: StackConfig
    candidate: BentoInfo
    run_dir: Path
    note: Note = lambda _m: None
    generator_cgroup: Path | None = None  # cgroup.procs of a CPU budget for the load generator (tests starve it)
    last: LoadResult | None = None  # the latest load that measured the generator's CPU: the next one's plan
    # Runs one load: local Locust processes (loadgen.run), or a master and workers in the cluster (gate/cluster.py).
    runner: Callable[..., LoadResult] = loadgen.run
    sweeps: dict[str, Sweep] = field(default_factory=dict)  # the scaling suites' measurements, for regression
    retries: list[Retries] = field(default_factory=list)  # the balancer's retries of each load of the current suite

    @property
    def gate(self):
        return self.settings.gate

    @property
    def limits(self) -> Limits:
        gate = self.gate
        return Limits(gate.max_generator_load, gate.min_idle_cpu, gate.max_generator_wait)

    def _url(self) -> str:
        pool = self.target.status().candidate
        if pool is None:
            raise DeploymentError("the candidate pool disappeared during the gate")
        return pool.url

    def _probe(self) -> tuple[int, int] | None:
        return self.target.cpu_throttling("candidate")

    def load(self, name: str, spec: LoadSpec, url: str | None = None) -> LoadResult:
        spec = userload.apply(spec, self.gate, self.run_dir)  # gate.endpoint, gate.payload_file, gate.locustfile
        if self.generator_cgroup is not None:
            spec = replace(spec, cgroup_procs=self.generator_cgroup)
        if spec.payload_file is None and spec.zipf_s == 0 and self.gate.zipf_s > 0:
            # Rows as clients send them (modelops:gate.zipf_s over gate.distinct_rows, more than a replica's cache
            # holds), each load its own sequence of draws: a pool that served the last load does not find this one's
            # rows in its cache just because the sequence repeated.
            spec = replace(spec, zipf_s=self.gate.zipf_s, distinct_rows=self.gate.distinct_rows,
                           zipf_seed=zlib.crc32(name.encode()) % 2**31)  # fmt: skip
        before = self._retries()
        result = self.runner(url or self._url(), spec, self.run_dir, prefix=name, budget_probe=self._probe)
        after = self._retries()
        self.retries.append(retries_of(name, result, before, after))
        if loadgen.cpu_per_request(result) is not None:
            self.last = result
        return result

    def _retries(self) -> tuple[int, int] | None:
        try:
            return self.target.balancer_retries("candidate")
        except DeploymentError:  # the balancer could not be asked: the load's retries stay unknown, and say so
            return None

    def take_retries(self) -> list[Retries]:
        """The balancer's retries of every load since the last call (one suite's), and forget them."""
        taken, self.retries = self.retries, []
        return taken

    def generator(self, expected_rps: float | None, users: int) -> int:
        """Locust processes for the next load, from its plan and the generator CPU measured on the last one."""
        plan = loadgen.plan_processes(
            expected_rps, users, self.last, self.gate.max_generator_processes, self.gate.max_generator_load
        )
        if plan.processes > 1:
            self.note(plan.reason)
        return plan.processes

    def production_load(self) -> LoadSpec:
        """The configured production load: gate.users users offering gate.target_rps req/s in total."""
        return LoadSpec(
            users=self.gate.users,
            spawn_rate=self.gate.spawn_rate,
            duration_s=self.gate.duration_s,
            warmup_s=self.gate.warmup_s,
            rows_per_request=self.gate.rows_per_request,
            rate=self.gate.target_rps,
            processes=self.generator(self.gate.target_rps, self.gate.users),
        )

    def step_spec(self, processes: int = 1, scale: float = 1.0, base_users: list[int] | None = None) -> LoadSpec:
        """The step load (gate.step_users, or ``base_users``, x gate.step_seconds), its users multiplied by ``scale``:
        N replicas get N times the users of one, so every replica sees the same concurrency at each step."""
        users = [max(1, round(u * scale)) for u in (base_users or self.gate.step_users)]
        env = {
            "MODELOPS_STEP_USERS": ",".join(str(u) for u in users),
            "MODELOPS_STEP_SECONDS": str(self.gate.step_seconds),
            # Each configuration may have just started its replicas: warm them before the first step counts.
            "MODELOPS_STEP_WARMUP": str(self.gate.warmup_s),
        }
        return LoadSpec(
            users=max(users),
            spawn_rate=max(users),
            duration_s=self.gate.warmup_s + self.gate.step_seconds * len(users),
            rows_per_request=self.gate.rows_per_request,
            shape="StepLoad",
            processes=processes,
            extra_env=env,
        )

    # ---------------------------------------------------------------------------------------------- suites
    def smoke(self) -> SmokeRun:
        golden_file = None
        if self.candidate.golden:
            golden_file = self.run_dir / "golden.json"
            golden_file.write_text(json.dumps(self.candidate.golden))
        spec = LoadSpec(
            users=self.gate.smoke_users + (1 if golden_file else 0),
            spawn_rate=self.gate.smoke_users + 1,
            duration_s=self.gate.smoke_seconds,
            rows_per_request=self.gate.rows_per_request,
            batch_weight=2,
            golden_file=golden_file,
        )
        labels = [str(label) for label in (self.candidate.golden or {}).get("labels", [])]
        return SmokeRun(result=self.load("smoke", spec), golden=golden_file is not None, golden_labels=labels)

    def slo(self) -> SloRun:
        pool = self.target.status().candidate
        replicas = len(pool.replicas) if pool else 0
        workers = pool.workers if pool else self.settings.deploy.workers
        before = self.target.cpu_seconds("candidate")
        result = self.load("slo", self.production_load())
        after = self.target.cpu_seconds("candidate")
        # CPU over the whole run, warm-up included: the paced load is steady throughout.
        used = after - before if before is not None and after is not None else None
        return SloRun(
            result=result,
            replicas=replicas,
            workers=workers,
            cpu_budget=self.settings.deploy.cpu_per_replica * workers,
            cpu_seconds=used,
            throttled=result.throttled(result.measured_from, time.time()),
        )

    def fresh(self, bento: str, replicas: int, workers: int) -> None:
        """The candidate colour's pool replaced by new processes of ``bento`` (``replicas`` x ``workers``, each at the
        deploy's CPU per worker): no process carries a warm cache, a fragmented heap or a lucky core from one
        measured configuration into another."""
        if self.target.status().candidate is not None:
            self.target.remove_candidate()
        self.target.deploy_candidate(bento, replicas, workers)

    def _curve(
        self, name: str, config: _Config, base_users: list[int] | None, processes: int, retried: list[str]
    ) -> tuple[Curve, LoadResult, int]:
        """One configuration's step load (a configuration whose generator was the limit is run again with more Locust
        processes, up to gate.max_generator_processes, before the gate gives up on it)."""
        while True:
            spec = self.step_spec(processes, scale=config.scale, base_users=base_users)
            result = self.load(f"{name}-{config.slug}" + (f"-p{processes}" if processes > 1 else ""), spec)
            steps = steps_from(result, self.limits)
            starved = [
                s for s in steps if s.generator_load is not None and s.generator_load >= self.limits.max_generator_load
            ]
            if not starved or processes >= self.gate.max_generator_processes:
                return read_curve(config.label, steps, self.settings.slo), result, processes
            retried.append(
                f"{config.label}: one Locust process was saturated at {starved[0].users} users; "
                f"ran again with {processes + 1}"
            )
            processes += 1

    def sweep(
        self, name: str, unit: str, values: list[int], shape: Callable[[int], tuple[int, int]],
        reference: str | None = None,
    ) -> Sweep:  # fmt: skip
        """Round 1: the whole step load once per configuration, its users scaled with the configuration (value /
        first value), each on fresh processes (``shape``: value -> replicas, workers). The compared step is the first
        configuration's most loaded step within the SLO; rounds 2..gate.rounds measure every configuration again at
        that step only (short: a warm-up and one step), on fresh processes, in alternating order (A B, B A, A B …:
        each pair adjacent in time, and a steady drift of the machine cancels). ``reference``: the live bento,
        measured the same way at the first value, beside the candidate (the regression check's reference)."""
        began = time.time()
        configs = [_Config(f"{unit}={v}", self.candidate.tag, *shape(v), v / values[0]) for v in values]
        if reference is not None:
            # Second in the order: measured after the first configuration found the compared step, and (order
            # reversed every other round) never last, so the pool ends on the candidate.
            configs.insert(1, _Config(f"{LIVE}{unit}={values[0]}", reference, *shape(values[0]), 1.0))
        curves: dict[str, Curve] = {}
        reports: list[str] = []
        cpu: list[CpuWindow] = []
        retried: list[str] = []
        processes: dict[str, int] = {}
        rounds: list[dict[str, Curve]] = []
        compared: int | None = None
        try:
            previous: tuple[float, float] | None = None  # (scale, best step req/s) of the configuration before
            for config in configs:
                if config is not configs[0] and compared is None:
                    # The first configuration met the SLO at no step: its suite fails on that alone, and there is no
                    # step to compare anything at. Fail fast rather than measure the rest.
                    break
                self.note(f"round 1: {config.label} (fresh processes)")
                self.fresh(config.bento, config.replicas, config.workers)
                # Expect the previous configuration's best throughput, scaled as if this one scaled perfectly: an
                # upper bound, so the generator is sized for the best case.
                expected = previous[1] * config.scale / previous[0] if previous else None
                wanted = self.generator(expected, max(self.step_spec(scale=config.scale).users, 1))
                base = None if config.bento == self.candidate.tag else [compared or 0]
                curve, result, processes[config.label] = self._curve(name, config, base, wanted, retried)
                curves[config.label] = curve
                reports.append(f"{result.prefix}.html")
                cpu.append(cpu_window(config.label, result))
                if config is configs[0]:
                    last = curve.last_within
                    compared = last.users if last else None
                if config.bento == self.candidate.tag and curve.steps:
                    previous = (config.scale, max(s.rps for s in curve.steps))
            rounds.append(dict(curves))
            for number in range(2, self.gate.rounds + 1 if compared is not None else 0):
                order = configs if number % 2 else configs[::-1]
                current: dict[str, Curve] = {}
                for config in order:
                    self.note(f"round {number} of {self.gate.rounds}: {config.label} at the compared step")
                    self.fresh(config.bento, config.replicas, config.workers)
                    curve, result, _ = self._curve(
                        f"{name}-r{number}", config, [compared or 0], processes.get(config.label, 1), retried
                    )
                    current[config.label] = curve
                    reports.append(f"{result.prefix}.html")
                rounds.append(current)
            pool = self.target.status().candidate
            if pool is None or pool.bento != self.candidate.tag:
                self.fresh(self.candidate.tag, configs[-1].replicas, configs[-1].workers)
        except BaseException:
            pool = self.target.status().candidate
            if pool is not None and pool.bento != self.candidate.tag:
                self.target.remove_candidate()  # never leave the live bento in the candidate's colour
            raise
        return Sweep(
            unit=unit,
            values=values,
            curves=[curves[c.label] for c in configs if c.bento == self.candidate.tag and c.label in curves],
            reports=reports,
            cpu=cpu,
            retried=retried,
            rounds=rounds,
            compared_users=compared,
            reference=reference if compared is not None else None,
            seconds=time.time() - began,
        )

    def horizontal(self, reference: str | None = None) -> Sweep:
        """Replicas at the deploy shape's workers and budget; ``reference``: the live bento measured beside."""
        workers = self.settings.deploy.workers
        sweep = self.sweep(
            "horizontal", "replicas", self.gate.horizontal_replicas, lambda n: (n, workers), reference=reference
        )
        self.sweeps["horizontal"] = sweep
        return sweep

    def vertical(self) -> Sweep:
        """One replica, its workers (and CPU budget, per worker) raised."""
        sweep = self.sweep("vertical", "workers", self.gate.vertical_workers, lambda w: (1, w))
        self.sweeps["vertical"] = sweep
        return sweep

    def failover(self) -> FailoverRun:
        """SIGKILL (or the target's equivalent) one replica a third of the way into the production load, at the
        deploy shape (workers), with at least two replicas; time from the kill to the balancer marking it down."""
        deploy = self.settings.deploy
        self.to_shape(max(2, deploy.replicas))
        spec = self.production_load()
        url = self._url()
        outcome: dict[str, LoadResult] = {}
        runner = threading.Thread(target=lambda: outcome.update(result=self.load("failover", spec, url)))
        runner.start()
        meta_started = self.run_dir / "failover_stats_history.csv"  # Locust writes it once the load runs
        wait_until(lambda: meta_started.exists() or not runner.is_alive(), timeout=30)
        wait_until(lambda: not runner.is_alive(), timeout=spec.warmup_s + spec.duration_s / 3)
        killed = None
        down_after = None
        if runner.is_alive():
            killed = self.target.kill_replica("candidate")
            self.note(f"killed {killed.name}; waiting for the balancer to mark it down")
            name = killed.name

            def marked_down() -> bool:
                pool = self.target.status().candidate
                return pool is not None and any(r.name == name and r.in_rotation is False for r in pool.replicas)

            if wait_until(marked_down, timeout=max(30.0, 2 * self.gate.failover_max_detection_s), interval=0.05):
                down_after = time.time() - killed.killed_at
        runner.join()
        return FailoverRun(
            result=outcome["result"],
            replicas=max(2, deploy.replicas),
            workers=deploy.workers,
            killed=killed,
            down_after_s=down_after,
        )

    def quality(self, live_model: str | None, inputs: quality_run.QualityInputs) -> QualityRun:
        """Every labelled set answered by the candidate pool and the live pool, each on its own URL; and the live
        version's recent logged traffic replayed to the candidate (modelops/gate/quality_run.py)."""
        status = self.target.status()
        live_pool = status.pools.get(status.live)
        self.note(f"asking both versions the labelled rows; replaying up to {inputs.window} rows of {live_model}")
        secret = synthetic.for_stack(self.settings)  # both pools keep the replay out of their prediction logs
        try:
            measured = quality_run.measure(
                self.gate, inputs, live_model, quality.http_predictor(self._url(), synthetic_secret=secret),
                quality.http_predictor(live_pool.url, synthetic_secret=secret)
                if live_pool and inputs.live is not None else None,
            )  # fmt: skip
        except (OSError, ValueError, httpx.HTTPError) as exc:
            return QualityRun(live_model, str(inputs.log_dir), None, f"{type(exc).__name__}: {exc}")
        return QualityRun(live_model, str(inputs.log_dir), measured.figures, sets=measured.sets)

    def robustness(self) -> RobustnessRun:
        """The production load with hostile users beside it, and schemathesis against one replica meanwhile:
        what one client sends must never fail another's request, crash a replica or earn a 5xx. At the deploy shape,
        a replica an earlier suite killed replaced first."""
        self.to_shape(self.settings.deploy.replicas)
        pool = self.target.status().candidate
        before = {(r.name, r.pid) for r in pool.replicas if r.healthy} if pool else set()
        spec = replace(
            self.production_load(),
            users=self.gate.users + self.gate.robustness_hostile_users,
            hostile_users=self.gate.robustness_hostile_users,
            max_body_bytes=self.settings.limits.max_body_bytes,
        )
        outcome: dict[str, LoadResult] = {}
        runner = threading.Thread(target=lambda: outcome.update(result=self.load("robustness", spec)))
        sampler = resources.Sampler(resources.pool_processes(self.target, "candidate")).start()
        runner.start()
        # Fuzz one replica directly: the balancer's retries could hide a 5xx (FACTS.md). Where the target gives no
        # replica URL that answers from here, the pool's own URL is the closest.
        fuzz_url = pool.replicas[0].url if pool and pool.replicas and self.target.name == "local" else self._url()
        fuzz, fuzz_error = None, None
        try:
            fuzz = run_fuzz(fuzz_url, max_examples=self.gate.robustness_fuzz_examples,
                            time_limit_s=self.gate.duration_s, report_dir=self.run_dir / "schemathesis")  # fmt: skip
        except FuzzError as exc:
            fuzz_error = str(exc)
        runner.join()
        memory = sampler.stop()
        after = self.target.status().candidate
        now = {(r.name, r.pid) for r in after.replicas if r.healthy} if after else set()
        lost = sorted(f"{name} (pid {pid})" for name, pid in before - now)
        return RobustnessRun(result=outcome["result"], fuzz=fuzz, fuzz_error=fuzz_error, lost=lost, memory=memory)

    def autoscale(self) -> AutoscaleRun:
        """From min_replicas, a load that ramps past one replica's capacity and back (gate.autoscale_users, the peak
        for gate.autoscale_peak_s, the base for gate.autoscale_cool_s), with the candidate pool's own autoscaler
        running: when did it scale out, did every request succeed, did it return to min_replicas after the cool-down.
        Local only: on kind/aws the platform's autoscaler acts in minutes, outside the gate."""
        scaling, deploy, gate = self.settings.autoscale, self.settings.deploy, self.gate
        if not scaling.enabled:
            return AutoscaleRun(skipped="autoscaling is off (modelops:autoscale.enabled: false): nothing to prove")
        if self.target.name != "local":
            return AutoscaleRun(
                skipped=f"on {self.target.name} the platform autoscales (HPA / ASG target tracking, minutes): the "
                "gate proves autoscaling on the local target, from the same modelops:autoscale definition"
            )
        from modelops.targets.local import LocalTarget

        local = cast(LocalTarget, self.target)
        self.to_shape(deploy.min_replicas)
        base, peak = gate.autoscale_users
        warm = max(gate.warmup_s, 2 * scaling.sync_period_s, 2.0)
        phases = [warm, gate.autoscale_peak_s, gate.autoscale_cool_s]
        spec = LoadSpec(
            users=peak,
            spawn_rate=peak,
            duration_s=sum(phases),
            rows_per_request=gate.rows_per_request,
            shape="Ramp",
            extra_env={
                "MODELOPS_RAMP_USERS": f"{base},{peak},{base}",
                "MODELOPS_RAMP_SECONDS": ",".join(f"{s:g}" for s in phases),
            },
        )
        url = self._url()
        samples: list[tuple[float, int, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                pool = self.target.status().candidate
                if pool is not None:
                    samples.append((time.time(), len(pool.replicas), sum(r.healthy for r in pool.replicas)))
                done.wait(0.5)

        local.release_scaling()
        local.start_autoscaler("candidate")
        sampler = threading.Thread(target=sample, name="autoscale-sampler", daemon=True)
        sampler.start()
        try:
            self.note(f"ramp {base} -> {peak} -> {base} users")
            result = self.load("autoscale", spec, url)
            # The pool returns to min_replicas at the earliest one scale-down window after the load fell; give it
            # that, a few sync periods and a drain (the longest request) on top, then stop waiting.
            self.note(f"waiting for the pool to return to {deploy.min_replicas} replica(s)")
            settle = scaling.scale_down_window_s + 4 * scaling.sync_period_s + self.settings.limits.request_timeout_s
            wait_until(lambda: bool(samples) and samples[-1][1] == deploy.min_replicas, timeout=settle, interval=0.5)
        finally:
            done.set()
            sampler.join(timeout=10)
            decisions = local.status().autoscale.get("candidate", {}).get("decisions", [])
            local.stop_autoscaler("candidate")
            local.hold_scaling()
        starts = [at for at, users in result.steps_started]
        return AutoscaleRun(
            skipped=None,
            result=result,
            min_replicas=deploy.min_replicas,
            max_replicas=deploy.max_replicas,
            peak_started=starts[1] if len(starts) > 1 else None,
            peak_ended=starts[2] if len(starts) > 2 else None,
            replicas=samples,
            decisions=decisions,
        )

    # ------------------------------------------------------------------------------------------------ shape
    def to_shape(self, replicas: int) -> None:
        """The candidate at the deploy shape (workers and CPU per replica) with ``replicas`` replicas."""
        deploy = self.settings.deploy
        pool = self.target.status().candidate
        if pool and pool.workers != deploy.workers:
            self.target.resize(deploy.workers, deploy.cpu_per_replica * deploy.workers, "candidate")
        self.target.scale(replicas, "candidate")
