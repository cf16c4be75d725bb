"""One colour's client traffic over a window: requests, failures and p95, for the bake after a switch.

Where the figures come from, as for the canary (modelops/canary.py): a Prometheus started for the deployment
(`modelops up --monitoring`), else HAProxy's per-backend counters (local target) with the p95 from the replicas' own
/metrics histograms, both differenced over the window. Unlike the canary, which compares two colours, the bake
watches one: the version that just went live, against the SLO.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from modelops.canary import (
    DURATION_BUCKETS,
    PREDICT_ENDPOINT,
    backend_counters,
    histogram_quantile,
    replica_buckets,
)
from modelops.targets.base import Target, TargetStatus

SOURCE_PROMETHEUS = "prometheus"
SOURCE_HAPROXY = "haproxy+replicas"


@dataclass(frozen=True)
class TrafficWindow:
    requests: int
    errors: int  # 5xx answered, plus requests the balancer could get no answer for
    p95_ms: float | None  # None: no request finished in the window
    seconds: float
    source: str

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class ColourTraffic(Protocol):
    name: str

    def begin(self, status: TargetStatus, colour: str) -> None: ...

    def observe(self, status: TargetStatus) -> TrafficWindow: ...


def _buckets(urls: list[str]) -> dict[str, dict[float, float]]:
    """Cumulative /predict duration buckets per replica URL (summed over response codes); {} for one that fails."""
    with httpx.Client(timeout=2.0) as client:
        read = {url: replica_buckets(url, client) for url in urls}
    return {url: {} if isinstance(buckets, str) else buckets for url, buckets in read.items()}


class HaproxyColourTraffic:
    """Counts from HAProxy's backend of the colour, p95 from its replicas' histograms (local target)."""

    name = SOURCE_HAPROXY

    def __init__(self, stats: Callable[[], list[dict[str, str]]], clock: Callable[[], float] = time.monotonic):
        self.stats = stats
        self.clock = clock
        self._start: tuple[str, float, tuple[int, int], dict[str, dict[float, float]]] | None = None

    def _counters(self, colour: str) -> tuple[int, int]:
        return backend_counters(self.stats()).get(colour, (0, 0))

    @staticmethod
    def _urls(status: TargetStatus, colour: str) -> list[str]:
        pool = status.pools.get(colour)
        return [r.url for r in pool.replicas] if pool else []

    def begin(self, status: TargetStatus, colour: str) -> None:
        self._start = (colour, self.clock(), self._counters(colour), _buckets(self._urls(status, colour)))

    def observe(self, status: TargetStatus) -> TrafficWindow:
        if self._start is None:
            raise RuntimeError("observe() before begin()")
        colour, started, (req0, err0), before = self._start
        req1, err1 = self._counters(colour)
        merged: dict[float, float] = {}
        for url, after in _buckets(self._urls(status, colour)).items():
            for bound, count in after.items():
                merged[bound] = merged.get(bound, 0.0) + count - before.get(url, {}).get(bound, 0.0)
        p95 = histogram_quantile(0.95, merged)
        return TrafficWindow(
            requests=max(0, req1 - req0), errors=max(0, err1 - err0), p95_ms=p95 * 1000 if p95 is not None else None,
            seconds=self.clock() - started, source=self.name,
        )  # fmt: skip


class PrometheusColourTraffic:
    """Counts and p95 of the colour's replicas from the deployment's Prometheus."""

    name = SOURCE_PROMETHEUS

    def __init__(self, query: Callable[[str], list[dict]], clock: Callable[[], float] = time.monotonic):
        self.query = query
        self.clock = clock
        self._start: tuple[str, float] | None = None

    def begin(self, status: TargetStatus, colour: str) -> None:
        self._start = (colour, self.clock())

    def _value(self, promql: str) -> float | None:
        rows = self.query(promql)
        values = [float(r["value"][1]) for r in rows if not math.isnan(float(r["value"][1]))]
        return values[0] if values else None

    def observe(self, status: TargetStatus) -> TrafficWindow:
        if self._start is None:
            raise RuntimeError("observe() before begin()")
        colour, started = self._start
        seconds = self.clock() - started
        rng = f"[{max(1, round(seconds))}s]"
        match = f'endpoint="{PREDICT_ENDPOINT}",colour="{colour}"'
        requests = self._value(f"sum(increase(bentoml_service_request_total{{{match}}}{rng}))") or 0.0
        errors = self._value(f'sum(increase(bentoml_service_request_total{{{match},http_response_code=~"5.."}}{rng}))')
        p95 = self._value(
            f"histogram_quantile(0.95, sum by (le) (increase({DURATION_BUCKETS}_bucket{{{match}}}{rng})))"
        )
        return TrafficWindow(round(requests), round(errors or 0.0), p95 * 1000 if p95 is not None else None, seconds,
                             self.name)  # fmt: skip


def colour_traffic(target: Target, prometheus_url: str | None = None) -> ColourTraffic | None:
    """A running Prometheus when there is one, else HAProxy's stats (local target); None where neither exists
    (kind/aws without a Prometheus): the bake then cannot judge traffic and says so."""
    if prometheus_url:
        from modelops.monitor.prometheus import query

        return PrometheusColourTraffic(lambda promql: query(prometheus_url, promql))
    api = getattr(target, "api", None)
    if api is not None and hasattr(api, "stats"):
        return HaproxyColourTraffic(api.stats)
    return None
