"""Memory and open files of a pool's replicas: sampled in the background, summarised, and read as a trend.

A replica is a process tree (`bentoml serve`, its supervisor and every worker; BentoML puts workers in sessions of
their own, so the local target finds them by their environment marker too). Each sample sums the tree's resident
memory (RSS) and open file descriptors; it also keeps the most descriptors any one process held, and that process's
own limit (RLIMIT_NOFILE), because a descriptor leak kills the process that hits its limit, not the tree.

RSS summed over a tree counts pages the workers share with their parent (forked, copy-on-write) once per process:
it over-states memory, never under-states it, which is the safe side for "hours until the memory limit".

Small API, for the gate's suites and for anything that watches a live pool (a bake after promotion):

    find = pool_processes(target, "candidate")      # None where the target exposes no processes (kind, aws)
    with Sampler(find) as sampler:                  # a sample a second in a background thread
        ...
    usage = summarise(sampler.samples)              # one ReplicaUsage per replica process (for summary.json)
    trend = growth(requests, rss)                   # Theil-Sen slope with its confidence interval

And a plainer reading for the bake (modelops/bake.py), which has only the live replicas' pids: ``pool_rss_mb`` of the
pool now, and ``rss_trend`` of (seconds, MB) samples, a least-squares slope in MB per hour.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import psutil
from pydantic import BaseModel
from scipy import stats

SAMPLE_S = 1.0  # seconds between samples
REFRESH_S = 10.0  # seconds between full searches for a replica's processes (cheap child lookups in between)
MB = 2**20
SERIES_POINTS = 240  # at most this many points of a replica's series go into a summary (evenly thinned)


@dataclass(frozen=True)
class Sample:
    t: float  # epoch seconds
    replica: str  # the target's name for it, e.g. green-0
    pid: int  # the replica's leading process: another pid under the same name is another process (a restart)
    rss_bytes: int  # resident memory of all its processes
    fds: int  # open file descriptors of all its processes
    processes: int
    most_fds: int  # the most descriptors one of its processes held
    fd_limit: int | None  # that process's soft limit on open descriptors (None where it cannot be read)


# What a target offers: {replica name: (leading pid, its processes now)}.
Finder = Callable[[], dict[str, tuple[int, list[psutil.Process]]]]


def pool_processes(target: object, pool: str) -> Finder | None:
    """The processes of each replica of ``pool``, where the target runs them on this machine (a target with a
    ``replica_processes(pool)`` method, e.g. the local one); None elsewhere: on kind and aws the replicas are pods
    and instances this process cannot see."""
    method = getattr(target, "replica_processes", None)
    if method is None:
        return None
    return lambda: method(pool)


def read(find: Finder, now: Callable[[], float] = time.time) -> list[Sample]:
    """One sample of every replica the finder names (a replica whose processes all vanished gives none)."""
    out = []
    t = now()
    for name, (pid, members) in sorted(find().items()):
        rss = fds = alive = most = 0
        limit = None
        for process in members:
            with contextlib.suppress(psutil.Error, OSError):
                rss += process.memory_info().rss
                count = process.num_fds()
                fds += count
                alive += 1
                if count >= most:
                    most, limit = count, _fd_limit(process)
        if alive:
            out.append(Sample(t, name, pid, rss, fds, alive, most, limit))
    return out


def _fd_limit(process: psutil.Process) -> int | None:
    try:
        soft = process.rlimit(psutil.RLIMIT_NOFILE)[0]
    except (psutil.Error, OSError, AttributeError):
        return None
    return None if soft in (-1, psutil.RLIM_INFINITY) else int(soft)


class Sampler:
    """Samples every ``interval`` seconds in a daemon thread until stopped; ``samples`` grows as it runs."""

    def __init__(self, find: Finder | None, interval: float = SAMPLE_S) -> None:
        self.find = find
        self.interval = interval
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)

    def start(self) -> Sampler:
        if self.find is not None:
            self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        return self.samples

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        assert self.find is not None
        while True:
            try:
                self.samples.extend(read(self.find))
            except Exception as exc:  # a deployment changing under the sampler costs a sample, never the suite
                self.errors.append(f"{type(exc).__name__}: {exc}")
            if self._stop.wait(self.interval):
                return


# ------------------------------------------------------------------------------------------------- summaries
class ReplicaUsage(BaseModel):
    """One replica process over a span (a suite): memory and open files, first / last / most, and the series."""

    replica: str
    pid: int
    samples: int
    processes: int  # in the last sample (the server and its workers)
    rss_mb_first: float
    rss_mb_last: float
    rss_mb_max: float
    fds_first: int
    fds_last: int
    fds_max: int
    fd_limit: int | None = None
    series: list[list[float]] = []  # [seconds since the span's first sample, RSS MB, open descriptors]


def by_process(samples: Sequence[Sample]) -> dict[tuple[str, int], list[Sample]]:
    """Samples per replica process, in time order: a replica restarted under the same name is another series."""
    out: dict[tuple[str, int], list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.t):
        out.setdefault((s.replica, s.pid), []).append(s)
    return out


def summarise(samples: Sequence[Sample]) -> list[ReplicaUsage]:
    out = []
    start = min((s.t for s in samples), default=0.0)
    for (name, pid), series in by_process(samples).items():
        step = max(1, math.ceil(len(series) / SERIES_POINTS))
        thinned = series[::step] if series[-1] in series[::step] else [*series[::step], series[-1]]
        out.append(
            ReplicaUsage(
                replica=name,
                pid=pid,
                samples=len(series),
                processes=series[-1].processes,
                rss_mb_first=series[0].rss_bytes / MB,
                rss_mb_last=series[-1].rss_bytes / MB,
                rss_mb_max=max(s.rss_bytes for s in series) / MB,
                fds_first=series[0].fds,
                fds_last=series[-1].fds,
                fds_max=max(s.fds for s in series),
                fd_limit=series[-1].fd_limit,
                series=[[round(s.t - start, 2), round(s.rss_bytes / MB, 2), float(s.fds)] for s in thinned],
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------- trends
@dataclass(frozen=True)
class Trend:
    """A robust straight-line fit y = intercept + slope * x (Theil-Sen: the median of the slopes between every
    pair of points, so a few outliers — a garbage collection, a burst of connections — do not move it), with the
    confidence interval of the slope."""

    slope: float
    low: float
    high: float
    intercept: float
    points: int
    confidence: float


BOOTSTRAP = 400  # resamples of the fallback interval
SEED = 17


def growth(xs: Sequence[float], ys: Sequence[float], confidence: float = 0.95) -> Trend | None:
    """The trend of ``ys`` against ``xs`` (e.g. RSS against requests served); None with fewer than 3 distinct xs.

    The interval is Sen's (scipy's theilslopes). Memory and descriptor counts are step functions — most samples tie —
    and then Sen's variance, which subtracts the ties, goes negative and scipy gives no interval: the interval is
    then the percentiles of the slope over resamples of the points (a flat series gives [0, 0])."""
    if len(set(xs)) < 3:
        return None
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the negative variance of a tied series (handled below)
        slope, intercept, low, high = stats.theilslopes(y, x, alpha=confidence)
    if not (math.isfinite(low) and math.isfinite(high)):
        rng = np.random.default_rng(SEED)
        slopes = []
        for _ in range(BOOTSTRAP):
            pick = rng.integers(0, len(x), len(x))
            if len(set(x[pick].tolist())) >= 2:
                slopes.append(stats.theilslopes(y[pick], x[pick]).slope)
        tail = (1 - confidence) / 2 * 100
        low, high = (float(np.percentile(slopes, tail)), float(np.percentile(slopes, 100 - tail))) if slopes else (
            -math.inf, math.inf)  # fmt: skip
    return Trend(float(slope), float(low), float(high), float(intercept), len(xs), confidence)


def hours_until(limit: float, now: float, per_hour: float) -> float:
    """Hours until a quantity at ``now`` growing by ``per_hour`` reaches ``limit`` (inf when it does not grow)."""
    if now >= limit:
        return 0.0
    if per_hour <= 0:
        return math.inf
    return (limit - now) / per_hour


# ------------------------------------------------------------------------------------------- the bake's reading
def rss_bytes(pid: int) -> int | None:
    """Resident memory of the process and every descendant (its workers), or None when it is gone."""
    try:
        leader = psutil.Process(pid)
        family = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for process in family:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def pool_rss_mb(pids: Iterable[int | None]) -> float | None:
    """RSS of every replica of a pool together, in MB; None when no replica could be measured (no pids: kind/aws)."""
    measured = [rss_bytes(pid) for pid in pids if pid is not None]
    found = [m for m in measured if m is not None]
    return sum(found) / MB if found else None


@dataclass(frozen=True)
class RssTrend:
    slope_mb_per_h: float
    span_s: float
    samples: int


def rss_trend(samples: list[tuple[float, float]]) -> RssTrend | None:
    """Least-squares slope of (seconds, MB) samples in MB per hour; None with fewer than 3 samples."""
    if len(samples) < 3:
        return None
    t = np.array([s[0] for s in samples], dtype=float)
    mb = np.array([s[1] for s in samples], dtype=float)
    span = float(t.max() - t.min())
    if span <= 0:
        return None
    slope = float(np.polyfit(t, mb, 1)[0])  # MB per second
    return RssTrend(slope_mb_per_h=slope * 3600, span_s=span, samples=len(samples))
