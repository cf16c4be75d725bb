"""The verdict rules: pure functions from a suite's measured figures and the thresholds to its SuiteResult.

No I/O, no clock: every rule is unit-tested in milliseconds with fixed inputs (tests/modelops/gate/test_judge.py).
A suite is *inconclusive* — never silently a pass or a fail — when what it measured was not the candidate (the load
generator or the machine was the limit), when it measured too little, or when a capacity it needs is only known as a
lower bound on the side that matters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from modelops.gate.capacity import Limits, Matched, distortion, matched, within_slo
from modelops.gate.endurance_judge import growing_memory
from modelops.gate.loadgen import LoadResult
from modelops.gate.suites import (
    AutoscaleRun,
    FailoverRun,
    QualityRun,
    RobustnessRun,
    SloRun,
    SmokeRun,
    Sweep,
    cpu_window,
)
from modelops.gate.summary import SuiteResult, Summary
from modelops.monitor import quality
from modelops.monitor.quality import QualityThresholds
from modelops.targets.base import CpuBudgets
from stacks.config import GateSettings, SloSettings

# Settings that define what the gate measured: a baseline measured under others is not comparable.
COMPARABLE_SETTINGS = (
    ("deploy", "cpu_per_replica"),
    ("deploy", "workers"),
    ("deploy", "replicas"),
    ("gate", "target_rps"),
    ("gate", "users"),
    ("gate", "rows_per_request"),
    ("gate", "step_users"),
    ("gate", "step_seconds"),
    ("gate", "horizontal_replicas"),
)


def _timeline(result: LoadResult, label: str) -> list[dict]:
    return [{"t": round(t, 2), "rps": f.good_rps, "p95_ms": f.p95_ms, "label": label} for t, f in result.timeline()]


def _figures(result: LoadResult) -> dict:
    return {
        "rps": result.rps,
        "p50_ms": result.measured.p50_ms,
        "p95_ms": result.measured.p95_ms,
        "p99_ms": result.measured.p99_ms,
        "error_ratio": result.error_ratio,
        "requests": result.requests,
        "locust_reports": [f"{result.prefix}.html"],
        "timeline": _timeline(result, result.prefix),
        "cpu": [cpu_window(result.prefix, result)],
    }


def _distorted(result: LoadResult, limits: Limits, throttled: float | None = None) -> str | None:
    f = result.measured
    return distortion(f.generator_load, f.machine_idle, throttled, limits, f.generator_wait)


def _few(result: LoadResult, minimum: int) -> str | None:
    if result.requests < minimum:
        return f"only {result.requests} requests (modelops:gate.min_requests is {minimum})"
    return None


# --------------------------------------------------------------------------------------------------- smoke
def judge_smoke(run: SmokeRun, gate: GateSettings, limits: Limits) -> SuiteResult:
    result = run.result
    figures = _figures(result)
    if result.failures:
        first = next(iter(result.failure_messages), "?")
        reason = f"{result.failures} of {result.requests} requests failed (first: {first})"
        return SuiteResult(status="fail", reason=reason, **figures)
    if run.golden and not result.golden_checks:
        return SuiteResult(status="inconclusive", reason="the golden rows were never checked", **figures)
    doubt = _few(result, min(gate.min_requests, 20)) or _distorted(result, limits)
    if doubt:
        return SuiteResult(status="inconclusive", reason=doubt, **figures)
    checked = (
        f"golden rows answered with the model's own labels {result.golden_checks} times"
        if run.golden
        else "the bento declares no golden examples: responses checked for shape only"
    )
    return SuiteResult(
        status="pass",
        reason=f"{result.requests} requests well-formed; {checked}",
        measured={"golden_checks": float(result.golden_checks)},
        **figures,
    )


# ----------------------------------------------------------------------------------------------------- slo
def judge_slo(run: SloRun, slo: SloSettings, gate: GateSettings, limits: Limits) -> SuiteResult:
    result = run.result
    thresholds = {"p95_ms": slo.p95_ms, "p99_ms": slo.p99_ms, "max_error_ratio": slo.max_error_ratio,
                  "min_rps": slo.min_rps}  # fmt: skip
    seconds = result.measured.seconds
    measured: dict[str, float | None] = {
        "replicas": float(run.replicas),
        "workers": float(run.workers),
        "offered_rps_per_replica": gate.target_rps / run.replicas if run.replicas else None,
        "cpu_seconds_per_request": run.cpu_seconds / _all_requests(result) if run.cpu_seconds else None,
        "utilization": (run.cpu_seconds / (_wall(result) * run.replicas * run.cpu_budget))
        if run.cpu_seconds and run.replicas and run.cpu_budget
        else None,
        "throttled": run.throttled,
        "seconds": seconds,
        # Open-loop load: sends that left late (their latency counts from when they were due, so it is in the p95).
        "late_sends": float(result.measured.late_sends),
        "late_send_ratio": result.measured.late_ratio,
    }
    misses = []
    p95, p99 = result.measured.p95_ms, result.measured.p99_ms
    if p95 is not None and p95 > slo.p95_ms:
        misses.append(f"p95 {p95:.0f} ms > {slo.p95_ms:g} ms")
    if p99 is not None and p99 > slo.p99_ms:
        misses.append(f"p99 {p99:.0f} ms > {slo.p99_ms:g} ms")
    if result.error_ratio > slo.max_error_ratio:
        misses.append(f"error ratio {result.error_ratio:.2%} > {slo.max_error_ratio:.2%}")
    if result.rps < slo.min_rps:
        misses.append(f"{result.rps:.0f} good req/s < {slo.min_rps:g} req/s")
    common = {"thresholds": thresholds, "measured": measured, **_figures(result)}
    distorted = _distorted(result, limits, run.throttled)
    if distorted:
        also = f" (it also measured: {'; '.join(misses)})" if misses else ""
        return SuiteResult(status="inconclusive", reason=distorted + also, **common)
    few = _few(result, gate.min_requests)
    too_slow = result.rps < slo.min_rps
    if few and not too_slow:
        # Too few requests to judge, yet fast enough: a statistical fluke is possible. A candidate too slow to
        # serve the minimum request count is not a fluke, though: that is a fail (min_rps).
        return SuiteResult(status="inconclusive", reason=few, **common)
    if misses:
        return SuiteResult(status="fail", reason="; ".join(misses), **common)
    reason = f"p95 {p95:.0f} ms, p99 {p99:.0f} ms, {result.rps:.0f} good req/s, {result.failures} errors at "
    reason += f"{gate.users} users offering {gate.target_rps:g} req/s"
    return SuiteResult(status="pass", reason=reason, **common)


def _all_requests(result: LoadResult) -> int:
    return sum(w.ok + w.failed for w in result.windows) or 1


def _wall(result: LoadResult) -> float:
    if not result.windows:
        return 1.0
    return max(w.t for w in result.windows) + result.window_s - min(w.t for w in result.windows)


# ------------------------------------------------------------------------------------------------ scaling
def _sweep_common(sweep: Sweep, threshold: dict[str, float], measured: dict[str, float | None]) -> dict:
    for curve in sweep.curves:
        measured[f"knee_users_{curve.label.split('=')[-1]}"] = float(curve.knee_users) if curve.knee_users else None
    return {
        "thresholds": threshold,
        "measured": measured,
        "steps": {c.label: c.steps for c in sweep.curves},
        "locust_reports": sweep.reports,
        "rps": sweep.curves[-1].capacity if sweep.curves else None,
        "cpu": sweep.cpu,
    }


def peak_ratio(sweep: Sweep, scales: list[float]) -> list[float | None]:
    """Each larger configuration's best clean throughput against the smallest's, scaled like its matched ratio."""
    first = sweep.curves[0].capacity
    return [c.capacity / (scale * first) if first else None
            for c, scale in zip(sweep.curves[1:], scales, strict=True)]  # fmt: skip


def _judge_scaling(
    name: str, figure: str, results: list[tuple[int, Matched]], minimum: float, sweep: Sweep, common: dict,
    budgets: CpuBudgets, peaks: list[float | None],
) -> SuiteResult:  # fmt: skip
    """Shared by horizontal and vertical: each larger configuration against the smallest at matched load; and its
    best clean throughput must have grown as much (a smaller configuration starved past its knee at the compared
    step must not make a larger one look like it scales)."""
    notes = [f"{c.label} {c.ended}" for c in sweep.curves if c.ended] + sweep.retried
    parts = []
    for value, m in results:
        if m.value is not None:
            parts.append(f"{figure}({value})={m.value:.2f} at {m.at_users} users per {sweep.values[0]} {sweep.unit}")
    text = ", ".join(parts) + " (best clean: " + ", ".join(f"{c.label} {c.capacity:.0f}" for c in sweep.curves)
    text += " good req/s)" + (f"; {'; '.join(notes)}" if notes else "")
    dead = [c for c in sweep.curves if c.no_clean_step]
    if dead:
        reasons = "; ".join(f"{c.label}: no clean step, {c.ended}" for c in dead)
        return SuiteResult(status="fail", reason=f"{reasons}: no throughput the SLO allows", **common)
    failing = [m.failing for _, m in results if m.failing]
    if failing:
        return SuiteResult(status="fail", reason=f"{'; '.join(failing)} ({text})", **common)
    if not budgets.enforced:
        return SuiteResult(
            status="inconclusive",
            reason=f"CPU budgets are off ({budgets.note}): the {sweep.unit} share the machine's cores, so {text} "
            "measures CPU contention, not the candidate",
            **common,
        )
    unknown = [f"{value} {sweep.unit}: {m.unknown}" for value, m in results if m.value is None]
    if unknown:
        return SuiteResult(status="inconclusive", reason=f"nothing comparable: {'; '.join(unknown)}", **common)
    worst = min(m.value for _, m in results if m.value is not None)
    if worst < minimum:
        return SuiteResult(status="fail", reason=f"{text}: below {name} {minimum:g}", **common)
    flat = [f"{value} {sweep.unit}: {peak:.2f}" for (value, _), peak in zip(results, peaks, strict=True)
            if peak is not None and peak < minimum]  # fmt: skip
    if flat:
        reason = f"{text}: the best clean throughput did not grow as much ({', '.join(flat)}, below {name} {minimum:g})"
        return SuiteResult(status="fail", reason=reason, **common)
    return SuiteResult(status="pass", reason=text, **common)


def judge_horizontal(sweep: Sweep, gate: GateSettings, slo: SloSettings, budgets: CpuBudgets) -> SuiteResult:
    first, base = sweep.curves[0], sweep.values[0]
    results = [(n, matched(first, c, n / base, slo.max_error_ratio))
               for n, c in zip(sweep.values[1:], sweep.curves[1:], strict=True)]  # fmt: skip
    measured: dict[str, float | None] = {
        f"rps_{n}": c.capacity for n, c in zip(sweep.values, sweep.curves, strict=True)
    }
    measured[f"efficiency_{base}"] = 1.0
    measured |= {f"efficiency_{n}": m.value for n, m in results}
    if first.capacity and budgets.enforced:
        # What a later regression check compares with: the best clean throughput of one replica under this plan.
        measured["capacity_per_replica"] = first.capacity / base
    common = _sweep_common(sweep, {"min_efficiency": gate.min_efficiency}, measured)
    peaks = peak_ratio(sweep, [n / base for n in sweep.values[1:]])
    return _judge_scaling("min_efficiency", "E", results, gate.min_efficiency, sweep, common, budgets, peaks)


def judge_vertical(sweep: Sweep, gate: GateSettings, slo: SloSettings, budgets: CpuBudgets) -> SuiteResult:
    first = sweep.curves[0]
    results = [(w, matched(first, c, 1.0, slo.max_error_ratio))
               for w, c in zip(sweep.values[1:], sweep.curves[1:], strict=True)]  # fmt: skip
    last = results[-1][1].value
    measured: dict[str, float | None] = {"ratio": last}
    measured |= {f"rps_{w}": c.capacity for w, c in zip(sweep.values, sweep.curves, strict=True)}
    common = _sweep_common(sweep, {"min_vertical_ratio": gate.min_vertical_ratio}, measured)
    peaks = peak_ratio(sweep, [1.0] * (len(sweep.values) - 1))
    return _judge_scaling("min_vertical_ratio", "ratio", results, gate.min_vertical_ratio, sweep, common, budgets,
                          peaks)  # fmt: skip


# ------------------------------------------------------------------------------------------------ failover
def judge_failover(run: FailoverRun, gate: GateSettings, limits: Limits) -> SuiteResult:
    result = run.result
    thresholds = {"max_error_ratio": gate.failover_max_error_ratio, "max_detection_s": gate.failover_max_detection_s}
    measured: dict[str, float | None] = {"detection_s": run.down_after_s, "replicas": float(run.replicas),
                                         "workers": float(run.workers)}  # fmt: skip
    if run.killed is not None:
        measured["killed_at_s"] = run.killed.killed_at - result.started  # on the run's own clock, for the plot
    common = {"thresholds": thresholds, "measured": measured, **_figures(result)}
    if run.killed is None:
        return SuiteResult(status="inconclusive", reason="the load ended before a replica could be killed", **common)
    seen = (
        "never marked down by the balancer"
        if run.down_after_s is None
        else f"marked down {run.down_after_s:.2f} s after the kill"
    )
    text = f"killed {run.killed.name} of {run.replicas} mid-run: {result.failures} failed of {result.requests} "
    text += f"({result.error_ratio:.3%}); {seen}"
    if run.down_after_s is None or run.down_after_s > gate.failover_max_detection_s:
        return SuiteResult(status="fail", reason=f"{text} (limit {gate.failover_max_detection_s:g} s)", **common)
    if result.error_ratio > gate.failover_max_error_ratio:
        return SuiteResult(status="fail", reason=f"{text} (limit {gate.failover_max_error_ratio:.2%})", **common)
    doubt = _distorted(result, limits) or _few(result, gate.min_requests)
    if doubt:
        return SuiteResult(status="inconclusive", reason=f"{doubt} (it also measured: {text})", **common)
    return SuiteResult(status="pass", reason=text, **common)


# ------------------------------------------------------------------------------------------------- quality
def judge_quality(run: QualityRun, gate: GateSettings) -> SuiteResult:
    """The candidate's answers on the live version's recent production rows: agreement, and accuracy where
    feedback labels exist (the rules: modelops/monitor/quality.py)."""
    limits = QualityThresholds(min_rows=gate.quality_min_rows, min_agreement=gate.quality_min_agreement,
                               min_labelled=gate.quality_min_labelled,
                               max_accuracy_drop=gate.quality_max_accuracy_drop)  # fmt: skip
    thresholds = {k: float(v) for k, v in asdict(limits).items()}
    if run.error is not None or run.figures is None:
        reason = f"the replay to the candidate failed: {run.error}"
        return SuiteResult(status="inconclusive", reason=reason, thresholds=thresholds)
    if run.figures.rows == 0:
        reason = f"no production traffic of {run.live_model} logged in {run.log_dir}: nothing to judge answers on"
        return SuiteResult(status="skipped", reason=reason, thresholds=thresholds)
    verdict = quality.judge_quality(run.figures, limits)
    measured = {k: (float(v) if v is not None else None) for k, v in asdict(run.figures).items()}
    return SuiteResult(status=verdict.status, reason=verdict.reason, requests=run.figures.rows,
                       thresholds=thresholds, measured=measured)  # fmt: skip


# ----------------------------------------------------------------------------------------------- autoscale
def autoscale_timeline(run: AutoscaleRun) -> list[dict]:
    """Per second of the load: good req/s, p95 and the replicas in the pool (and serving) at that second; then the
    replica count alone while the pool returned to min_replicas after the load."""
    result = run.result
    if result is None:
        return []
    rows: list[dict] = []
    end = 0.0
    for t, f in result.timeline():
        seen = [r for r in run.replicas if r[0] - result.started <= t + 1]
        last = seen[-1] if seen else None
        end = t + 1
        rows.append(
            {"t": round(t, 2), "rps": f.good_rps, "p95_ms": f.p95_ms, "label": result.prefix,
             "replicas": last[1] if last else None, "serving": last[2] if last else None}
        )  # fmt: skip
    for at, count, serving in run.replicas:
        t = at - result.started
        if t > end:
            rows.append({"t": round(t, 2), "rps": 0.0, "p95_ms": None, "label": "after the load",
                         "replicas": count, "serving": serving})  # fmt: skip
    return rows


def judge_autoscale(run: AutoscaleRun, gate: GateSettings, limits: Limits) -> SuiteResult:
    """Pass when, across a ramp past one replica's capacity and back, every request succeeded, the pool scaled out
    within gate.autoscale_max_scale_out_s of the peak's start, and it was back at min_replicas after the cool-down."""
    if run.skipped is not None or run.result is None:
        return SuiteResult(status="skipped", reason=run.skipped or "the autoscale load did not run")
    result = run.result
    figures = {**_figures(result), "timeline": autoscale_timeline(run)}
    thresholds = {"max_scale_out_s": gate.autoscale_max_scale_out_s, "max_failed_requests": 0.0}
    peak = run.peak_started
    out_at = next(
        (t for t, _count, serving in run.replicas if peak is not None and t >= peak and serving > run.min_replicas),
        None,
    )
    most = max((count for _t, count, _serving in run.replicas), default=0)
    final = run.replicas[-1][1] if run.replicas else None
    ended = run.peak_ended
    back_at = None
    if final == run.min_replicas and ended is not None:
        # The start of the last run of samples at min_replicas: from then on the pool stayed there.
        for t, count, _serving in reversed(run.replicas):
            if count != run.min_replicas or t < ended:
                break
            back_at = t
    measured: dict[str, float | None] = {
        "min_replicas": float(run.min_replicas),
        "max_replicas": float(run.max_replicas),
        "most_replicas": float(most),
        "final_replicas": None if final is None else float(final),
        "scale_out_s": None if out_at is None or peak is None else out_at - peak,
        # when the autoscaler decided to scale out (the rest of scale_out_s is the new replica starting)
        "decided_out_s": next(
            (
                d["time"] - peak
                for d in run.decisions
                if peak is not None and d.get("time", 0) >= peak and d.get("to", 0) > d.get("from", 0)
            ),
            None,
        ),
        "back_to_min_s": None if back_at is None or ended is None else back_at - ended,
        "failed_requests": float(_all_failures(result)),
        "scaling_decisions": float(len(run.decisions)),
    }
    common = {"thresholds": thresholds, "measured": measured, **figures}
    failed = _all_failures(result)
    if failed:
        first = next(iter(result.failure_messages), "?")
        return SuiteResult(
            status="fail",
            reason=f"{failed} of {_all_requests(result)} requests failed across autoscaling (first: {first})",
            **common,
        )
    if run.min_replicas >= run.max_replicas:
        return SuiteResult(
            status="inconclusive",
            reason=f"min_replicas = max_replicas = {run.min_replicas}: nothing "
            "can scale; raise modelops:deploy.max_replicas",
            **common,
        )
    if peak is None or result.requests < gate.min_requests:
        why = "the peak never started" if peak is None else f"only {result.requests} requests"
        return SuiteResult(status="inconclusive", reason=f"{why}: the ramp did not run as planned", **common)
    if out_at is None:
        distorted = _distorted(result, limits)
        if distorted:
            return SuiteResult(status="inconclusive", reason=f"never scaled out, but {distorted}", **common)
        return SuiteResult(
            status="fail",
            reason=f"never scaled out above {run.min_replicas} replica(s) during the peak "
            f"of {gate.autoscale_users[1]} users: raise modelops:gate.autoscale_users past one replica's "
            "capacity, or lower modelops:autoscale.target",
            **common,
        )
    took = out_at - peak
    if took > gate.autoscale_max_scale_out_s:
        return SuiteResult(
            status="fail",
            reason=f"scaled out {took:.1f} s after the peak began, more than "
            f"modelops:gate.autoscale_max_scale_out_s {gate.autoscale_max_scale_out_s:g} s",
            **common,
        )
    if back_at is None:
        return SuiteResult(
            status="fail",
            reason=f"still at {final} replica(s), not min_replicas {run.min_replicas}, "
            "after the cool-down: check modelops:autoscale.scale_down_window_s and the decisions in "
            "`modelops status`",
            **common,
        )
    reason = (
        f"scaled out {run.min_replicas} -> {most} replicas, the first {took:.1f} s after the peak began; back "
        f"to {run.min_replicas} {back_at - (ended or back_at):.1f} s after it ended; 0 of "
        f"{_all_requests(result)} requests failed"
    )
    return SuiteResult(status="pass", reason=reason, **common)


def _all_failures(result: LoadResult) -> int:
    """Failed production requests over the whole run (warm-up and every phase: scaling must fail none)."""
    return result.figures(-math.inf, math.inf).failures


# ---------------------------------------------------------------------------------------------- robustness
def judge_robustness(run: RobustnessRun, gate: GateSettings, memory_limit_mb: float = math.inf) -> SuiteResult:
    """Correctness under hostile traffic, not speed: a starved generator does not excuse a failed request, so CPU
    distortion does not make this suite inconclusive; too few well-behaved requests does."""
    result = run.result
    hostile = result.figures(result.measured_from, result.measured_from + 1e9, kinds=("hostile",))
    fuzz = run.fuzz
    measured: dict[str, float | None] = {
        "good_requests": float(result.requests),
        "good_failures": float(result.failures),
        "hostile_requests": float(hostile.requests),
        "hostile_failures": float(hostile.failures),
        "fuzz_cases": float(fuzz.cases) if fuzz else None,
        "fuzz_server_errors": float(fuzz.server_errors) if fuzz else None,
        "replicas_lost": float(len(run.lost)),
    }
    common = {"thresholds": {"max_failures": 0.0}, "measured": measured, **_figures(result)}
    problems = []
    if result.failures:
        first = next((m for m in result.failure_messages if "hostile" not in m), "")
        problems.append(
            f"{result.failures} well-behaved requests failed beside hostile ones" + (f" ({first})" if first else "")
        )
    if hostile.failures:
        first = next((m for m in result.failure_messages if "hostile" in m), "")
        problems.append(f"{hostile.failures} hostile requests got a 5xx or a dropped connection ({first})")
    if fuzz and fuzz.server_errors:
        shown = "; ".join(fuzz.first_failures[:2])
        problems.append(f"schemathesis found {fuzz.server_errors} server error(s) in {fuzz.cases} cases ({shown})")
    if run.lost:
        problems.append(f"replicas died during the suite: {', '.join(run.lost)}")
    growing = growing_memory(run.memory, [result], gate, memory_limit_mb)
    if growing:
        problems.append(f"memory kept growing: {growing}")
    if problems:
        return SuiteResult(status="fail", reason="; ".join(problems), **common)
    if run.fuzz_error or fuzz is None or not fuzz.complete:
        why = run.fuzz_error or "it stopped before the end of its run"
        return SuiteResult(status="inconclusive", reason=f"the schema fuzzer did not finish: {why}", **common)
    few = _few(result, gate.min_requests)
    if few or not hostile.requests:
        return SuiteResult(status="inconclusive", reason=few or "no hostile request was sent", **common)
    text = f"{result.requests} well-behaved requests, 0 failed, beside {hostile.requests} hostile ones (none got a "
    text += f"5xx); schemathesis: {fuzz.cases} cases, 0 server errors; no replica lost"
    return SuiteResult(status="pass", reason=text, **common)


# ---------------------------------------------------------------------------------------------- regression
def settings_differences(mine: dict, theirs: dict) -> list[str]:
    out = []
    for section, key in COMPARABLE_SETTINGS:
        a = mine.get(section, {}).get(key)
        b = theirs.get(section, {}).get(key)
        if a != b:
            out.append(f"{section}.{key} {a} vs {b}")
    return out


def judge_regression(
    suites: dict[str, SuiteResult], settings: dict, budgets_note: str, baseline: Summary | None, gate: GateSettings
) -> SuiteResult:
    """Like with like: clean capacity per vCPU (the 1-replica curve) and p95 at the same offered load per replica,
    against the summary recorded when the live version was promoted."""
    if baseline is None:
        return SuiteResult(status="skipped", reason="no baseline: the live version was not promoted by a gate run")
    thresholds = {"max_rps_drop": gate.regression_max_rps_drop, "max_p95_rise": gate.regression_max_p95_rise,
                  "min_p95_rise_ms": gate.regression_min_p95_rise_ms}  # fmt: skip
    differ = settings_differences(settings, baseline.settings)
    if baseline.cpu_budgets != budgets_note:
        differ.append(f"CPU budgets {budgets_note!r} vs {baseline.cpu_budgets!r}")
    if differ:
        return SuiteResult(status="inconclusive", reason=f"settings differ: {'; '.join(differ)}", thresholds=thresholds)
    missing = []
    figures = {}
    for name, summary in (("candidate", suites), ("baseline", baseline.suites)):
        slo, horizontal = summary.get("slo"), summary.get("horizontal")
        per_replica = (
            horizontal.measured.get("capacity_per_replica") if horizontal and horizontal.status == "pass" else None
        )
        p95 = slo.p95_ms if slo and slo.status == "pass" else None
        if per_replica is None:
            missing.append(f"the {name}'s horizontal suite gave no clean 1-replica capacity")
        if p95 is None:
            missing.append(f"the {name}'s slo suite did not pass")
        figures[name] = (per_replica, p95)
    if missing:
        return SuiteResult(status="inconclusive", reason="; ".join(missing), thresholds=thresholds)
    (mine_cap, mine_p95), (base_cap, base_p95) = figures["candidate"], figures["baseline"]
    assert mine_cap is not None and base_cap is not None and mine_p95 is not None and base_p95 is not None
    drop = 1 - mine_cap / base_cap if base_cap else 0.0
    rise = mine_p95 / base_p95 - 1 if base_p95 else math.inf
    rise_ms = mine_p95 - base_p95
    measured: dict[str, float | None] = {
        "capacity_per_replica": mine_cap,
        "baseline_capacity_per_replica": base_cap,
        "capacity_drop": drop,
        "p95_ms": mine_p95,
        "baseline_p95_ms": base_p95,
        "p95_rise": rise,
        "p95_rise_ms": rise_ms,
    }
    text = f"clean capacity per replica {mine_cap:.0f} vs {base_cap:.0f} good req/s ({-drop:+.0%}); "
    text += f"p95 at the same offered load {mine_p95:.0f} vs {base_p95:.0f} ms ({rise:+.0%}, {rise_ms:+.0f} ms)"
    misses = []
    if drop > gate.regression_max_rps_drop:
        misses.append(f"capacity fell by more than {gate.regression_max_rps_drop:.0%}")
    if rise > gate.regression_max_p95_rise and rise_ms > gate.regression_min_p95_rise_ms:
        misses.append(
            f"p95 rose by more than {gate.regression_max_p95_rise:.0%} and {gate.regression_min_p95_rise_ms:g} ms"
        )
    status = "fail" if misses else "pass"
    reason = text + (f": {'; '.join(misses)}" if misses else "")
    return SuiteResult(status=status, reason=reason, thresholds=thresholds, measured=measured)


@dataclass(frozen=True)
class SloCapacity:
    """What the capacity plan needs from the suites."""

    per_replica_at_slo: float
    efficiency: float
    cpu_seconds_per_request: float | None


def capacity_inputs(suites: dict[str, SuiteResult], p95_ms: float, first_replicas: int) -> SloCapacity | None:
    horizontal = suites.get("horizontal")
    if horizontal is None or horizontal.status != "pass" or not horizontal.steps:
        return None
    curve = horizontal.steps.get(f"replicas={first_replicas}", [])
    efficiencies = [v for k, v in horizontal.measured.items() if k.startswith("efficiency_") and v is not None]
    slo = suites.get("slo")
    return SloCapacity(
        per_replica_at_slo=within_slo(curve, p95_ms) / first_replicas,
        efficiency=efficiencies[-1] if efficiencies else 1.0,
        cpu_seconds_per_request=slo.measured.get("cpu_seconds_per_request") if slo else None,
    )
