"""The canary after a promote verdict: live traffic moves to the candidate in steps, each step judged on live metrics,
and a breach rolls it back on its own (the candidate's share back to 0, the candidate removed, the live pool
untouched all along).

Steps and thresholds are ``modelops:canary`` (stacks/config.py). Every step shifts the candidate's share of live
traffic with :meth:`Target.shift` (HAProxy's runtime weights locally), then watches one window of live traffic and
compares the candidate colour with the live one on that same traffic (:func:`judge`, pure):

- ``error_ratio``: the candidate's failed requests / requests over ``max_error_ratio``;
- ``p95``: the candidate's p95 over the live colour's by more than ``max_p95_rise`` and ``min_p95_rise_ms``;
- ``alerts``: an alert that started firing since the canary began (only with Prometheus: without it the rule is
  reported as not evaluated, never as passed);
- ``traffic``: fewer than ``min_requests`` candidate requests in the window: nothing proves it healthy.

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
from typing import Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelops.errors import ExitStatus, UsageError
from modelops.promotion import CanaryStep, HistoryFile, check_alarms, failpoint, switch
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
class ColourWindow:
    """One colour's live traffic over one analysis window."""

    requests: int
    errors: int  # 5xx answered, plus requests the balancer could not get an answer for
    p95_ms: float | None  # None: no request finished in the window

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Observation:
    live: ColourWindow
    candidate: ColourWindow
    new_alerts: tuple[str, ...] | None  # alerts firing now that were not when the canary began; None: no Prometheus
    source: str
    seconds: float


@dataclass(frozen=True)
class Judgement:
    passed: bool
    rules: dict[str, str]  # rule -> "pass" | "fail" | "not evaluated: <why>"
    reasons: list[str] = field(default_factory=list)  # one sentence per failed rule


def judge(seen: Observation, settings: CanarySettings) -> Judgement:
    """The canary's verdict on one window: every rule, and why each failed one failed."""
    rules: dict[str, str] = {}
    reasons: list[str] = []

    def rule(name: str, failed: bool, reason: str) -> None:
        rules[name] = "fail" if failed else "pass"
        if failed:
            reasons.append(reason)

    cand, live = seen.candidate, seen.live
    rule(
        "traffic",
        cand.requests < settings.min_requests,
        f"the candidate served {cand.requests} requests in {seen.seconds:.0f} s, fewer than "
        f"modelops:canary.min_requests ({settings.min_requests}): nothing shows it healthy (send live traffic, "
        "lengthen window_s, or lower min_requests)",
    )
    rule(
        "error_ratio",
        cand.requests > 0 and cand.error_ratio > settings.max_error_ratio,
        f"the candidate failed {cand.errors} of {cand.requests} requests ({cand.error_ratio:.2%}), over "
        f"modelops:canary.max_error_ratio ({settings.max_error_ratio:.2%}); live: {live.errors} of {live.requests}",
    )
    if cand.p95_ms is None or live.p95_ms is None:
        rules["p95"] = "not evaluated: " + ("no candidate" if cand.p95_ms is None else "no live") + " latencies"
    else:
        rise = cand.p95_ms - live.p95_ms
        rule(
            "p95",
            rise > settings.min_p95_rise_ms and cand.p95_ms > live.p95_ms * (1 + settings.max_p95_rise),
            f"the candidate's p95 is {cand.p95_ms:.0f} ms against the live colour's {live.p95_ms:.0f} ms: more than "
            f"{settings.max_p95_rise:.0%} (modelops:canary.max_p95_rise) and {settings.min_p95_rise_ms:g} ms higher",
        )
    if seen.new_alerts is None:
        rules["alerts"] = "not evaluated: no Prometheus runs for this deployment (`modelops up --monitoring`)"
    elif not settings.abort_on_alerts:
        rules["alerts"] = "not evaluated: modelops:canary.abort_on_alerts is false"
    else:
        rule("alerts", bool(seen.new_alerts), "alerts started firing: " + ", ".join(seen.new_alerts))
    return Judgement(passed=not reasons, rules=rules, reasons=reasons)


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


def _replica_buckets(url: str, client: httpx.Client) -> dict[float, float]:
    """Cumulative /predict duration buckets of one replica, summed over response codes; {} if it cannot answer."""
    try:
        text = client.get(url + "/metrics").text
    except httpx.HTTPError:
        return {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != DURATION_BUCKETS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("endpoint") == PREDICT_ENDPOINT:
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


class HaproxySource:
    """Counts from HAProxy's per-backend stats, p95 from the replicas' own histograms (local target)."""

    name = SOURCE_HAPROXY

    def __init__(self, stats: Callable[[], list[dict[str, str]]], clock: Callable[[], float] = time.monotonic):
        self.stats = stats
        self.clock = clock
        self._start: tuple[float, dict, dict] | None = None

    def _counters(self) -> dict[str, tuple[int, int]]:
        counters = {}
        for row in self.stats():
            if row["svname"] == "BACKEND" and row["pxname"].startswith("be_"):
                # A 5xx answer, or no usable answer at all (connection or response error): failed for a client.
                errors = sum(int(row.get(key) or 0) for key in ("hrsp_5xx", "econ", "eresp"))
                counters[row["pxname"].removeprefix("be_")] = (int(row.get("req_tot") or 0), errors)
        return counters

    @staticmethod
    def _buckets(status: TargetStatus) -> dict[str, dict[str, dict[float, float]]]:
        with httpx.Client(timeout=2.0) as client:
            return {
                colour: {r.name: _replica_buckets(r.url, client) for r in pool.replicas}
                for colour, pool in status.pools.items()
            }

    def begin(self, status: TargetStatus) -> None:
        self._start = (self.clock(), self._counters(), self._buckets(status))

    def observe(self, status: TargetStatus) -> Observation:
        if self._start is None:
            raise RuntimeError("observe() before begin()")
        started, counters0, buckets0 = self._start
        counters1, buckets1 = self._counters(), self._buckets(status)

        def window(colour: str) -> ColourWindow:
            (req0, err0), (req1, err1) = counters0.get(colour, (0, 0)), counters1.get(colour, (0, 0))
            merged: dict[float, float] = {}
            for replica, after in buckets1.get(colour, {}).items():
                before = buckets0.get(colour, {}).get(replica, {})
                for bound, count in after.items():
                    merged[bound] = merged.get(bound, 0.0) + count - before.get(bound, 0.0)
            p95 = histogram_quantile(0.95, merged)
            return ColourWindow(req1 - req0, err1 - err0, p95 * 1000 if p95 is not None else None)

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
        requests = self._by_colour(f"sum by (colour) (increase(bentoml_service_request_total{{{predict}}}{rng}))")
        errors = self._by_colour(
            f'sum by (colour) (increase(bentoml_service_request_total{{{predict},http_response_code=~"5.."}}{rng}))'
        )
        p95 = self._by_colour(
            f"histogram_quantile(0.95, sum by (colour, le) (increase({DURATION_BUCKETS}_bucket{{{predict}}}{rng})))"
        )
        candidate = status.candidate
        if candidate is None:
            raise UsageError("the canary needs a candidate pool, and there is none: it was removed meanwhile")

        def window(colour: str) -> ColourWindow:
            latency = p95.get(colour)
            return ColourWindow(
                round(requests.get(colour, 0.0)), round(errors.get(colour, 0.0)),
                latency * 1000 if latency is not None else None,
            )  # fmt: skip

        new_alerts = tuple(sorted(self._firing() - firing0))
        return Observation(window(status.live), window(candidate.colour), new_alerts, self.name, seconds)


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
        "(`modelops up --monitoring`), or promote in one step with `modelops gate --canary off`"
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


def run_canary(
    target: Target,
    history_file: HistoryFile,
    bento: str,
    summary: str | None,
    settings: CanarySettings,
    source: MetricsSource,
    note: Callable[[str], None] = lambda _m: None,
    wait: Callable[[float], None] = time.sleep,
    retire: bool = True,
) -> CanaryOutcome:
    """Move live traffic to the candidate (already deployed, running ``bento``) step by step; judge every step on
    one window of live traffic; on a breach shift everything back and remove the candidate. The last step (100 %)
    is the ordinary switch: recorded, then the previous pool drained and stopped."""
    live = target.status()
    entry = history_file.begin("canary", bento, live.bento, summary)
    steps: list[CanaryStep] = []
    try:
        for weight in settings.steps:
            if weight == 100:
                break
            note(f"canary: {weight} % of live traffic to {bento}, watching {settings.window_s:g} s")
            status = target.shift(weight)
            failpoint(f"canary:after-shift-{weight}")
            source.begin(status)
            # The window is wall-clock time of live traffic: there is nothing to poll for, the clock is the condition.
            wait(settings.window_s)
            seen = source.observe(target.status())
            verdict = judge(seen, settings)
            alarms = target.firing_alarms("candidate")  # the platform's own alarms (CloudWatch on aws), if any
            if alarms:
                reasons = [*verdict.reasons, f"the candidate's alarms fire: {', '.join(alarms)}"]
                verdict = Judgement(False, {**verdict.rules, "platform_alarms": "fail"}, reasons)
            step = CanaryStep(
                weight=weight, passed=verdict.passed, source=seen.source, reasons=verdict.reasons,
                measured={
                    "seconds": round(seen.seconds, 2),
                    "candidate_requests": seen.candidate.requests, "candidate_errors": seen.candidate.errors,
                    "candidate_p95_ms": seen.candidate.p95_ms, "live_requests": seen.live.requests,
                    "live_errors": seen.live.errors, "live_p95_ms": seen.live.p95_ms,
                },
            )  # fmt: skip
            steps.append(step)
            history_file.add_step(entry, step)
            if not verdict.passed:
                reason = f"canary rolled back at {weight} %: " + "; ".join(verdict.reasons)
                note(reason)
                _roll_back(target)
                history_file.finish(entry, "rolled_back", reason)
                return CanaryOutcome(False, ExitStatus.CANARY_ROLLED_BACK, reason, steps)
    except BaseException:
        # Interrupted (Ctrl-C, a lost runtime API …): the candidate's share goes back to the live pool first.
        status = target.status()
        if status.candidate is not None and status.candidate.bento == bento and status.bento != bento:
            target.shift(0)
            history_file.finish(entry, "aborted", "the canary was interrupted: traffic shifted back to the live pool")
        raise
    note(f"canary: every step passed, switching all traffic to {bento}")
    return _complete(target, history_file, entry, steps, retire)


def _complete(
    target: Target, history_file: HistoryFile, entry, steps: list[CanaryStep], retire: bool = True
) -> CanaryOutcome:
    """The 100 % step: the switch, recorded; then the previous pool retired, or (``retire`` False) left to the
    caller, which hands over to the bake (modelops/bake.py: the 100 % step is judged there)."""
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
) -> CanaryOutcome:
    """The gate's promotion: through the canary when ``modelops:canary.enabled`` (``--canary on``), else the one-step
    blue/green switch. The outcome says whether the candidate is live and, if not, why."""
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
    outcome = run_canary(target, history_file, bento, summary, settings.canary, source, note, retire=False)
    if outcome.promoted:  # the 100 % step hands over to the bake, which judges it on client traffic
        hand_over(target, history_file.path.parent, settings, bento, previous, note)
    if summary:  # beside the gate's summary.json: what each step of live traffic showed
        write_json(Path(summary).with_name(CANARY_FILE), outcome.to_dict())
    return outcome
