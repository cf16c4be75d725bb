"""The promotion gate: Locust suites against a candidate pool, then a verdict, a capacity plan and the outputs.

The candidate runs as its own pool beside the live one and every suite loads the candidate's URL only. Each suite
runs Locust as a subprocess and reads back Locust's own statistics; a suite whose load generator ran out of CPU, or
that collected too few requests, is inconclusive — never silently a pass or a fail.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelops.bentos import BentoInfo, describe
from modelops.gate import capacity, loadgen
from modelops.gate.report import render as render_report
from modelops.gate.summary import SUITES, Scaling, SuiteResult, Summary, decide, point_latest
from modelops.gate.summary import read as read_summary
from modelops.gate.summary import write as write_summary
from modelops.promotion import HistoryFile, baseline_summary, reconcile, switch
from modelops.stackdir import stack_dir
from modelops.targets.base import Target, cpu_seconds
from modelops.ui import Steps
from modelops.waiting import wait_until
from stacks.config import PROJECT_ROOT, StackConfig

Note = Callable[[str], None]


@dataclass
class GateRun:
    """One gate run against one candidate. ``suites`` picks which suites run (all by default)."""

    target: Target
    settings: StackConfig
    candidate: BentoInfo
    run_dir: Path
    suites: tuple[str, ...] = SUITES
    baseline: Summary | None = None
    note: Note = lambda _m: None
    results: dict[str, SuiteResult] = field(default_factory=dict)
    scaling: Scaling = field(default_factory=Scaling)
    utilization: float | None = None  # fraction of its CPU budget a replica used under the slo load

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def gate(self):
        return self.settings.gate

    def _url(self) -> str:
        pool = self.target.status().candidate
        if pool is None:
            raise RuntimeError("the candidate pool disappeared during the gate")
        return pool.url

    def _load(self, name: str, spec: loadgen.LoadSpec) -> loadgen.LoadResult:
        return loadgen.run(self._url(), spec, self.run_dir, prefix=name)

    def _production_load(self) -> loadgen.LoadSpec:
        """The configured production load: gate.users users offering gate.target_rps req/s in total."""
        return loadgen.LoadSpec(
            users=self.gate.users,
            spawn_rate=self.gate.spawn_rate,
            duration_s=self.gate.duration_s,
            warmup_s=self.gate.warmup_s,
            rows_per_request=self.gate.rows_per_request,
            rate=self.gate.target_rps,
        )

    def _step_spec(self) -> loadgen.LoadSpec:
        env = {
            "MODELOPS_STEP_USERS": ",".join(str(u) for u in self.gate.step_users),
            "MODELOPS_STEP_SECONDS": str(self.gate.step_seconds),
        }
        return loadgen.LoadSpec(
            users=max(self.gate.step_users),
            spawn_rate=max(self.gate.step_users),
            duration_s=self.gate.step_seconds * len(self.gate.step_users),
            rows_per_request=self.gate.rows_per_request,
            shape="StepLoad",
            extra_env=env,
        )

    def _step_plan(self) -> list[tuple[float, int]]:
        return [((i + 1) * self.gate.step_seconds, u) for i, u in enumerate(self.gate.step_users)]

    def _doubt(self, result: loadgen.LoadResult, minimum: int | None = None) -> str | None:
        """Why a load result cannot decide anything, or None when it can."""
        needed = self.gate.min_requests if minimum is None else minimum
        if result.cpu_warning:
            return "the load generator itself ran out of CPU (Locust's CPU warning): figures are not the candidate's"
        if result.requests < needed:
            return f"only {result.requests} requests (modelops:gate.min_requests is {needed})"
        return None

    @staticmethod
    def _timeline(result: loadgen.LoadResult, label: str) -> list[dict]:
        return [{"t": s.t, "rps": s.rps, "p95_ms": s.p95_ms, "users": s.users, "label": label} for s in result.timeline]

    def _figures(self, result: loadgen.LoadResult) -> dict:
        return {
            "rps": result.rps,
            "p50_ms": result.p50_ms,
            "p95_ms": result.p95_ms,
            "p99_ms": result.p99_ms,
            "error_ratio": result.error_ratio,
            "requests": result.requests,
            "locust_reports": [f"{result.prefix}.html"],
        }

    # ------------------------------------------------------------------------------------------------- suites
    def smoke(self) -> SuiteResult:
        golden_file = None
        if self.candidate.golden:
            golden_file = self.run_dir / "golden.json"
            golden_file.write_text(json.dumps(self.candidate.golden))
        spec = loadgen.LoadSpec(
            users=self.gate.smoke_users + (1 if golden_file else 0),
            spawn_rate=self.gate.smoke_users + 1,
            duration_s=self.gate.smoke_seconds,
            rows_per_request=self.gate.rows_per_request,
            batch_weight=2,
            golden_file=golden_file,
        )
        result = self._load("smoke", spec)
        figures = self._figures(result)
        timeline = self._timeline(result, "smoke")
        if result.failures:
            first = next(iter(result.failure_messages), "?")
            reason = f"{result.failures} of {result.requests} requests failed (first: {first})"
            return SuiteResult(status="fail", reason=reason, timeline=timeline, **figures)
        if golden_file and not result.golden_checks:
            return SuiteResult(status="inconclusive", reason="the golden rows were never checked", **figures)
        doubt = self._doubt(result, minimum=min(self.gate.min_requests, 20))
        if doubt:
            return SuiteResult(status="inconclusive", reason=doubt, timeline=timeline, **figures)
        checked = (
            f"golden rows answered with the model's own labels {result.golden_checks} times"
            if golden_file
            else "the bento declares no golden examples: responses checked for shape only"
        )
        return SuiteResult(
            status="pass",
            reason=f"{result.requests} requests well-formed; {checked}",
            measured={"golden_checks": float(result.golden_checks)},
            timeline=timeline,
            **figures,
        )

    def slo(self) -> SuiteResult:
        slo = self.settings.slo
        spec = self._production_load()
        before = cpu_seconds(self.target, "candidate")
        started = time.monotonic()
        result = self._load("slo", spec)
        after = cpu_seconds(self.target, "candidate")
        pool = self.target.status().candidate
        budget = self.settings.deploy.cpu_per_replica * (pool.workers if pool else 1)
        if before is not None and after is not None and pool and pool.replicas:
            # CPU over the whole run (warm-up included) against the pool's budget: the load is steady throughout.
            self.utilization = (after - before) / ((time.monotonic() - started) * len(pool.replicas) * budget)
        thresholds = {
            "p95_ms": slo.p95_ms,
            "p99_ms": slo.p99_ms,
            "max_error_ratio": slo.max_error_ratio,
            "min_rps": slo.min_rps,
        }
        figures = self._figures(result)
        timeline = self._timeline(result, "slo")
        misses = []
        if result.p95_ms > slo.p95_ms:
            misses.append(f"p95 {result.p95_ms:.0f} ms > {slo.p95_ms:g} ms")
        if result.p99_ms > slo.p99_ms:
            misses.append(f"p99 {result.p99_ms:.0f} ms > {slo.p99_ms:g} ms")
        if result.error_ratio > slo.max_error_ratio:
            misses.append(f"error ratio {result.error_ratio:.2%} > {slo.max_error_ratio:.2%}")
        if result.rps < slo.min_rps:
            misses.append(f"{result.rps:.0f} req/s < {slo.min_rps:g} req/s")
        measured = {"utilization": self.utilization, "replicas": float(len(pool.replicas)) if pool else None}
        doubt = self._doubt(result)
        too_slow = result.rps < slo.min_rps and not result.cpu_warning
        if result.cpu_warning or (doubt and not too_slow):
            # The generator, not the candidate, limited the run; or too few requests to judge. A candidate too slow
            # to serve the minimum request count is no statistical fluke, though: that is a fail (min_rps).
            status, reason = "inconclusive", doubt + (f" (it also measured: {'; '.join(misses)})" if misses else "")
        elif misses:
            status, reason = "fail", "; ".join(misses)
        else:
            status = "pass"
            reason = f"p95 {result.p95_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, {result.rps:.0f} req/s, "
            reason += f"{result.failures} errors at {self.gate.users} users"
        return SuiteResult(status=status, reason=reason, thresholds=thresholds, measured=measured, timeline=timeline,
                           **figures)  # fmt: skip

    def _sweep(self, name: str, unit: str, values: list[int], configure: Callable[[int], object]) -> dict:
        """Run the step load once per configuration; return each curve, its plateau and any doubts."""
        curves, rps, reports, doubts = {}, [], [], []
        for value in values:
            self.note(f"{value} {unit}")
            configure(value)
            result = self._load(f"{name}-{value}", self._step_spec())
            steps = capacity.steps_from(result, self._step_plan())
            curves[f"{unit}={value}"] = steps
            rps.append(capacity.plateau(steps))
            reports.append(f"{result.prefix}.html")
            if doubt := self._doubt(result):
                doubts.append(f"{value} {unit}: {doubt}")
        return {"curves": curves, "rps": rps, "reports": reports, "doubts": doubts}

    def _judge(self, sweep: dict, text: str, ok: bool, threshold: dict, measured: dict) -> SuiteResult:
        for name, steps in sweep["curves"].items():  # the knee: the fewest users that reach the plateau
            knee = capacity.knee(steps)
            measured[f"knee_users_{name.split('=')[-1]}"] = float(knee.users) if knee else None
        rising = [name for name, steps in sweep["curves"].items() if not capacity.saturated(steps)]
        if rising:
            # Still climbing at the last step: the knee lies beyond the offered load, so capacity is a lower bound.
            text += f"; still rising at {max(self.gate.step_users)} users ({', '.join(rising)}): a lower bound"
        common = {"thresholds": threshold, "measured": measured, "steps": sweep["curves"],
                  "locust_reports": sweep["reports"], "rps": sweep["rps"][-1]}  # fmt: skip
        if sweep["doubts"]:
            return SuiteResult(status="inconclusive", reason="; ".join(sweep["doubts"]), **common)
        if not ok:
            ((key, value),) = threshold.items()
            return SuiteResult(status="fail", reason=f"{text}: below {key} {value:g}", **common)
        return SuiteResult(status="pass", reason=text, **common)

    def horizontal(self) -> SuiteResult:
        counts = self.gate.horizontal_replicas
        sweep = self._sweep("horizontal", "replicas", counts, lambda n: self.target.scale(n, "candidate"))
        rps = sweep["rps"]
        efficiency = capacity.efficiencies(counts, rps)
        self.scaling.horizontal.replicas, self.scaling.horizontal.rps = counts, rps
        self.scaling.horizontal.efficiency = efficiency
        measured = {f"rps_{n}": r for n, r in zip(counts, rps, strict=True)}
        measured |= {f"efficiency_{n}": e for n, e in zip(counts, efficiency, strict=True)}
        text = ", ".join(f"E({n})={e:.2f}" for n, e in zip(counts, efficiency, strict=True))
        text += f" (req/s {', '.join(f'{r:.0f}' for r in rps)})"
        ok = min(efficiency[1:]) >= self.gate.min_efficiency
        return self._judge(sweep, text, ok, {"min_efficiency": self.gate.min_efficiency}, measured)

    def vertical(self) -> SuiteResult:
        workers = self.gate.vertical_workers
        self.target.scale(1, "candidate")
        per_worker = self.settings.deploy.cpu_per_replica
        sweep = self._sweep(
            "vertical", "workers", workers, lambda w: self.target.resize(w, per_worker * w, "candidate")
        )
        rps = sweep["rps"]
        ratio = rps[-1] / rps[0] if rps[0] else 0.0
        self.scaling.vertical.workers, self.scaling.vertical.rps, self.scaling.vertical.ratio = workers, rps, ratio
        text = f"{workers[-1]} vs {workers[0]} workers: {ratio:.2f}x ({rps[0]:.0f} -> {rps[-1]:.0f} req/s)"
        ok = ratio >= self.gate.min_vertical_ratio
        return self._judge(sweep, text, ok, {"min_vertical_ratio": self.gate.min_vertical_ratio}, {"ratio": ratio})

    def failover(self) -> SuiteResult:
        replicas = max(2, self.settings.deploy.replicas)
        self.target.scale(replicas, "candidate")
        spec = self._production_load()
        url = self._url()
        outcome: dict = {}
        runner = threading.Thread(
            target=lambda: outcome.update(result=loadgen.run(url, spec, self.run_dir, "failover"))
        )
        runner.start()
        history = self.run_dir / "failover_stats_history.csv"
        # Kill once the measured part of the run is well under way: a third of it after warm-up.
        wait_until(history.exists, timeout=30)
        wait_until(lambda: not runner.is_alive(), timeout=self.gate.warmup_s + self.gate.duration_s / 3)
        detection = None
        victim = None
        if runner.is_alive():
            victim = self.target.kill_replica("candidate")
            killed_at, killed_wall = time.monotonic(), time.time()
            self.note(f"killed {victim.name}; waiting for the balancer to take it out")

            def out_of_rotation() -> bool:
                pool = self.target.status().candidate
                return any(r.name == victim.name and r.in_rotation is False for r in pool.replicas) if pool else False

            if wait_until(out_of_rotation, timeout=30, interval=0.05):
                detection = time.monotonic() - killed_at
        runner.join()
        result: loadgen.LoadResult = outcome["result"]
        thresholds = {"max_error_ratio": self.gate.failover_max_error_ratio}
        measured = {"detection_s": detection}
        if victim is not None and result.timeline_start is not None:
            measured["killed_at_s"] = killed_wall - result.timeline_start  # on the run's own clock, for the plot
        figures = self._figures(result)
        timeline = self._timeline(result, "failover")
        if victim is None:
            return SuiteResult(status="inconclusive", reason="the load ended before a replica could be killed",
                               thresholds=thresholds, **figures)  # fmt: skip
        detected = "never taken out of rotation"
        if detection is not None:
            detected = f"balancer stopped sending to it after {detection:.2f} s"
        text = f"killed {victim.name} mid-run: {result.failures} failed of {result.requests} "
        text += f"({result.error_ratio:.3%}); {detected}"
        common = {"thresholds": thresholds, "measured": measured, "timeline": timeline, **figures}
        if result.error_ratio > self.gate.failover_max_error_ratio or detection is None:
            return SuiteResult(status="fail", reason=text, **common)
        if doubt := self._doubt(result):
            return SuiteResult(status="inconclusive", reason=doubt, **common)
        return SuiteResult(status="pass", reason=text, **common)

    def regression(self) -> SuiteResult:
        base = self.baseline.suites.get("slo") if self.baseline else None
        mine = self.results.get("slo")
        if base is None or base.status != "pass" or base.rps is None:
            return SuiteResult(status="skipped", reason="no baseline: the live version was not promoted by a gate run")
        if mine is None or mine.rps is None:
            return SuiteResult(status="skipped", reason="the slo suite did not run: nothing to compare")
        base_per = base.rps / (base.measured.get("replicas") or 1)
        mine_per = mine.rps / (mine.measured.get("replicas") or 1)
        drop = 1 - mine_per / base_per if base_per else 0.0
        rise = (mine.p95_ms or 0) / base.p95_ms - 1 if base.p95_ms else 0.0
        thresholds = {
            "max_rps_drop": self.gate.regression_max_rps_drop,
            "max_p95_rise": self.gate.regression_max_p95_rise,
        }
        measured = {"rps_per_replica_drop": drop, "p95_rise": rise, "baseline_rps_per_replica": base_per,
                    "baseline_p95_ms": base.p95_ms}  # fmt: skip
        text = f"req/s per replica {mine_per:.0f} vs {base_per:.0f} ({-drop:+.0%}), "
        text += f"p95 {mine.p95_ms:.0f} vs {base.p95_ms:.0f} ms ({rise:+.0%})"
        failed = drop > self.gate.regression_max_rps_drop or rise > self.gate.regression_max_p95_rise
        return SuiteResult(status="fail" if failed else "pass", reason=text, thresholds=thresholds, measured=measured)

    # -------------------------------------------------------------------------------------------- orchestration
    def run_suites(self, on_suite: Callable[[str, Callable[[], SuiteResult]], SuiteResult]) -> dict[str, SuiteResult]:
        """Run the chosen suites in order (a failed smoke stops the run: the candidate is broken)."""
        for name in SUITES:
            if name not in self.suites:
                continue
            self.results[name] = on_suite(name, getattr(self, name))
            if name == "smoke" and self.results[name].status == "fail":
                break
        return self.results

    def restore(self) -> None:
        """Put the candidate back in its deploy shape (replicas, workers) so it can take live traffic."""
        deploy = self.settings.deploy
        pool = self.target.status().candidate
        if pool and pool.workers != deploy.workers:
            self.target.resize(deploy.workers, deploy.cpu_per_replica * deploy.workers, "candidate")
        self.target.scale(deploy.replicas, "candidate")

    def plan(self) -> capacity.CapacityPlan:
        curves = self.results.get("horizontal")
        if curves is None or not curves.steps:
            return capacity.CapacityPlan(notes=["the horizontal suite did not run: no curve to plan from"])
        first = self.gate.horizontal_replicas[0]
        per_replica = capacity.within_slo(curves.steps[f"replicas={first}"], self.settings.slo.p95_ms) / first
        efficiency = self.scaling.horizontal.efficiency[-1] if self.scaling.horizontal.efficiency else 1.0
        budget = self.settings.deploy.cpu_per_replica * self.settings.deploy.workers
        utilization_at_capacity = None
        slo = self.results.get("slo")
        if self.utilization is not None and slo and slo.rps and slo.measured.get("replicas"):
            # CPU per request from the slo run, times the per-replica capacity, over the budget.
            per_request = self.utilization * budget / (slo.rps / slo.measured["replicas"])
            utilization_at_capacity = per_request * per_replica / budget
        return capacity.plan(
            rps_per_replica_at_slo=per_replica,
            efficiency=efficiency,
            target_rps=self.gate.target_rps,
            cpu_budget=budget,
            utilization_at_slo=utilization_at_capacity,
        )


# ------------------------------------------------------------------------------------------------ the whole run
def history_file(target: Target, settings: StackConfig) -> HistoryFile:
    """Where the stack's promotion history lives: beside the local target's state, else under .work/<stack>."""
    base = getattr(target, "dir", None) or stack_dir(settings)
    return HistoryFile(Path(base) / "history.json")


def run_gate(
    target: Target,
    settings: StackConfig,
    candidate_tag: str,
    steps: Steps,
    suites: tuple[str, ...] = SUITES,
    promote: bool = True,
    reports: Path | None = None,
) -> Summary:
    """Deploy the candidate beside the live version, run the suites on it, decide, write the outputs, and promote
    (or tear the candidate down). Returns the summary; its exit_status is the process's."""
    reports = reports or PROJECT_ROOT / "reports"
    started = time.time()
    live = target.status()
    histories = history_file(target, settings)
    history = reconcile(histories, live.bento)
    baseline_path = baseline_summary(history, live.bento)
    candidate = describe(candidate_tag)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + candidate.tag.split(":")[-1][:8]
    run_dir = reports / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if live.candidate is not None:
        with steps.step(f"removing a leftover candidate ({live.candidate.bento})"):
            target.remove_candidate()
    deploy = settings.deploy
    gate = GateRun(
        target=target,
        settings=settings,
        candidate=candidate,
        run_dir=run_dir,
        suites=suites,
        baseline=read_summary(baseline_path) if baseline_path else None,
    )
    try:
        with steps.step(f"deploying candidate {candidate.tag} beside live {live.bento}") as note:
            if hasattr(target, "progress"):  # drivers that report progress take the spinner's callback
                target.progress = note
            target.deploy_candidate(candidate.tag, deploy.replicas, deploy.workers)

        def on_suite(name: str, suite: Callable[[], SuiteResult]) -> SuiteResult:
            with steps.step(f"suite {name}") as note:
                gate.note = note
                result = suite()
            colour = {"pass": "green", "fail": "red"}.get(result.status, "yellow")
            steps.console.print(f"    [{colour}]{result.status}[/]: {result.reason}", highlight=False)
            return result

        results = gate.run_suites(on_suite)
        verdict, exit_status, reason = decide(results)
        summary = Summary(
            run_id=run_id, verdict=verdict, exit_status=int(exit_status), reason=reason, candidate=candidate.tag,
            baseline=live.bento, baseline_summary=str(baseline_path) if baseline_path else None, target=target.name,
            stack=settings.stack, started=started, finished=time.time(), suites=results, scaling=gate.scaling,
            capacity_plan=gate.plan(), settings=settings.model_dump(mode="json"),
            cpu_budgets=getattr(getattr(target, "budgets", None), "reason", ""),
        )  # fmt: skip
        summary_path = write_summary(run_dir, summary)
        if verdict == "promote" and promote:
            with steps.step("restoring the candidate to its deploy shape"):
                gate.restore()
            with steps.step(f"promoting {candidate.tag}: switching traffic, draining {live.bento}"):
                switch(target, histories, "promote", candidate.tag, str(summary_path))
            summary.promoted = True
            summary_path = write_summary(run_dir, summary)
        else:
            with steps.step("removing the candidate (live version untouched)"):
                target.remove_candidate()
    except BaseException:
        status = target.status()
        if status.candidate is not None and status.candidate.bento == candidate.tag and status.bento != candidate.tag:
            target.remove_candidate()
        raise
    render_report(summary, run_dir)
    point_latest(reports, run_dir)
    return summary
