"""The canary after a promote verdict: live traffic moves to the candidate in steps, each step judged on live metrics,
and a breach rolls it back on its own (the candidate's share back to 0, the candidate removed, the live pool
untouched all along).

Steps and thresholds are ``modelops:canary`` (stacks/config.py). Every step shifts the candidate's share of live
traffic with :meth:`Target.shift` (HAProxy's runtime weights locally), then judges it in *intervals* of live traffic,
candidate colour against live colour over the same time, with statistics (modelops/canary_stats.py): Fisher's exact
test on error proportions and Mann-Whitney U on the latency distributions, each gated by a practical threshold
(``max_error_ratio``; ``max_p95_rise`` and ``min_p95_rise_ms``). An interval lasts until both colours served the
requests the tests' power needs (or ``window_s`` is up); it is looked at every ``check_interval_s`` and a clear
failure ends it early. Alerts that started firing (with Prometheus) and the platform's alarms fail an interval too.

- a **failed** interval counts against ``failure_limit``: one more than the limit rolls back (as Argo Rollouts'
  ``failureLimit`` and Flagger's ``threshold``);
- an **inconclusive** interval (missing data: a colour's latencies could not be read, HAProxy's stats could not be
  read, too few requests in ``window_s``) pauses the step — it does not advance — and counts against
  ``inconclusive_limit``: one more rolls back. Missing data is never a pass and never silently drops a rule;
- a step advances after ``intervals_per_step`` passed intervals.

The 100 % step is not judged here: :func:`run_canary` hands it to ``complete`` (by default :func:`complete_switch`:
the switch, recorded; the previous pool kept warm when :func:`promote` asks), and :func:`promote` then hands the new
live version to the bake (modelops/bake.py), which judges it on client traffic.

Where the figures come from (:func:`metrics_source`), in this order:

1. a real Prometheus started for the deployment (``modelops up --monitoring``): ``increase()`` of the replicas'
   ``bentoml_service_request_total`` and duration histogram per ``colour`` label over the window, and ``ALERTS``;
2. otherwise, locally, HAProxy's runtime API (``show stat``): per-backend (``be_blue``/``be_green``) request,
   5xx, connection- and response-error counters, differenced over the window; HAProxy gives only average response
   times, so the p95 comes from the replicas' own ``/metrics`` histograms, differenced the same way.

The history gets one ``canary`` entry, written before the first shift and carrying each judged step: ``done`` when
the candidate took 100 %, ``rolled_back`` with the breach that stopped it (modelops/promotion.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelops.canary_stats import Side, Thresholds, Verdict, judge_interval, min_requests
from modelops.errors import ExitStatus, UsageError
from modelops.promotion import CanaryStep, Entry, HistoryFile, check_alarms, failpoint, switch
from modelops.state import write_json
from modelops.targets.base import Target, TargetStatus
from stacks.config import CanarySettings, StackConfig

CANARY_FILE = "canary.json"
SOURCE_PROMETHEUS = "prometheus"
SOURCE_HAPROXY = "haproxy+replicas"
DURATION_BUCKETS = "bentoml_service_request_duration_seconds"
PREDICT_ENDPOINT = "/predict"


# ------------------------------------------------------------------------------------------------ pure analysis
@dataclass(frozen=True)
class Observation:
    live: Side
    candidate: Side
    new_alerts: tuple[str, ...] | None  # alerts firing now that were not when the interval began; None: no Prometheus
    source: str
    seconds: float


def thresholds(settings: CanarySettings) -> Thresholds:
    return Thresholds(alpha=settings.alpha, power=settings.power, detect_error_ratio=settings.detect_error_ratio,
                      detect_slower_share=settings.detect_slower_share, max_error_ratio=settings.max_error_ratio,
                      max_p95_rise=settings.max_p95_rise, min_p95_rise_ms=settings.min_p95_rise_ms,
                      min_requests=settings.min_requests)  # fmt: skip


def judge(seen: Observation, settings: CanarySettings, full: bool = True, looks: int = 1) -> Verdict:
    """One interval: the statistical rules (canary_stats.judge_interval), then the alerts rule."""
    verdict = judge_interval(seen.candidate, seen.live, thresholds(settings), full, looks)
    rules, reasons = dict(verdict.rules), list(verdict.reasons)
    if seen.new_alerts is None:
        rules["alerts"] = "not evaluated: no Prometheus runs for this deployment (`modelops up --monitoring`)"
    elif not settings.abort_on_alerts:
        rules["alerts"] = "not evaluated: modelops:canary.abort_on_alerts is false"
    elif seen.new_alerts:
        rules["alerts"] = "fail"
        reasons = [r for r in reasons if verdict.status == "fail"] + [
            "alerts started firing: " + ", ".join(seen.new_alerts)
        ]
        return Verdict("fail", rules, reasons, verdict.figures)
    else:
        rules["alerts"] = "pass"
    return Verdict(verdict.status, rules, reasons, verdict.figures)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative bucket counts {upper bound: count}: linear in the bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is the best honest figure
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


# ------------------------------------------------------------------------------------------------ measurement
class MetricsSource(Protocol):
    name: str

    def begin(self, status: TargetStatus) -> None:
        """Start a window (counters now; alerts firing now)."""
        ...

    def observe(self, status: TargetStatus) -> Observation:
        """The window since :meth:`begin`, live colour vs candidate colour."""
        ...


def replica_buckets(url: str, client: httpx.Client) -> dict[float, float] | str:
    """Cumulative /predict duration buckets of one replica, summed over response codes; or why they could not be
    read (missing data: the caller must not judge latency without them)."""
    try:
        reply = client.get(url + "/metrics")
        reply.raise_for_status()
        text = reply.text
    except httpx.HTTPError as exc:
        return f"{url}/metrics could not be read ({type(exc).__name__}: {exc})"
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != DURATION_BUCKETS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("endpoint") == PREDICT_ENDPOINT:
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def backend_counters(rows: list[dict[str, str]]) -> dict[str, tuple[int, int]]:
    """(requests, failed) so far per colour, from HAProxy's stats rows of the colours' backends (``be_<colour>``)."""
    counters = {}
    for row in rows:
        if row["svname"] == "BACKEND" and row["pxname"].startswith("be_"):
            # A 5xx answer, or no usable answer at all (connection or response error): failed for a client.
            errors = sum(int(row.get(key) or 0) for key in ("hrsp_5xx", "econ", "eresp"))
            counters[row["pxname"].removeprefix("be_")] = (int(row.get("req_tot") or 0), errors)
    return counters


class HaproxySource:
    """Counts from HAProxy's per-backend stats, p95 from the replicas' own histograms (local target)."""

    name = SOURCE_HAPROXY

    def __init__(self, stats: Callable[[], list[dict[str, str]]], clock: Callable[[], float] = time.monotonic):
        self.stats = stats
        self.clock = clock
        self._start: tuple[float, Any, Any] | None = None

    def _counters(self) -> dict[str, tuple[int, int]] | str:
        try:
            rows = self.stats()
        except (OSError, ValueError, KeyError) as exc:
            return f"HAProxy's stats could not be read ({type(exc).__name__}: {exc})"
        return backend_counters(rows)

    @staticmethod
    def _buckets(status: TargetStatus) -> dict[str, dict[str, dict[float, float] | str]]:
        with httpx.Client(timeout=2.0) as client:
            return {
                colour: {r.name: replica_buckets(r.url, client) for r in pool.replicas}
                for colour, pool in status.pools.items()
            }

    def begin(self, status: TargetStatus) -> None:
        self._start = (self.clock(), self._counters(), self._buckets(status))

    def observe(self, status: TargetStatus) -> Observation:
        if self._start is None:
            raise RuntimeError("observe() before begin()")
        started, counters0, buckets0 = self._start
        counters1, buckets1 = self._counters(), self._buckets(status)

        def window(colour: str) -> Side:
            summed: dict[float, float] = {}
            missing = None
            for replica, after in buckets1.get(colour, {}).items():
                before = buckets0.get(colour, {}).get(replica, {})
                if isinstance(after, str) or isinstance(before, str):
                    missing = after if isinstance(after, str) else before
                    continue
                for bound, count in after.items():
                    summed[bound] = summed.get(bound, 0.0) + count - before.get(bound, 0.0)
            merged = None if missing is not None else summed
            if isinstance(counters0, str) or isinstance(counters1, str):
                why = counters1 if isinstance(counters1, str) else str(counters0)
                return Side(0, 0, merged, missing=why, counted=False)
            (req0, err0), (req1, err1) = counters0.get(colour, (0, 0)), counters1.get(colour, (0, 0))
            return Side(req1 - req0, err1 - err0, merged, missing=missing)

        candidate = status.candidate
        if candidate is None:
            raise UsageError("the canary needs a candidate pool, and there is none: it was removed meanwhile")
        return Observation(
            live=window(status.live), candidate=window(candidate.colour), new_alerts=None, source=self.name,
            seconds=self.clock() - started,
        )  # fmt: skip


class PrometheusSource:
    """Counts and p95 per ``colour`` label from a Prometheus that scrapes the replicas, and its firing alerts."""

    name = SOURCE_PROMETHEUS

    def __init__(self, query: Callable[[str], list[dict]], clock: Callable[[], float] = time.monotonic):
        self.query = query
        self.clock = clock
        self._start: tuple[float, set[str]] | None = None

    def _firing(self) -> set[str]:
        rows = self.query('ALERTS{alertstate="firing"}')
        return {
            r["metric"]["alertname"] + "".join(f" {k}={v}" for k, v in sorted(r["metric"].items())
                                               if k in ("colour", "replica", "service_version", "proxy"))
            for r in rows
        }  # fmt: skip

    def begin(self, status: TargetStatus) -> None:
        self._start = (self.clock(), self._firing())

    def _by_colour(self, promql: str) -> dict[str, float]:
        out = {}
        for row in self.query(promql):
            value = float(row["value"][1])
            if not math.isnan(value):
                out[row["metric"].get("colour", "")] = value
        return out

    def observe(self, status: TargetStatus) -> Observation:
        if self._start is None:
            raise RuntimeError("observe() before begin()")
        started, firing0 = self._start
        seconds = self.clock() - started
        rng = f"[{max(1, round(seconds))}s]"
        predict = f'endpoint="{PREDICT_ENDPOINT}"'
        try:
            requests = self._by_colour(f"sum by (colour) (increase(bentoml_service_request_total{{{predict}}}{rng}))")
            errors = self._by_colour(
                f'sum by (colour) (increase(bentoml_service_request_total{{{predict},http_response_code=~"5.."}}{rng}))'
            )
            buckets = self._buckets_by_colour(
                f"sum by (colour, le) (increase({DURATION_BUCKETS}_bucket{{{predict}}}{rng}))"
            )
            new_alerts: tuple[str, ...] | None = tuple(sorted(self._firing() - firing0))
            missing = None
        except (OSError, ValueError, KeyError, httpx.HTTPError) as exc:
            requests, errors, buckets, new_alerts = {}, {}, {}, None
            missing = f"Prometheus could not be queried ({type(exc).__name__}: {exc})"
        candidate = status.candidate
        if candidate is None:
            raise UsageError("the canary needs a candidate pool, and there is none: it was removed meanwhile")

        def window(colour: str) -> Side:
            if missing is not None:
                return Side(0, 0, None, missing=missing, counted=False)
            latency = buckets.get(colour) or None
            missing_latency = None if latency else f"no latency histogram of the {colour} colour"
            return Side(round(requests.get(colour, 0.0)), round(errors.get(colour, 0.0)), latency, missing_latency)

        return Observation(window(status.live), window(candidate.colour), new_alerts, self.name, seconds)

    def _buckets_by_colour(self, promql: str) -> dict[str, dict[float, float]]:
        out: dict[str, dict[float, float]] = {}
        for row in self.query(promql):
            value = float(row["value"][1])
            if not math.isnan(value):
                out.setdefault(row["metric"].get("colour", ""), {})[float(row["metric"]["le"])] = value
        return out


def metrics_source(target: Target, prometheus_url: str | None = None) -> MetricsSource:
    """A running Prometheus when there is one, else HAProxy's stats (local target), else an error saying the fix."""
    if prometheus_url:
        from modelops.monitor.prometheus import query

        return PrometheusSource(lambda promql: query(prometheus_url, promql))
    api = getattr(target, "api", None)
    if api is not None and hasattr(api, "stats"):
        return HaproxySource(api.stats)
    raise UsageError(
        f"the canary on the {target.name} target needs a Prometheus scraping both pools: start one "
        "(`modelops up --monitoring`), or promote in one step with `modelops gate --no-canary`"
    )


# ------------------------------------------------------------------------------------------------ the rollout
@dataclass
class CanaryOutcome:
    promoted: bool
    exit_status: ExitStatus
    reason: str
    steps: list[CanaryStep] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["exit_status"] = int(self.exit_status)
        data["steps"] = [s.model_dump(mode="json") for s in self.steps]
        return data


Complete = Callable[[Target, HistoryFile, Entry, list[CanaryStep]], CanaryOutcome]


def run_canary(
    target: Target,
    history_file: HistoryFile,
    bento: str,
    summary: str | None,
    settings: CanarySettings,
    source: MetricsSource,
    note: Callable[[str], None] = lambda _m: None,
    wait: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    complete: Complete | None = None,
    retire: bool = True,
) -> CanaryOutcome:
    """Move live traffic to the candidate (already deployed, running ``bento``) step by step, judging every step in
    intervals of live traffic (the module's docstring); on a failure or missing-data limit shift everything back and
    remove the candidate. The 100 % step is handed to ``complete`` (default :func:`complete_switch`): the hook where a
    post-promotion bake judges the new live version."""
    live = target.status()
    entry = history_file.begin("canary", bento, live.bento, summary)
    steps: list[CanaryStep] = []
    needed = min_requests(thresholds(settings))
    looks = max(1, math.ceil(settings.window_s / settings.check_interval_s))
    tally = {"fail": 0, "inconclusive": 0}
    try:
        for weight in settings.steps:
            if weight == 100:
                break
            note(f"canary: {weight} % of live traffic to {bento}, intervals of {needed} requests per colour")
            target.shift(weight)
            failpoint(f"canary:after-shift-{weight}")
            record = _StepRecord(weight)
            while record.passed < settings.intervals_per_step:
                seen, verdict = _interval(target, source, settings, wait, clock, needed, looks)
                record.add(seen, verdict)
                if verdict.status == "pass":
                    continue
                tally[verdict.status] += 1
                limit = settings.failure_limit if verdict.status == "fail" else settings.inconclusive_limit
                what = "failed" if verdict.status == "fail" else "inconclusive (missing data)"
                note(f"canary at {weight} %: interval {what} ({tally[verdict.status]} of {limit} tolerated): "
                     + "; ".join(verdict.reasons))  # fmt: skip
                if tally[verdict.status] > limit:
                    step = record.step(False)
                    steps.append(step)
                    history_file.add_step(entry, step)
                    kind = "limit" if verdict.status == "fail" else "inconclusive limit"
                    reason = (f"canary rolled back at {weight} % ({tally[verdict.status]} {what} intervals, over the "
                              f"{kind} {limit}): " + "; ".join(verdict.reasons))  # fmt: skip
                    note(reason)
                    _roll_back(target)
                    history_file.finish(entry, "rolled_back", reason)
                    return CanaryOutcome(False, ExitStatus.CANARY_ROLLED_BACK, reason, steps)
            step = record.step(True)
            steps.append(step)
            history_file.add_step(entry, step)
    except BaseException:
        # Interrupted (Ctrl-C, a lost runtime API …): the candidate's share goes back to the live pool first.
        status = target.status()
        if status.candidate is not None and status.candidate.bento == bento and status.bento != bento:
            target.shift(0)
            history_file.finish(entry, "aborted", "the canary was interrupted: traffic shifted back to the live pool")
        raise
    note(f"canary: every step passed, handing the 100 % step over ({bento})")
    if complete is not None:
        return complete(target, history_file, entry, steps)
    return complete_switch(target, history_file, entry, steps, retire)


def _interval(
    target: Target, source: MetricsSource, settings: CanarySettings, wait: Callable[[float], None],
    clock: Callable[[], float], needed: int, looks: int,
) -> tuple[Observation, Verdict]:  # fmt: skip
    """One analysis interval: looked at every check_interval_s until it is full (both colours served ``needed``
    requests, or window_s is up) or fails early."""
    source.begin(target.status())
    started = clock()
    while True:
        # Live traffic arrives in wall-clock time: between looks there is nothing to poll for.
        wait(settings.check_interval_s)
        seen = source.observe(target.status())
        full = (seen.candidate.requests >= needed and seen.live.requests >= needed) or (
            clock() - started >= settings.window_s
        )
        verdict = judge(seen, settings, full, looks)
        alarms = target.firing_alarms("candidate")  # the platform's own alarms (CloudWatch on aws), if any
        if alarms:
            reasons = [*verdict.reasons, f"the candidate's alarms fire: {', '.join(alarms)}"]
            verdict = Verdict("fail", {**verdict.rules, "platform_alarms": "fail"}, reasons, verdict.figures)
        if verdict.status == "fail" or full:
            return seen, verdict


@dataclass
class _StepRecord:
    """What one step's intervals showed, summed, for its history entry."""

    weight: int
    passed: int = 0
    failed: int = 0
    inconclusive: int = 0
    totals: dict[str, float] = field(default_factory=dict)
    last: dict[str, float | None] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    source: str = ""

    def add(self, seen: Observation, verdict: Verdict) -> None:
        if verdict.status == "pass":
            self.passed += 1
        elif verdict.status == "fail":
            self.failed += 1
        else:
            self.inconclusive += 1
        for key, side in (("candidate", seen.candidate), ("live", seen.live)):
            self.totals[f"{key}_requests"] = self.totals.get(f"{key}_requests", 0) + side.requests
            self.totals[f"{key}_errors"] = self.totals.get(f"{key}_errors", 0) + side.errors
        self.totals["seconds"] = round(self.totals.get("seconds", 0.0) + seen.seconds, 2)
        self.last = dict(verdict.figures)
        self.reasons = list(verdict.reasons)
        self.source = seen.source

    def step(self, passed: bool) -> CanaryStep:
        measured: dict[str, float | int | None] = {**self.totals, "candidate_p95_ms": self.last.get("candidate_p95_ms"),
            "live_p95_ms": self.last.get("live_p95_ms"), "intervals_passed": self.passed,
            "intervals_failed": self.failed, "intervals_inconclusive": self.inconclusive,
            "needed_per_side": self.last.get("needed_per_side"), "errors_p": self.last.get("errors_p"),
            "latency_p": self.last.get("latency_p")}  # fmt: skip
        return CanaryStep(weight=self.weight, passed=passed, source=self.source,
                          reasons=[] if passed else self.reasons, measured=measured)  # fmt: skip


def complete_switch(
    target: Target, history_file: HistoryFile, entry: Entry, steps: list[CanaryStep], retire: bool = True
) -> CanaryOutcome:
    """The default hand-over of the 100 % step: the switch, recorded; then the previous pool retired, or (``retire``
    False) left to the caller, which hands over to the bake (modelops/bake.py: the 100 % step is judged there)."""
    target.shift(100)
    failpoint("canary:after-switch")
    passed = " → ".join(f"{s.weight}" for s in steps)
    reason = f"canary passed {passed} % and took 100 %" if steps else "canary had no partial step: switched"
    history_file.finish(entry, "done", reason)
    failpoint("canary:after-record")
    if retire:
        target.retire_previous()
    return CanaryOutcome(True, ExitStatus.OK, reason, steps)


def _roll_back(target: Target) -> None:
    """The candidate's share back to the live pool, then the candidate drained and stopped: live untouched."""
    target.abort()  # shift(0) first, then drain and remove (one operation on every target)


def promote(
    target: Target,
    history_file: HistoryFile,
    bento: str,
    summary: str | None,
    settings: StackConfig,
    note: Callable[[str], None] = lambda _m: None,
    complete: Complete | None = None,
) -> CanaryOutcome:
    """The gate's promotion: through the canary when ``modelops:canary.enabled`` (``--canary``), else the one-step
    blue/green switch. The outcome says whether the candidate is live and, if not, why. ``complete``: who takes the
    canary's 100 % step (default complete_switch). Either way the new live version is then handed to the bake
    (modelops/bake.py), which judges it on client traffic and rolls back through the warm previous colour."""
    from modelops.bake import hand_over

    previous = target.status().bento
    if not settings.canary.enabled:
        switch(target, history_file, "promote", bento, summary, retire=False)
        hand_over(target, history_file.path.parent, settings, bento, previous, note)
        return CanaryOutcome(True, ExitStatus.OK, "switched in one step (canary off)")
    from modelops.monitor import service

    # The deployment's Prometheus (if `up --monitoring` started one) must scrape the candidate's replicas too.
    state_dir = history_file.path.parent
    prometheus_url = service.running_prometheus(state_dir)
    if prometheus_url and not service.refresh(state_dir, target.status(), settings):
        prometheus_url = None
    check_alarms(target, "promote", bento)
    source = metrics_source(target, prometheus_url)
    outcome = run_canary(target, history_file, bento, summary, settings.canary, source, note, complete=complete,
                         retire=False)  # fmt: skip
    if outcome.promoted:  # the 100 % step hands over to the bake, which judges it on client traffic
        hand_over(target, history_file.path.parent, settings, bento, previous, note)
    if summary:  # beside the gate's summary.json: what each step of live traffic showed
        write_json(Path(summary).with_name(CANARY_FILE), outcome.to_dict())
    return outcome
