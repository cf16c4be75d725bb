"""The plan and soak suites' verdict rules: pure functions from what the loads and the samplers measured, and the
thresholds, to a SuiteResult (tests/modelops/gate/test_endurance_judge.py feeds them fixed inputs with real spread).

plan  the capacity plan's own load (open-loop, the deploy shape) for gate.plan_s: p95, p99 and errors within the
      SLO, and the load carried (good answers at least MIN_CARRIED of the offered rate).
soak  that load for gate.soak_s on the same processes:
      - memory: per replica, RSS against the requests it served (the soak's last two thirds: its steady state),
        a Theil-Sen slope with its 95 % interval, projected at the planned load per replica to hours until
        deploy.memory_mb; fail when even the slowest growth in the interval reaches it within
        gate.min_hours_to_memory_limit and it still grows over the last third, pass when the fastest does not,
        inconclusive in between (a longer soak narrows the interval), and inconclusive too when the growth is no more
        than a rise of the requests in flight explains;
      - open files: the same, for the process holding the most descriptors and its own limit (RLIMIT_NOFILE),
        except that an interval spanning the horizon passes (descriptors churn with connections: growth must be
        shown to fail);
      - slowing down: the last minute's p95 against the first minute's, with a block-bootstrap interval of both
        their ratio and their difference; fail when the whole interval is above 1 + gate.soak_max_p95_rise *and*
        above gate.soak_min_p95_rise_ms, pass when either interval is entirely within its limit, else inconclusive;
      - and, over the whole soak: errors and the last minute's p95 within the SLO, no replica lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modelops.gate.capacity import Limits, distortion
from modelops.gate.endurance import EnduranceRun
from modelops.gate.loadgen import PRODUCTION_KINDS, Figures, LoadResult, Window, figures
from modelops.gate.summary import SuiteResult
from modelops.monitor import resources
from modelops.monitor.resources import MB, Sample, Trend
from stacks.config import GateSettings, SloSettings

MIN_CARRIED = 0.9  # the pool must answer at least this share of the offered rate with good answers
COMPARE_S = 60.0  # the soak's first and last minute...
COMPARE_SHARE = 1 / 3  # ...or a third of a shorter soak each
BLOCK_S = 2.0  # bootstrap blocks: latencies a few hundred ms apart are not independent (a pause slows a burst)
# ...but at least MIN_BLOCKS a side, shorter blocks then (down to a half-second window): from 2 or 3 blocks a side a
# bootstrap draws a handful of distinct resamples, and its interval says nothing (a 15-s soak's first and last 5 s
# measured x0.35 with an interval up to x1.70).
MIN_BLOCKS = 10
RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 15  # the same input, the same interval: a verdict must not change when the judge runs again
# The memory and open-file trends are fitted on the soak's last two thirds: the projection is about a replica's steady
# state, and its first stretch of serving is not one (code paths loaded, caches and allocator arenas reaching their
# working size). Seen here: a replica that had served a scaling sweep still grew 0.6 MB over the plan's first 15 s,
# then not at all; fitted from the start, a 20-s soak projected that creep to 59 h [6 h, 154 h]. A leak grows
# through the whole soak, so its last two thirds show it as well as the whole would.
SETTLE_SHARE = 1 / 3
# Growth must also go on to the end: fitted over the last third alone, it must still be there (its slope's interval
# above zero) for a failure. A level shift — more requests in flight after a slowdown, a cache filling to its bound —
# raises RSS once and then stays: seen here on a replica that turned slow mid-soak, its last two thirds fitted as
# +530 KB per 1,000 requests [442, 706] (a step is no straight line, and its interval is too narrow), its last third
# as flat. A leak keeps growing in every part.
LATER_SHARE = 2 / 3
# Memory and descriptors grow with the requests in flight (each holds buffers and a connection). Seen here: a reference
# replica on a machine other work kept busy went from p95 133 ms to 372 ms in a 20-s soak, and its RSS (+1 MB) and
# descriptors (+30) rose with it; so did a candidate that turned slow mid-soak. When the requests in flight rose by
# more than MAX_IN_FLIGHT_RISE from the soak's first third to its last, a growth no larger than the new requests in
# flight can hold — IN_FLIGHT_BYTES_PER_BODY x the body limit of memory, IN_FLIGHT_FDS descriptors, each — is not
# called a leak (inconclusive: the slowdown rule, which they also meet, decides). A leak outgrows that bound: the
# candidate that keeps 64 KB a request grew 50 MB in 20 s while its requests in flight rose by one.
MAX_IN_FLIGHT_RISE = 1.5
IN_FLIGHT_BYTES_PER_BODY = 2  # a request's body and what is parsed from it
IN_FLIGHT_FDS = 2  # the connection it came on, and one more it may open


# ----------------------------------------------------------------------------------------------------- spans
@dataclass(frozen=True)
class Span:
    """The plan and soak loads as one timeline (two Locust runs back to back)."""

    windows: list[Window]
    window_s: float
    result: LoadResult  # the first run (its warm-up, CPU samples, sends)
    results: list[LoadResult]
    start: float  # epoch seconds the measured part began (after the first run's warm-up)
    end: float  # the last window's end

    def figures(self, start: float, end: float) -> Figures:
        cpu = [c for r in self.results for c in r.cpu]
        sends = [s for r in self.results for s in r.sends]
        return figures(self.windows, self.window_s, cpu, start, end, PRODUCTION_KINDS, sends=sends)

    def requests_until(self, t: float) -> int:
        """Production requests answered (or failed) in the windows that ended by ``t``."""
        return sum(w.ok + w.failed for w in self.windows if w.kind in PRODUCTION_KINDS and w.t + self.window_s <= t)

    def in_flight(self, start: float, end: float) -> float | None:
        """Mean requests in flight over [start, end), by Little's law: the latency of every request answered in it
        (from when it was due), summed, over the span's seconds."""
        if end <= start:
            return None
        inside = [w for w in self.windows if w.kind in PRODUCTION_KINDS and start - 1e-9 <= w.t]
        inside = [w for w in inside if w.t + self.window_s <= end + 1e-9]
        if not inside:
            return None
        return sum(ms * n for w in inside for ms, n in w.latencies.items()) / 1000 / (end - start)


def span(results: list[LoadResult]) -> Span:
    windows = sorted((w for r in results for w in r.windows), key=lambda w: w.t)
    first = results[0]
    end = max((w.t + first.window_s for w in windows), default=first.measured_from)
    return Span(windows, first.window_s, first, results, first.measured_from, end)


def _late(f: Figures) -> dict[str, float | None]:
    return {
        "sends": float(f.sends),
        "late_sends": float(f.late_sends),
        "late_send_ratio": f.late_ratio,
        "most_late_ms": f.most_late_ms,
    }


def _common(f: Figures, label: str, timeline: list[dict]) -> dict:
    return {
        "rps": f.good_rps, "p50_ms": f.p50_ms, "p95_ms": f.p95_ms, "p99_ms": f.p99_ms,
        "error_ratio": f.error_ratio, "requests": f.requests, "timeline": timeline,
        "locust_reports": [f"{label}.html"],
    }  # fmt: skip


def _timeline(s: Span, start: float, end: float) -> list[dict]:
    out = []
    t = start
    while t + 1.0 <= end + 1e-9:
        f = s.figures(t, t + 1.0)
        out.append({"t": round(t - s.result.started, 2), "rps": f.good_rps, "p95_ms": f.p95_ms, "label": "plan/soak"})
        t += 1.0
    return out


# ------------------------------------------------------------------------------------------------------ plan
def judge_plan(run: EnduranceRun, slo: SloSettings, gate: GateSettings, limits: Limits) -> SuiteResult:
    load = run.load
    thresholds = {"p95_ms": slo.p95_ms, "p99_ms": slo.p99_ms, "max_error_ratio": slo.max_error_ratio,
                  "min_carried": MIN_CARRIED, "seconds": gate.plan_s}  # fmt: skip
    if not run.results:
        return SuiteResult(status="inconclusive", reason="the plan's load did not run", thresholds=thresholds)
    result = run.results[0]
    f = result.figures(result.measured_from, result.measured_from + gate.plan_s + result.window_s)
    measured: dict[str, float | None] = {
        "offered_rps": load.rate, "offered_rps_per_replica": load.per_replica, "replicas": float(load.replicas),
        "users": float(load.users), "rps_per_replica_at_slo": load.rps_per_replica_at_slo,
        "carried": f.good_rps / load.rate if load.rate else None, "seconds": f.seconds, **_late(f),
    }  # fmt: skip
    timeline = _timeline(span([result]), result.measured_from, result.measured_from + f.seconds)
    common = {"thresholds": thresholds, "measured": measured, **_common(f, result.prefix, timeline)}
    text = (
        f"{load.rate:.0f} req/s open-loop on {load.replicas} replica(s) ({load.source}) for {f.seconds:.0f} s: "
        f"p95 {_ms(f.p95_ms)}, p99 {_ms(f.p99_ms)}, {f.good_rps:.0f} good req/s, {f.failures} errors, "
        f"{f.late_sends} of {f.sends} sends late"
    )
    if not load.from_plan:
        return SuiteResult(status="inconclusive", reason=f"no capacity plan to prove; measured {text}", **common)
    misses = _slo_misses(f, slo)
    if f.requests and f.good_rps < MIN_CARRIED * load.rate:
        misses.append(f"carried {f.good_rps:.0f} good req/s of {load.rate:.0f} offered (< {MIN_CARRIED:.0%})")
    throttled = result.throttled(result.measured_from, result.measured_from + f.seconds)
    distorted = distortion(f.generator_load, f.machine_idle, throttled, limits, f.generator_wait)
    if distorted:
        also = f" (it also measured: {'; '.join(misses)})" if misses else ""
        return SuiteResult(status="inconclusive", reason=f"{distorted}{also}; {text}", **common)
    if misses:
        return SuiteResult(status="fail", reason=f"{'; '.join(misses)} at the planned load: {text}", **common)
    if f.requests < gate.min_requests:
        reason = f"only {f.requests} requests (modelops:gate.min_requests is {gate.min_requests}); {text}"
        return SuiteResult(status="inconclusive", reason=reason, **common)
    return SuiteResult(status="pass", reason=text, **common)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _slo_misses(f: Figures, slo: SloSettings) -> list[str]:
    misses = []
    if f.p95_ms is not None and f.p95_ms > slo.p95_ms:
        misses.append(f"p95 {f.p95_ms:.0f} ms > {slo.p95_ms:g} ms")
    if f.p99_ms is not None and f.p99_ms > slo.p99_ms:
        misses.append(f"p99 {f.p99_ms:.0f} ms > {slo.p99_ms:g} ms")
    if f.error_ratio > slo.max_error_ratio:
        misses.append(f"error ratio {f.error_ratio:.2%} > {slo.max_error_ratio:.2%}")
    return misses


# ------------------------------------------------------------------------------------------- soak: memory
@dataclass(frozen=True)
class Projection:
    """One replica's growth of a resource against the requests it served, projected at the planned load."""

    replica: str
    per_1000: Trend  # growth per 1,000 requests (bytes, or descriptors), with its interval
    now: float  # the last sample
    limit: float
    hours: float  # until the limit, at the slope
    hours_low: float  # ...at the fastest growth in the interval
    hours_high: float  # ...at the slowest
    later: Trend | None = None  # the same fitted over the last third alone (None: too few samples there)
    grew: float = 0.0  # the fitted growth across the fitted span


def projections(
    samples: list[Sample], s: Span, per_replica_rps: float, replicas: int, limit_of, value_of
) -> list[Projection]:
    """Per replica process: the trend of value_of(sample) against the requests it served (the pool's requests split
    evenly: the balancer sends each replica the next request when it has the fewest in flight, so equal replicas
    serve equal shares) over the span's last two thirds, projected at ``per_replica_rps``; and over its last third."""
    out = []
    settled = s.start + SETTLE_SHARE * (s.end - s.start)
    later_from = s.start + LATER_SHARE * (s.end - s.start)
    for (name, _pid), series in resources.by_process(samples).items():
        kept = [x for x in series if x.t >= settled]
        xs = [s.requests_until(x.t) / max(1, replicas) / 1000 for x in kept]
        ys = [float(value_of(x)) for x in kept]
        trend = resources.growth(xs, ys, CONFIDENCE)
        limit = limit_of(kept[-1]) if kept else None
        if trend is None or limit is None:
            continue
        late = [(x, y) for x, y, sample in zip(xs, ys, kept, strict=True) if sample.t >= later_from]
        later = resources.growth([x for x, _ in late], [y for _, y in late], CONFIDENCE)
        per_hour = per_replica_rps * 3600 / 1000  # thousands of requests an hour
        now = ys[-1]
        out.append(
            Projection(
                replica=name,
                per_1000=trend,
                now=now,
                limit=float(limit),
                hours=resources.hours_until(limit, now, trend.slope * per_hour),
                hours_low=resources.hours_until(limit, now, trend.high * per_hour),
                hours_high=resources.hours_until(limit, now, trend.low * per_hour),
                later=later,
                grew=trend.slope * (xs[-1] - xs[0]),
            )
        )
    return out


@dataclass(frozen=True)
class Units:
    level: str  # how the level and the limit are shown...
    level_scale: float  # ...in units of this many
    growth: str  # how growth per 1,000 requests is shown
    growth_scale: float


MEMORY = Units("MB", MB, "KB", 1024)
FILES = Units("fds", 1.0, "fds", 1.0)


def _status(p: Projection, min_hours: float, per_hour: float) -> str:
    """One replica: fail when it reaches its limit within the horizon even at the slowest growth its interval allows
    and still grows over the last third; pass when it does not at the fastest; else inconclusive. One that grew and
    then levelled off (no growth shown over the last third) is judged on that last third alone."""
    if p.hours_high < min_hours:
        if p.later is None or p.later.low > 0:
            return "fail"
        return "pass" if resources.hours_until(p.limit, p.now, p.later.high * per_hour) >= min_hours else "inconclusive"
    return "pass" if p.hours_low >= min_hours else "inconclusive"


def _horizon(
    kind: str,
    u: Units,
    found: list[Projection],
    min_hours: float,
    per_replica_rps: float,
    strict: bool = True,
    load_rose: InFlight | None = None,
    per_request: float = 0.0,
) -> tuple[str, str]:
    """(status, text) of a resource's rule over every replica (_status); not ``strict``, an interval that spans the
    horizon passes, saying so. A failure no larger than what ``load_rose`` (more requests in flight, each holding
    ``per_request`` of the resource) explains is inconclusive."""
    if not found:
        return "inconclusive", f"{kind}: too few samples for a trend"
    per_hour = per_replica_rps * 3600 / 1000
    parts, statuses = [], []
    for p in found:
        g = u.growth_scale
        grow = f"{_num(p.per_1000.slope / g)} {u.growth} [{_num(p.per_1000.low / g)}, {_num(p.per_1000.high / g)}]"
        level = f"{p.now / u.level_scale:.0f} of {p.limit / u.level_scale:.0f} {u.level}"
        # Parentheses, not brackets: "[never, never]" reads as a style tag to the terminal (rich) and vanishes.
        hours = f"{_hours(p.hours)} to the limit ({_hours(p.hours_low)} to {_hours(p.hours_high)})"
        status = _status(p, min_hours, per_hour)
        levelled = p.hours_high < min_hours and status != "fail" and p.later is not None
        if levelled:
            assert p.later is not None
            hours += f", but levelled off: {_num(p.later.slope / g)} {u.growth} per 1,000 over the last third"
        parts.append(f"{p.replica} {grow} per 1,000 requests, {level}: {hours}")
        statuses.append(status)
    text = f"{kind}: " + "; ".join(parts)
    if "fail" in statuses:
        failing = [p for p, status in zip(found, statuses, strict=True) if status == "fail"]
        if load_rose is not None and all(p.grew <= load_rose.rise * per_request for p in failing):
            explained = f"{_num(load_rose.rise * per_request / u.growth_scale)} {u.growth} a replica at most"
            why = (
                f"requests in flight rose from {load_rose.before:.1f} to {load_rose.after:.1f} a replica ({explained})"
            )
            return "inconclusive", f"{text}: grew with its load, not shown to be a leak ({why})"
        return "fail", f"{text}: reaches its limit within {min_hours:g} h at the planned load"
    if "inconclusive" not in statuses:
        return "pass", text
    spans = f"the interval spans {min_hours:g} h (a longer soak narrows it)"
    return ("inconclusive", f"{text}: {spans}") if strict else ("pass", f"{text} ({spans}; no growth shown)")


def _num(x: float) -> str:
    return f"{x:+.3g}" if abs(x) < 1000 else f"{x:+,.0f}"


def _hours(h: float) -> str:
    return "never" if math.isinf(h) else f"{h:.1f} h"


@dataclass(frozen=True)
class InFlight:
    before: float  # requests in flight a replica, the soak's first third
    after: float  # ...its last third

    @property
    def rise(self) -> float:
        return self.after - self.before


def _load_changed(s: Span, replicas: int) -> InFlight | None:
    """The rise of requests in flight a replica from the soak's first third to its last, when it rose more than
    MAX_IN_FLIGHT_RISE (a change before the fitted span still shapes what it fits: memory follows the requests in
    flight with a lag, as buffers and connections are taken and kept); else None."""
    third = (s.end - s.start) / 3
    before, after = s.in_flight(s.start, s.start + third), s.in_flight(s.end - third, s.end)
    if before and after and after > MAX_IN_FLIGHT_RISE * before:
        return InFlight(before / max(1, replicas), after / max(1, replicas))
    return None


def growing_memory(
    samples: list[Sample], results: list[LoadResult], gate: GateSettings, limit_mb: float, body_limit: int = 1_048_576
) -> str:
    """For suites other than the soak (robustness): the replicas whose memory grows, with confidence, fast enough to
    reach ``limit_mb`` within gate.min_hours_to_memory_limit at the production load (gate.target_rps over the
    replicas sampled); "" when none does. A pid that changed is the suite's ``lost``; this is the process that stayed
    and kept growing."""
    if not samples or not results or math.isinf(limit_mb):
        return ""
    replicas = max(1, len({x.replica for x in samples}))
    s = span(results)
    found = projections(samples, s, gate.target_rps / replicas, replicas,
                        lambda _x: limit_mb * MB, lambda x: x.rss_bytes)  # fmt: skip
    status, text = _horizon("memory", MEMORY, found, gate.min_hours_to_memory_limit, gate.target_rps / replicas,
                            load_rose=_load_changed(s, replicas),
                            per_request=IN_FLIGHT_BYTES_PER_BODY * body_limit)  # fmt: skip
    return text if status == "fail" else ""


# ------------------------------------------------------------------------------------------ soak: latency
@dataclass(frozen=True)
class Degradation:
    first_ms: float | None
    last_ms: float | None
    ratio: float | None
    ratio_low: float | None
    ratio_high: float | None
    rise_low_ms: float | None
    rise_high_ms: float | None
    compare_s: float


def _histograms(windows: list[Window], window_s: float, start: float, end: float) -> list[dict[int, int]]:
    """Latency histograms per bootstrap block of [start, end)."""
    per_block = max(1, min(round(BLOCK_S / window_s), int((end - start) / window_s) // MIN_BLOCKS))
    blocks: dict[int, dict[int, int]] = {}
    for w in windows:
        if w.kind in PRODUCTION_KINDS and start - 1e-9 <= w.t and w.t + window_s <= end + 1e-9:
            block = blocks.setdefault(int((w.t - start) / window_s) // per_block, {})
            for ms, n in w.latencies.items():
                block[ms] = block.get(ms, 0) + n
    return [b for _, b in sorted(blocks.items()) if b]


def _p95s(blocks: list[dict[int, int]], bins: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """p95 of each resample (rows of ``draws``: block indices) over the latency bins."""
    counts = np.array([[b.get(int(ms), 0) for ms in bins] for b in blocks], dtype=float)
    sums = counts[draws].sum(axis=1)  # resamples x bins
    cumulative = np.cumsum(sums, axis=1)
    needed = 0.95 * cumulative[:, -1:] - 1e-9
    index = (cumulative >= needed).argmax(axis=1)
    return bins[index]


def degradation(s: Span, compare_s: float) -> Degradation:
    first = _histograms(s.windows, s.window_s, s.start, s.start + compare_s)
    last = _histograms(s.windows, s.window_s, s.end - compare_s, s.end)
    f_first, f_last = s.figures(s.start, s.start + compare_s), s.figures(s.end - compare_s, s.end)
    if len(first) < 2 or len(last) < 2 or f_first.p95_ms is None or f_last.p95_ms is None:
        return Degradation(f_first.p95_ms, f_last.p95_ms, None, None, None, None, None, compare_s)
    bins = np.array(sorted({ms for b in first + last for ms in b}), dtype=float)
    rng = np.random.default_rng(SEED)
    a = _p95s(first, bins, rng.integers(0, len(first), size=(RESAMPLES, len(first))))
    b = _p95s(last, bins, rng.integers(0, len(last), size=(RESAMPLES, len(last))))
    ratios = b / np.maximum(a, 1.0)  # latencies are whole ms: a 0-ms p95 counts as 1 ms
    rises = b - a
    tail = (1 - CONFIDENCE) / 2 * 100
    return Degradation(
        first_ms=f_first.p95_ms,
        last_ms=f_last.p95_ms,
        ratio=f_last.p95_ms / max(f_first.p95_ms, 1.0),
        ratio_low=float(np.percentile(ratios, tail)),
        ratio_high=float(np.percentile(ratios, 100 - tail)),
        rise_low_ms=float(np.percentile(rises, tail)),
        rise_high_ms=float(np.percentile(rises, 100 - tail)),
        compare_s=compare_s,
    )


def _slowing(d: Degradation, gate: GateSettings) -> tuple[str, str]:
    if d.ratio is None or d.ratio_low is None or d.ratio_high is None:
        return "inconclusive", f"too little load in the first or last {d.compare_s:.0f} s to compare their p95"
    assert d.rise_low_ms is not None and d.rise_high_ms is not None
    text = (
        f"p95 {_ms(d.first_ms)} in the first {d.compare_s:.0f} s, {_ms(d.last_ms)} in the last: x{d.ratio:.2f} "
        f"[{d.ratio_low:.2f}, {d.ratio_high:.2f}], {d.rise_low_ms:+.0f} to {d.rise_high_ms:+.0f} ms"
    )
    most = 1 + gate.soak_max_p95_rise
    if d.ratio_low > most and d.rise_low_ms > gate.soak_min_p95_rise_ms:
        limit = f"the limits are x{most:g} and +{gate.soak_min_p95_rise_ms:g} ms"
        return "fail", f"slowed down while serving: {text} ({limit})"
    if d.ratio_high <= most or d.rise_high_ms <= gate.soak_min_p95_rise_ms:
        return "pass", text
    return "inconclusive", f"{text}: the interval spans the limits (x{most:g}, +{gate.soak_min_p95_rise_ms:g} ms)"


# ------------------------------------------------------------------------------------------------------ soak
def judge_soak(
    run: EnduranceRun,
    slo: SloSettings,
    gate: GateSettings,
    limits: Limits,
    memory_limit_mb: float,
    body_limit: int = 1_048_576,
) -> SuiteResult:
    """``body_limit``: the largest request body accepted (limits.max_body_bytes): what a request in flight holds."""
    load = run.load
    thresholds = {"min_hours_to_memory_limit": gate.min_hours_to_memory_limit, "memory_limit_mb": memory_limit_mb,
                  "max_p95_rise": gate.soak_max_p95_rise, "min_p95_rise_ms": gate.soak_min_p95_rise_ms,
                  "p95_ms": slo.p95_ms, "max_error_ratio": slo.max_error_ratio, "seconds": gate.soak_s}  # fmt: skip
    if not run.results:
        return SuiteResult(status="inconclusive", reason="the soak's load did not run", thresholds=thresholds)
    s = span(run.results)
    whole = s.figures(s.start, s.end)
    compare_s = min(COMPARE_S, whole.seconds * COMPARE_SHARE)
    last = s.figures(s.end - compare_s, s.end)
    memory = projections(run.samples, s, load.per_replica, load.replicas,
                         lambda _x: memory_limit_mb * MB, lambda x: x.rss_bytes)  # fmt: skip
    files = projections(run.samples, s, load.per_replica, load.replicas,
                        lambda x: x.fd_limit, lambda x: x.most_fds)  # fmt: skip
    slowed = degradation(s, compare_s)
    load_rose = _load_changed(s, load.replicas)
    measured: dict[str, float | None] = {
        "offered_rps": load.rate, "offered_rps_per_replica": load.per_replica, "replicas": float(load.replicas),
        "seconds": whole.seconds, "samples": float(len(run.samples)),
        "hours_to_memory_limit": min((p.hours for p in memory), default=None),
        "hours_to_memory_limit_low": min((p.hours_low for p in memory), default=None),
        "hours_to_memory_limit_high": min((p.hours_high for p in memory), default=None),
        "rss_growth_kb_per_1000": max((p.per_1000.slope / 1024 for p in memory), default=None),
        "rss_mb_last": max((p.now / MB for p in memory), default=None),
        "hours_to_fd_limit": min((p.hours for p in files), default=None),
        "fd_growth_per_1000": max((p.per_1000.slope for p in files), default=None),
        "p95_first_ms": slowed.first_ms, "p95_last_ms": slowed.last_ms, "p95_ratio": slowed.ratio,
        "p95_ratio_low": slowed.ratio_low, "p95_ratio_high": slowed.ratio_high, "compare_s": compare_s,
        **_late(whole),
    }  # fmt: skip
    measured = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in measured.items()}
    common = {"thresholds": thresholds, "measured": measured,
              **_common(whole, run.results[-1].prefix, _timeline(s, s.start, s.end))}  # fmt: skip
    rules: list[tuple[str, str]] = []
    if run.lost:
        rules.append(("fail", f"replicas died or were replaced during the soak: {', '.join(run.lost)}"))
    if run.resources_note:
        rules.append(("inconclusive", f"memory and open files not measured: {run.resources_note}"))
    else:
        rules.append(_horizon("memory", MEMORY, memory, gate.min_hours_to_memory_limit, load.per_replica,
                              load_rose=load_rose, per_request=IN_FLIGHT_BYTES_PER_BODY * body_limit))  # fmt: skip
        # Not strict: descriptors move with the connections open at each moment (integers, churning with the
        # load), so a flat count rarely proves that no slow growth hides under the churn: growth must be shown to
        # fail, as it is for a leak; a flat, churning count passes, its interval in the reason.
        rules.append(
            _horizon("open files", FILES, files, gate.min_hours_to_memory_limit, load.per_replica, strict=False,
                     load_rose=load_rose, per_request=IN_FLIGHT_FDS)
        )  # fmt: skip
    misses = []
    if whole.error_ratio > slo.max_error_ratio:
        misses.append(f"error ratio {whole.error_ratio:.2%} > {slo.max_error_ratio:.2%} over the soak")
    if last.p95_ms is not None and last.p95_ms > slo.p95_ms:
        misses.append(f"p95 {last.p95_ms:.0f} ms > {slo.p95_ms:g} ms in the last {compare_s:.0f} s")
    if misses:
        rules.append(("fail", "; ".join(misses)))
    cpu_samples = [c for r in run.results for c in r.cpu]
    distorted = distortion(whole.generator_load, whole.machine_idle, None, limits, whole.generator_wait)
    if distorted and cpu_samples:
        rules.append(("inconclusive", f"latency not judged: {distorted}"))
    else:
        rules.append(_slowing(slowed, gate))
    header = (f"{whole.seconds:.0f} s at {load.rate:.0f} req/s on the same {load.replicas} replica(s) "
              f"({whole.requests} requests, {whole.failures} errors, {whole.late_sends} sends late)")  # fmt: skip
    failed = [text for st, text in rules if st == "fail"]
    unsure = [text for st, text in rules if st == "inconclusive"]
    if failed:
        also = f"; could not tell: {'; '.join(unsure)}" if unsure else ""
        return SuiteResult(status="fail", reason=f"{'; '.join(failed)}{also} ({header})", **common)
    if unsure:
        return SuiteResult(status="inconclusive", reason=f"{'; '.join(unsure)} ({header})", **common)
    if whole.requests < gate.min_requests:
        reason = f"only {whole.requests} requests (modelops:gate.min_requests is {gate.min_requests})"
        return SuiteResult(status="inconclusive", reason=reason, **common)
    return SuiteResult(status="pass", reason=f"{header}: " + "; ".join(text for _, text in rules), **common)
