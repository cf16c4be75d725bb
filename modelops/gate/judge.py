"""The verdict rules: pure functions from a suite's measured figures and the thresholds to its SuiteResult.

No I/O, no clock: every rule is unit-tested in milliseconds with fixed inputs (tests/modelops/gate/test_judge.py).
A suite is *inconclusive* — never silently a pass or a fail — when what it measured was not the candidate (the load
generator or the machine was the limit), when it measured too little, or when a capacity it needs is only known as a
lower bound on the side that matters.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from modelops.bench.noise import Goal, spread
from modelops.gate import quality_tests, rounds
from modelops.gate.capacity import Curve, Limits, distortion, matched, read_curve
from modelops.gate.endurance_judge import growing_memory
from modelops.gate.loadgen import LoadResult
from modelops.gate.suites import (
    AutoscaleRun,
    FailoverRun,
    QualityRun,
    Retries,
    RobustnessRun,
    SloRun,
    SmokeRun,
    Sweep,
    cpu_window,
)
from modelops.gate.summary import SuiteResult, Summary
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
    # The cache answers repeated rows from memory: a run with it on (or larger, or with rows drawn otherwise) measured
    # something else than one without.
    ("cache", "enabled"),
    ("cache", "max_entries"),
    ("cache", "ttl_s"),
    ("gate", "zipf_s"),
    ("gate", "distinct_rows"),
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
    """Every request answered (golden checks included: an error on one is a failed request), and the golden rows
    answered right: their labels are the data's truth, every answer to them is counted, and the rule is
    quality_tests.golden_answers (one model served, better than a constant answer, not below the accuracy floor)."""
    result = run.result
    figures = _figures(result)
    if result.failures:
        first = next(iter(result.failure_messages), "?")
        reason = f"{result.failures} of {result.requests} requests failed (first: {first})"
        return SuiteResult(status="fail", reason=reason, **figures)
    if run.golden and not result.golden_checks:
        return SuiteResult(status="inconclusive", reason="the golden rows were never checked", **figures)
    measured: dict[str, float | None] = {"golden_checks": float(result.golden_checks)}
    checked = "the bento declares no golden examples: responses checked for shape only"
    if run.golden:
        golden = quality_tests.golden_answers(result.golden_answers, run.golden_labels, gate.quality_min_accuracy,
                                              gate.quality_confidence)  # fmt: skip
        measured |= golden.figures
        if golden.status != "pass":
            return SuiteResult(status=golden.status, reason=f"golden rows: {golden.reason}", measured=measured,
                               **figures)  # fmt: skip
        checked = f"golden rows checked {result.golden_checks} times against their true labels: {golden.reason}"
    doubt = _few(result, min(gate.min_requests, 20)) or _distorted(result, limits)
    if doubt:
        return SuiteResult(status="inconclusive", reason=doubt, measured=measured, **figures)
    return SuiteResult(
        status="pass",
        reason=f"{result.requests} requests well-formed; {checked}",
        measured=measured,
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
    measured["compared_users"] = float(sweep.compared_users) if sweep.compared_users else None
    measured["rounds"] = float(len(sweep.rounds))
    measured["seconds"] = sweep.seconds or None
    return {
        "thresholds": threshold,
        "measured": measured,
        "steps": {c.label: c.steps for c in sweep.curves},
        "locust_reports": sweep.reports,
        "rps": sweep.curves[-1].capacity if sweep.curves else None,
        "cpu": sweep.cpu,
        "rounds": [{label: c.steps for label, c in r.items()} for r in sweep.rounds],
        "within_slo": {c.label: c.within for c in sweep.curves},
    }


def _cut_by_distortion(curve: Curve) -> bool:
    """The usable part of ``curve`` ended at a step that measured the machine or the generator, not the candidate."""
    return curve.within < len(curve.steps) and bool(curve.steps[curve.within].distorted)


def peak_ratio(sweep: Sweep, scales: list[float]) -> list[float | None]:
    """Each larger configuration's best throughput within the SLO against the smallest's, scaled like its ratio."""
    first = sweep.curves[0].capacity
    return [c.capacity / (scale * first) if first else None
            for c, scale in zip(sweep.curves[1:], scales, strict=True)]  # fmt: skip


def _users(base: int, value: int, first: int) -> int:
    """A configuration's users at a step of ``base`` users of the first one (as Suites.step_spec scales them)."""
    return max(1, round(base * value / first))


def _judge_scaling(
    name: str, figure: str, sweep: Sweep, minimum: float, scales: list[float], bounds: list[float], common: dict,
    budgets: CpuBudgets, slo: SloSettings, tolerance: float,
) -> SuiteResult:  # fmt: skip
    """Shared by horizontal and vertical. Round 1 (whole step plans): every curve needs a step within the SLO, and a
    larger configuration must not fail requests where the smallest served cleanly. Then each larger configuration's
    ratio at the compared step (the smallest's most loaded step within the SLO), over every round, with its
    interval (modelops/gate/rounds.py): pass or fail only when the whole interval is on one side of ``minimum``,
    inconclusive when it straddles it or lies wholly above the physical bound (by more than ``tolerance``, a
    fraction of it). Finally the best throughput within the SLO must have grown as much (a smaller configuration
    starved past its knee at the compared step must not make a larger one look like it scales)."""
    first, base = sweep.curves[0], sweep.values[0]
    measured = common["measured"]
    notes = [f"{c.label} {c.ended}" for c in sweep.curves if c.ended] + sweep.retried
    best = "best within the SLO: " + ", ".join(f"{c.label} {c.capacity:.0f}" for c in sweep.curves) + " good req/s"
    # The first configuration's curve is the capacity: without a step within the SLO there is none. A larger one is
    # judged at the compared step over every round below (one round's breach there may be the machine's).
    dead = [c for c in sweep.curves[:1] if c.no_clean_step or c.no_slo_step]
    dead += [c for c in sweep.curves[1:] if c.no_clean_step]
    if dead:
        reasons = "; ".join(
            f"{c.label}: {c.no_slo_step} (the SLO's p95 is {slo.p95_ms:g} ms, p99 {slo.p99_ms:g} ms)"
            if c.no_slo_step
            else f"{c.label}: no clean step, {c.ended}"
            for c in dead
        )
        return SuiteResult(status="fail", reason=f"{reasons}: no throughput the SLO allows", **common)
    if len(sweep.curves) < len(sweep.values):
        # The sweep stops after a first configuration with no usable step; if that was not the candidate's fault (a
        # starved generator, a full machine: the curve's ``unknown``), there is nothing to judge either way.
        why = first.unknown or first.ended or "no step to compare at"
        return SuiteResult(
            status="inconclusive",
            reason=f"{first.label} measured no usable step ({why}): the other {sweep.unit} were not compared",
            **common,
        )
    round1 = [(v, matched(first, c, scale, slo))
              for v, c, scale in zip(sweep.values[1:], sweep.curves[1:], scales, strict=True)]  # fmt: skip
    failing = [m.failing for _, m in round1 if m.failing]
    if failing:
        return SuiteResult(status="fail", reason=f"{'; '.join(failing)} ({best})", **common)
    if not budgets.enforced:
        return SuiteResult(
            status="inconclusive",
            reason=f"CPU budgets are off ({budgets.note}): the {sweep.unit} share the machine's cores, so the "
            f"{figure} measured CPU contention, not the candidate ({best})",
            **common,
        )
    unknown = [f"{value} {sweep.unit}: {m.unknown}" for value, m in round1 if m.value is None]
    if unknown or sweep.compared_users is None:
        why = "; ".join(unknown) or "no step of the first configuration met the SLO"
        return SuiteResult(status="inconclusive", reason=f"nothing comparable: {why}", **common)
    verdicts: list[tuple[str, str]] = []
    compared = sweep.compared_users
    for value, curve, scale, bound in zip(sweep.values[1:], sweep.curves[1:], scales, bounds, strict=True):
        pair = rounds.paired(sweep.rounds, first.label, curve.label, compared, _users(compared, value, base), slo)
        if pair.failing:
            verdicts.append(("fail", f"{pair.failing} where {first.label} served {compared} users cleanly"))
            continue
        users = _users(compared, value, base)
        if pair.b and len(pair.b_misses) == len(pair.b):
            verdicts.append(("fail", f"{curve.label} broke the latency SLO at {users} users in every round, where "
                                     f"{first.label} met it at {compared} ({'; '.join(pair.b_misses)})"))  # fmt: skip
            continue
        estimate = rounds.rps_ratio(pair, scale, Goal.at_least(minimum))
        key = "ratio" if sweep.unit == "workers" else f"efficiency_{value}"
        if estimate is None:
            verdicts.append(("inconclusive", f"{value} {sweep.unit}: a round served no good answer at the compared "
                                             "step"))  # fmt: skip
            continue
        measured[key], measured[f"{key}_low"], measured[f"{key}_high"] = estimate.value, estimate.low, estimate.high
        status, text = rounds.judge_ratio(f"{figure}({value})", estimate, minimum, bound, tolerance)
        extra = pair.dropped + pair.slo_misses + [f"{curve.label} {m}" for m in pair.b_misses]
        verdicts.append((status, text + (f" ({'; '.join(extra)})" if extra else "")))
    where = f"at {compared} users per {base} {sweep.unit}"
    text = "; ".join(t for _, t in verdicts) + f", {where} ({best})" + (f"; {'; '.join(notes)}" if notes else "")
    if any(status == "fail" for status, _ in verdicts):
        return SuiteResult(status="fail", reason=f"{text}: below {name} {minimum:g}", **common)
    # A curve cut short by a distorted step (a starved generator, a full machine) has only a lower bound for its
    # best throughput: its peak proves nothing either way.
    cut = [c.label for c in sweep.curves if _cut_by_distortion(c)]
    flat = [f"{value} {sweep.unit}: {peak:.2f}"
            for value, curve, peak in zip(sweep.values[1:], sweep.curves[1:], peak_ratio(sweep, scales), strict=True)
            if peak and peak < minimum and not (cut and (curve.label in cut or first.label in cut))]  # fmt: skip
    if flat:
        reason = f"{text}: the best throughput within the SLO did not grow as much ({', '.join(flat)}, below {name} "
        reason += f"{minimum:g})"
        return SuiteResult(status="fail", reason=reason, **common)
    if any(status == "inconclusive" for status, _ in verdicts):
        return SuiteResult(status="inconclusive", reason=text, **common)
    return SuiteResult(status="pass", reason=text, **common)


def judge_horizontal(sweep: Sweep, gate: GateSettings, slo: SloSettings, budgets: CpuBudgets) -> SuiteResult:
    """E(N) = good req/s of N replicas at N x the users / (N x one replica's): at most 1 (the physical bound)."""
    first, base = sweep.curves[0], sweep.values[0]
    # strict=False: a sweep whose first configuration met the SLO at no step measured no other (it fails on that).
    measured: dict[str, float | None] = {
        f"rps_{n}": c.capacity for n, c in zip(sweep.values, sweep.curves, strict=False)
    }
    measured[f"efficiency_{base}"] = 1.0
    measured |= {f"efficiency_{n}": None for n in sweep.values[1:]}
    if first.capacity and budgets.enforced:
        # The best throughput of one replica within the SLO under this plan (history: what the summary records).
        measured["capacity_per_replica"] = first.capacity / base
    common = _sweep_common(
        sweep, {"min_efficiency": gate.min_efficiency, "bound_tolerance": gate.bound_tolerance}, measured
    )
    scales = [n / base for n in sweep.values[1:]]
    return _judge_scaling("min_efficiency", "E", sweep, gate.min_efficiency, scales, [1.0] * len(scales), common,
                          budgets, slo, gate.bound_tolerance)  # fmt: skip


def judge_vertical(sweep: Sweep, gate: GateSettings, slo: SloSettings, budgets: CpuBudgets) -> SuiteResult:
    """RPS(w workers, w x the CPU) / RPS(first) at matched users per worker: at most w / first (the bound)."""
    measured: dict[str, float | None] = {"ratio": None}
    measured |= {f"rps_{w}": c.capacity for w, c in zip(sweep.values, sweep.curves, strict=False)}
    common = _sweep_common(
        sweep, {"min_vertical_ratio": gate.min_vertical_ratio, "bound_tolerance": gate.bound_tolerance}, measured
    )
    scales = [1.0] * (len(sweep.values) - 1)
    bounds = [w / sweep.values[0] for w in sweep.values[1:]]
    return _judge_scaling("min_vertical_ratio", "ratio", sweep, gate.min_vertical_ratio, scales, bounds, common,
                          budgets, slo, gate.bound_tolerance)  # fmt: skip


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
JUDGED_FIRST = ("quality_data", "production")  # the sets that, when present, decide (the held-out sets then inform)


def judge_quality(run: QualityRun, gate: GateSettings) -> SuiteResult:
    """The candidate's answers on labelled rows, against the truth and against the live version on the same rows;
    and, on the live version's recent logged traffic, against what it answered.

    Which labelled rows decide: gate.quality_data and labelled production rows (at least quality_min_labelled) when
    there are any — they are what production sees now. Otherwise the held-out sets the two models kept at training:
    the candidate's own (rows it never saw; the live version may have trained on some of them, which makes the test
    stricter for the candidate, never laxer) and the live version's (rows it was promoted on: a candidate trained on
    relabelled or shuffled data is confidently worse there). If production has moved away from the live version's
    held-out rows, labelled production rows or gate.quality_data are how to judge on what production sees now.

    Rules on the deciding sets (modelops/gate/quality_tests.py): paired — McNemar (classification) or a paired
    bootstrap of the absolute error (regression), margin quality_max_accuracy_drop, the confidence shared across the
    sets compared (Bonferroni); alone — better than a constant answer, and the floor quality_min_accuracy (not on the
    live version's held-out set); the served model must be right on its own held-out rows as often as it was at
    training. Agreement on logged traffic fails only when no labelled rows show the candidate within the margin.
    Any rule failing fails the suite; else any inconclusive makes it inconclusive."""
    limits = QualityThresholds(min_rows=gate.quality_min_rows, min_agreement=gate.quality_min_agreement,
                               min_labelled=gate.quality_min_labelled,
                               max_accuracy_drop=gate.quality_max_accuracy_drop)  # fmt: skip
    thresholds = {k: float(v) for k, v in asdict(limits).items()}
    thresholds |= {"confidence": gate.quality_confidence, "min_accuracy": gate.quality_min_accuracy}
    if run.error is not None:
        reason = f"the replay to the candidate failed: {run.error}"
        return SuiteResult(status="inconclusive", reason=reason, thresholds=thresholds)
    outcomes, notes = _labelled_outcomes(run, gate)
    measured: dict[str, float | None] = {}
    if run.figures is not None:
        measured |= {k: (float(v) if v is not None else None) for k, v in asdict(run.figures).items()}
    for name, outcome in outcomes:
        measured |= {f"{name}.{k}": v for k, v in outcome.figures.items()}
    paired_pass = any(o.status == "pass" and name.endswith("paired") for name, o in outcomes)
    logged = run.figures.rows if run.figures is not None else 0
    if run.figures is not None and logged >= gate.quality_min_rows and run.figures.agreement is not None:
        agreement = run.figures.agreement
        if agreement < gate.quality_min_agreement and not paired_pass:
            reason = (f"the candidate agrees with the live version on {agreement:.1%} of {logged} recent rows "
                      f"(minimum {gate.quality_min_agreement:.0%}) and no labelled rows show it within the margin: "
                      "send feedback labels, or name labelled rows with modelops:gate.quality_data")  # fmt: skip
            outcomes.append(("agreement", quality_tests.Outcome("fail", reason, {})))
        else:
            outcomes.append(("agreement", quality_tests.Outcome("pass", f"agreement {agreement:.1%} on {logged} "
                                                                "recent rows", {})))  # fmt: skip
    elif not outcomes:
        if logged == 0:
            where = f"of {run.live_model} logged in {run.log_dir}" if run.live_model else "logged"
            reason = f"no labelled rows and no production traffic {where}: nothing to judge answers on"
            return SuiteResult(status="skipped", reason=reason, thresholds=thresholds, measured=measured)
        reason = (
            f"{logged} logged rows replayed, fewer than {gate.quality_min_rows}, and no labelled rows: log more "
            "production traffic (modelops:monitor.log_sample_rate) or name labelled rows (gate.quality_data)"
        )
        return SuiteResult(status="inconclusive", reason=reason, thresholds=thresholds, measured=measured)
    for status in ("fail", "inconclusive"):
        chosen = [f"{name}: {o.reason}" for name, o in outcomes if o.status == status]
        if chosen:
            return SuiteResult(status=status, reason="; ".join(chosen + notes), requests=logged,
                               thresholds=thresholds, measured=measured)  # fmt: skip
    reason = "; ".join([f"{name}: {o.reason}" for name, o in outcomes] + notes)
    return SuiteResult(status="pass", reason=reason, requests=logged, thresholds=thresholds, measured=measured)


Rules = list[tuple[str, quality_tests.Outcome]]


def _labelled_outcomes(run: QualityRun, gate: GateSettings) -> tuple[Rules, list[str]]:
    """(rule name, outcome) for every rule on the deciding labelled sets, and notes on what was not judged."""
    notes: list[str] = []
    first = []
    for answered in run.sets:
        source = answered.labelled.source
        if source == "production" and len(answered.labelled.rows) < gate.quality_min_labelled:
            notes.append(f"{answered.labelled.name}: fewer than {gate.quality_min_labelled}, not judged yet")
        elif source in JUDGED_FIRST:
            first.append(answered)
    holdouts = [a for a in run.sets if a.labelled.source in ("candidate_holdout", "live_holdout")]
    deciding = first or holdouts
    if first and holdouts:
        notes.append("the held-out sets were not judged: labelled rows of what production sees decide")
    paired = [a for a in deciding if a.live is not None]
    if deciding and not paired:
        notes.append("no live answers to compare with (its model is not in this store, or takes other features): "
                     "the candidate was judged alone")  # fmt: skip
    confidence = 1 - (1 - gate.quality_confidence) / max(1, len(paired))
    out: Rules = []
    for answered in deciding:
        source = answered.labelled.source
        if answered.live is not None:
            if answered.regression:
                outcome = quality_tests.paired_regression(answered.errors(answered.candidate),
                                                          answered.errors(answered.live),
                                                          gate.quality_max_accuracy_drop, confidence)  # fmt: skip
            else:
                outcome = quality_tests.paired_classification(answered.right(answered.candidate),
                                                              answered.right(answered.live),
                                                              gate.quality_max_accuracy_drop, confidence)  # fmt: skip
            out.append((f"{source}.paired", _named(outcome, answered.labelled.name)))
        if source == "live_holdout" or answered.regression:
            continue
        right = sum(answered.right(answered.candidate))
        constant = quality_tests.better_than_constant(right, answered.labelled.labels, gate.quality_confidence)
        out.append((f"{source}.constant", _named(constant, answered.labelled.name)))
        if gate.quality_min_accuracy > 0:
            floor = quality_tests.accuracy_floor(right, len(answered.labelled.labels), gate.quality_min_accuracy,
                                                 gate.quality_confidence)  # fmt: skip
            out.append((f"{source}.floor", _named(floor, answered.labelled.name)))
    for answered in run.sets:
        recorded = answered.labelled.recorded_right
        if answered.labelled.source != "candidate_holdout" or recorded is None or answered.regression:
            continue
        served = sum(answered.right(answered.candidate))
        n = len(answered.labelled.rows)
        said = f"served answers right on {served} of {n} held-out rows; the model was right on {recorded} at training"
        status: quality_tests.Status = "fail" if served < recorded else "pass"
        if status == "fail":
            said += ": the bento does not serve the model as it was trained (feature order? another model?)"
        out.append(("candidate_holdout.as_trained", quality_tests.Outcome(status, said, {"served_right": float(served),
                    "recorded_right": float(recorded), "rows": float(n)})))  # fmt: skip
    return out, notes


def _named(outcome: quality_tests.Outcome, name: str) -> quality_tests.Outcome:
    return quality_tests.Outcome(outcome.status, f"on {name}, {outcome.reason}", outcome.figures)


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


def history_note(baseline: Summary | None, settings: dict, budgets_note: str) -> tuple[str, float | None]:
    """What the summary stored when the live version was promoted said, for the record: history, not the reference
    (it was measured in another run, under that minute's machine load; comparing with it lets each promotion lose
    up to the margin, and the losses compound)."""
    if baseline is None:
        return "", None
    horizontal = baseline.suites.get("horizontal")
    stored = horizontal.measured.get("capacity_per_replica") if horizontal else None
    differ = settings_differences(settings, baseline.settings)
    if baseline.cpu_budgets != budgets_note:
        differ.append(f"CPU budgets {budgets_note!r} vs {baseline.cpu_budgets!r}")
    text = f"history: the live version's gate run {baseline.run_id} stored "
    text += f"{stored:.0f} good req/s per replica" if stored else "no capacity per replica"
    text += f" (under other settings: {'; '.join(differ)})" if differ else ""
    return text + "; not the reference", stored


def judge_regression(
    sweep: Sweep | None, gate: GateSettings, slo: SloSettings, history: str = "", unmeasurable: str | None = None
) -> SuiteResult:
    """The candidate against the live version measured in the same gate run: the live bento on fresh processes of its
    own, interleaved with the candidate's in the horizontal suite's rounds, one replica each at the deploy shape, at
    the compared step (the most loaded step at which one candidate replica met the SLO: requests in flight, not the
    slo suite's light load). Good req/s and p95 per round, each ratio judged on its interval over the rounds."""
    thresholds = {"max_rps_drop": gate.regression_max_rps_drop, "max_p95_rise": gate.regression_max_p95_rise,
                  "min_p95_rise_ms": gate.regression_min_p95_rise_ms}  # fmt: skip
    tail = f"; {history}" if history else ""
    if unmeasurable is not None:
        return SuiteResult(status="inconclusive", reason=unmeasurable + tail, thresholds=thresholds)
    if sweep is None:
        reason = "the live version is measured beside the candidate in the horizontal suite's rounds: run it too"
        return SuiteResult(status="inconclusive", reason=reason + tail, thresholds=thresholds)
    if sweep.reference is None or sweep.compared_users is None or not sweep.curves:
        reason = "the candidate met the SLO at no step of its 1-replica curve: there is no load to compare it at"
        return SuiteResult(status="inconclusive", reason=reason + tail, thresholds=thresholds)
    mine = sweep.curves[0].label
    users = sweep.compared_users
    pair = rounds.paired(sweep.rounds, rounds.LIVE + mine, mine, users, users, slo)
    capacity = rounds.rps_ratio(pair, 1.0, Goal.at_least(1 - gate.regression_max_rps_drop))
    latency = rounds.p95_ratio(pair, Goal.at_most(1 + gate.regression_max_p95_rise))
    common: dict = {"thresholds": thresholds,
                    "rounds": [{k: c.steps for k, c in r.items() if k in (mine, rounds.LIVE + mine)}
                               for r in sweep.rounds]}  # fmt: skip
    if pair.failing:
        return SuiteResult(status="fail", reason=f"{pair.failing} where the live version did not{tail}", **common)
    if capacity is None or latency is None:
        why = "; ".join(pair.dropped) or "a round measured no good answer at the compared step"
        return SuiteResult(status="inconclusive", reason=f"nothing comparable: {why}{tail}", **common)
    rise_ms = spread([float((b.p95_ms or 0) - (a.p95_ms or 0)) for a, b in zip(pair.a, pair.b, strict=True)],
                     Goal.at_most(gate.regression_min_p95_rise_ms))  # fmt: skip
    median = statistics.median
    measured: dict[str, float | None] = {
        "compared_users": float(users),
        "rounds": float(capacity.rounds),
        "capacity_ratio": capacity.value,
        "capacity_ratio_low": capacity.low,
        "capacity_ratio_high": capacity.high,
        "capacity_drop": 1 - capacity.value,
        "rps": median(s.rps for s in pair.b),
        "live_rps": median(s.rps for s in pair.a),
        "p95_ms": median(float(s.p95_ms or 0) for s in pair.b),
        "live_p95_ms": median(float(s.p95_ms or 0) for s in pair.a),
        "p95_rise": latency.value - 1,
        "p95_rise_low": latency.low - 1,
        "p95_rise_high": latency.high - 1,
        "p95_rise_ms": rise_ms.value,
    }
    common["measured"] = measured
    cap_status, cap_text = rounds.judge_ratio("good req/s candidate/live", capacity, 1 - gate.regression_max_rps_drop,
                                              None)  # fmt: skip
    limit = 1 + gate.regression_max_p95_rise
    lat_text = rounds.describe("p95 candidate/live", latency) + f", {rise_ms.value:+.0f} ms"
    if latency.low > limit and rise_ms.low > gate.regression_min_p95_rise_ms:
        lat_status = "fail"
        lat_text += (f": p95 rose by more than {gate.regression_max_p95_rise:.0%} and "
                     f"{gate.regression_min_p95_rise_ms:g} ms in every resample")  # fmt: skip
    elif latency.high <= limit or rise_ms.high <= gate.regression_min_p95_rise_ms:
        lat_status = "pass"
    else:
        lat_status = "inconclusive"
        lat_text += (f": the interval contains the limit (+{gate.regression_max_p95_rise:.0%} and "
                     f"+{gate.regression_min_p95_rise_ms:g} ms)")  # fmt: skip
    where = f" at {users} users on one replica each, the live bento on fresh processes beside the candidate's"
    extra = pair.dropped + pair.slo_misses
    text = f"{cap_text}; {lat_text}{where}" + (f" ({'; '.join(extra)})" if extra else "") + tail
    if cap_status == "fail":
        text = f"capacity fell by more than {gate.regression_max_rps_drop:.0%}: {text}"
    statuses = {cap_status, lat_status}
    status = "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"
    return SuiteResult(status=status, reason=text, **common)


@dataclass(frozen=True)
class SloCapacity:
    """What the capacity plan needs from the suites."""

    per_replica_at_slo: float
    efficiency: float
    cpu_seconds_per_request: float | None
    exact: bool = True  # False: the curve still met the SLO at its last step, the capacity is a lower bound
    measured_at_users: int | None = None


def capacity_inputs(suites: dict[str, SuiteResult], slo: SloSettings, first_replicas: int) -> SloCapacity | None:
    """From the horizontal suite's 1-replica curve, read within the SLO (p95, p99 and errors): the plan never
    promises a load the candidate served only outside it."""
    horizontal = suites.get("horizontal")
    if horizontal is None or horizontal.status != "pass" or not horizontal.steps:
        return None
    label = f"replicas={first_replicas}"
    curve = read_curve(label, horizontal.steps.get(label, []), slo)
    efficiencies = [v for k, v in horizontal.measured.items()
                    if k.startswith("efficiency_") and k[11:].isdigit() and v is not None]  # fmt: skip
    lows = [v for k, v in horizontal.measured.items() if k.startswith("efficiency_") and k.endswith("_low") and v]
    slo_suite = suites.get("slo")
    return SloCapacity(
        per_replica_at_slo=curve.capacity / first_replicas,
        # The low end of the interval: the plan sizes for the scaling it can count on, not the median's luck.
        efficiency=min(lows) if lows else (efficiencies[-1] if efficiencies else 1.0),
        cpu_seconds_per_request=slo_suite.measured.get("cpu_seconds_per_request") if slo_suite else None,
        exact=curve.exact,
        measured_at_users=curve.last_within.users if curve.last_within else None,
    )


# ----------------------------------------------------------------------------------------- balancer retries
def judge_retries(name: str, result: SuiteResult, loads: list[Retries], gate: GateSettings) -> SuiteResult:
    """A retried request counts against the candidate: the balancer resent it because a replica dropped the
    connection, sent nothing, or timed out — a failed answer the client never saw. Recorded for every suite; more
    than gate.max_retried_ratio retries per request fails it. Not in failover: there the gate killed a replica
    itself, and the retries that save those requests are what the suite proves."""
    if not loads:
        return result
    known = [r for r in loads if r.retries is not None and r.redispatches is not None]
    measured = dict(result.measured)
    thresholds = {**result.thresholds, "max_retried_ratio": gate.max_retried_ratio}
    if not known:
        measured |= {"balancer_retries": None, "balancer_redispatches": None, "retried_ratio": None}
        return result.model_copy(update={"measured": measured, "thresholds": thresholds})
    retried = sum(r.retries or 0 for r in known)
    redispatched = sum(r.redispatches or 0 for r in known)
    counted = sum(r.requests for r in known)
    # Each retry attempt counts once: HAProxy counts an attempt resent to the same server in wretr and one sent to
    # another server (redispatch) in wredis.
    ratio = (retried + redispatched) / counted if counted else 0.0
    measured |= {"balancer_retries": float(retried), "balancer_redispatches": float(redispatched),
                 "retried_ratio": ratio}  # fmt: skip
    update: dict = {"measured": measured, "thresholds": thresholds}
    unknown = len(loads) - len(known)
    seen = f"the balancer retried {retried + redispatched} requests of {counted} ({ratio:.2%}: {retried} resent, "
    seen += f"{redispatched} redispatched)" + (f", and could not be asked for {unknown} load(s)" if unknown else "")
    if name != "failover" and ratio > gate.max_retried_ratio and result.status in ("pass", "inconclusive"):
        update |= {"status": "fail", "reason": f"{seen}, more than modelops:gate.max_retried_ratio "
                   f"{gate.max_retried_ratio:.2%}: a retry hides an answer a replica failed (dropped, empty or timed "
                   f"out); {result.status} otherwise: {result.reason}"}  # fmt: skip
    elif retried + redispatched or unknown:
        update["reason"] = f"{result.reason}; {seen}"
    return result.model_copy(update=update)
