"""An opt-in cache of predictions: bounded LRU with a TTL, keyed by (model version, canonical hash of one row).

Per row, not per request. A request's rows are looked up one by one and only the rows not found go to the model,
so requests that overlap without being equal (a batch client re-sending some rows, a single-row request whose row
was part of an earlier batch) still hit, and the model computes each distinct row once. The price is one hash per
row (blake2b of 104 bytes: well under a microsecond) and one entry per row; a request-level key would hit only on
byte-identical requests and would hold a 1,000-row answer as one entry. Rows are independent for the models served
here (a prediction never depends on the other rows of its request), which is what makes row-level reuse correct.

Correctness, by construction:
  * the key holds the model version (the BentoML model tag): a replica of another version never finds this one's
    answers, so promotion needs no invalidation;
  * the key is the row as the model receives it: the validated float64 values, little-endian, C order, hashed with
    their shape and dtype. Only rows that passed the input contract are looked up, and only the results of a model
    call that succeeded are stored: bad input never reaches the cache, and an error is never cached;
  * entries expire ``ttl_s`` after they were computed (a hit does not extend them) and the least recently used
    entry goes when ``max_entries`` is reached: memory stays bounded whatever the traffic.

Counters (hits, misses, evictions, expirations, entries) are kept in :class:`CacheStats` and, given a
:class:`CacheMetrics`, exported to Prometheus: BentoML serves ``/metrics`` from prometheus_client in multiprocess
mode, so the metrics are created after the worker set ``PROMETHEUS_MULTIPROC_DIR`` (in the service's ``__init__``),
and the entries gauge sums the live workers of a replica.

Settings come from the environment (:func:`from_env`; the deployment sets them from ``modelops:cache`` in the stack
file, stacks/cache.py). This module runs inside the bento: standard library and numpy only (prometheus_client, a
dependency of BentoML itself, is imported only when metrics are asked for).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")

# Environment the service reads; stacks/cache.py:cache_env writes them for every target.
ENV_ENABLED = "MODELOPS_CACHE_ENABLED"
ENV_MAX_ENTRIES = "MODELOPS_CACHE_MAX_ENTRIES"
ENV_TTL_S = "MODELOPS_CACHE_TTL_S"
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_TTL_S = 300.0
# Metric names (shared with the tests and the monitor instead of repeated as literals). Counters get "_total".
METRIC_PREFIX = "modelops_prediction_cache"
HITS, MISSES, EVICTIONS, EXPIRATIONS, ENTRIES = "hits", "misses", "evictions", "expirations", "entries"
COUNTERS = (HITS, MISSES, EVICTIONS, EXPIRATIONS)
_CANONICAL = np.dtype("<f8")
_PERSON = b"modelops-row"  # blake2b personalisation: these digests cannot be confused with any other use

Key = tuple[str, bytes]


class CacheConfigError(ValueError):
    """The cache's environment is invalid. The message names the variable, the allowed values and the fix."""


@dataclass
class CacheStats:
    hits: int = 0  # rows answered from the cache
    misses: int = 0  # rows that went to the model (expired entries included)
    evictions: int = 0  # entries dropped to stay within max_entries
    expirations: int = 0  # entries found older than ttl_s (each also counts as a miss)
    entries: int = 0

    @property
    def hit_ratio(self) -> float:
        looked_up = self.hits + self.misses
        return self.hits / looked_up if looked_up else 0.0


class CacheMetrics:
    """The cache's counters in prometheus_client, under ``modelops_prediction_cache_*``.

    Create it where the metrics should live: in a BentoML worker, after startup (the service's ``__init__``), so
    that prometheus_client writes to the multiprocess directory /metrics reads. ``registry`` defaults to
    prometheus_client's global one (the one BentoML's /metrics collects); tests pass their own."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client  # deferred: must follow the worker's PROMETHEUS_MULTIPROC_DIR (see module doc)

        where = {} if registry is None else {"registry": registry}
        self.counters = {
            name: prometheus_client.Counter(f"{METRIC_PREFIX}_{name}", f"prediction cache {name} (rows)", **where)
            for name in COUNTERS
        }
        # livesum: the replica's entries are the sum over its live workers (each worker has its own cache).
        self.entries = prometheus_client.Gauge(
            f"{METRIC_PREFIX}_{ENTRIES}", "rows held by the prediction cache", multiprocess_mode="livesum", **where
        )

    def record(self, counts: Mapping[str, int], entries_change: int) -> None:
        for name, count in counts.items():
            if count:
                self.counters[name].inc(count)
        if entries_change:  # a change, not a value: caches sharing these metrics add up
            self.entries.inc(entries_change)


class PredictionCache(Generic[T]):
    """Bounded LRU + TTL of per-row results. Thread-safe (one lock around each lookup or store, never held while
    the model runs); the service calls it from its event loop."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        metrics: CacheMetrics | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self.metrics = metrics
        self.stats = CacheStats()
        self._entries: OrderedDict[Key, tuple[float, T]] = OrderedDict()  # key -> (expires at, result)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def keys(version: str, rows: np.ndarray) -> list[Key]:
        """One key per row: the model version and a digest of the row's canonical bytes, shape and dtype."""
        canonical = np.ascontiguousarray(rows, dtype=_CANONICAL)
        if canonical.ndim != 2:
            raise ValueError(f"rows must be a 2-D array (rows x features), got shape {canonical.shape}")
        header = f"{canonical.shape[1]}:{_CANONICAL.str}:".encode()
        return [
            (version, hashlib.blake2b(header + row.tobytes(), digest_size=16, person=_PERSON).digest())
            for row in canonical
        ]

    def get_many(self, keys: Sequence[Key]) -> list[T | None]:
        """The stored result of each key, or None (missing or expired). Hits become the most recently used."""
        now = self.clock()
        found: list[T | None] = []
        counts = dict.fromkeys(COUNTERS, 0)
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and entry[0] <= now:
                    del self._entries[key]
                    counts[EXPIRATIONS] += 1
                    entry = None
                if entry is None:
                    counts[MISSES] += 1
                    found.append(None)
                else:
                    self._entries.move_to_end(key)
                    counts[HITS] += 1
                    found.append(entry[1])
            self._count(counts)
        return found

    def put_many(self, keys: Sequence[Key], results: Sequence[T]) -> None:
        """Store each key's result (computed now: it expires ttl_s from now), evicting the least recently used."""
        if len(keys) != len(results):
            raise ValueError(f"{len(keys)} keys for {len(results)} results")
        expires = self.clock() + self.ttl_s
        counts = dict.fromkeys(COUNTERS, 0)
        with self._lock:
            for key, result in zip(keys, results, strict=True):
                self._entries[key] = (expires, result)
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                counts[EVICTIONS] += 1
            self._count(counts)

    async def predict(
        self, version: str, rows: np.ndarray, compute: Callable[[np.ndarray], Awaitable[Sequence[T]]]
    ) -> list[T]:
        """The results for ``rows``: cached rows from the cache, the others from ``compute`` (called once, with
        only those rows, in order) and then stored. When ``compute`` raises, nothing is stored and the exception
        propagates: the caller answers the request as it would without a cache."""
        keys = self.keys(version, rows)
        found = self.get_many(keys)
        missing = [i for i, result in enumerate(found) if result is None]
        if not missing:
            return found  # type: ignore[return-value]  # no None left
        computed = list(await compute(rows if len(missing) == len(found) else rows[missing]))
        if len(computed) != len(missing):
            raise ValueError(f"compute returned {len(computed)} results for {len(missing)} rows")
        self.put_many([keys[i] for i in missing], computed)
        for i, result in zip(missing, computed, strict=True):
            found[i] = result
        return found  # type: ignore[return-value]

    def front(
        self, version: str, compute: Callable[[np.ndarray], Awaitable[Sequence[T]]]
    ) -> Callable[[np.ndarray], Awaitable[list[T]]]:
        """``compute`` with this cache in front of it, for the model ``version``: what the service calls."""

        async def predict(rows: np.ndarray) -> list[T]:
            return await self.predict(version, rows, compute)

        return predict

    def _count(self, counts: dict[str, int]) -> None:
        """Under the lock: add ``counts`` to the stats and the metrics."""
        stats = self.stats
        stats.hits += counts[HITS]
        stats.misses += counts[MISSES]
        stats.evictions += counts[EVICTIONS]
        stats.expirations += counts[EXPIRATIONS]
        change, stats.entries = len(self._entries) - stats.entries, len(self._entries)
        if self.metrics is not None:
            self.metrics.record(counts, change)


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = False
    max_entries: int = DEFAULT_MAX_ENTRIES
    ttl_s: float = DEFAULT_TTL_S


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def settings_from_env(env: Mapping[str, str]) -> CacheSettings:
    """The cache settings in ``env``; CacheConfigError naming the variable and the fix when one is invalid."""
    flag = env.get(ENV_ENABLED, "").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise CacheConfigError(f"{ENV_ENABLED}={env[ENV_ENABLED]!r}: set it to true or false (modelops:cache.enabled)")
    if flag in _FALSE:
        return CacheSettings(enabled=False)
    max_entries = _number(env, ENV_MAX_ENTRIES, int, DEFAULT_MAX_ENTRIES, "an integer >= 1")
    ttl_s = _number(env, ENV_TTL_S, float, DEFAULT_TTL_S, "a number of seconds > 0")
    if max_entries < 1:
        raise CacheConfigError(f"{ENV_MAX_ENTRIES}={max_entries}: must be an integer >= 1 (modelops:cache.max_entries)")
    if not 0 < ttl_s < float("inf"):
        raise CacheConfigError(f"{ENV_TTL_S}={ttl_s}: must be a number of seconds > 0 (modelops:cache.ttl_s)")
    return CacheSettings(enabled=True, max_entries=max_entries, ttl_s=ttl_s)


def _number(env: Mapping[str, str], name: str, kind: type, default: float, allowed: str) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise CacheConfigError(f"{name}={raw!r}: must be {allowed} (set modelops:cache in the stack file)") from None


_process_metrics: list[CacheMetrics] = []


def process_metrics() -> CacheMetrics:
    """This process's metrics, created on first use: prometheus_client refuses a second registration of a name, and
    a process with several caches (the benchmark service has two classifiers) counts them together."""
    if not _process_metrics:
        _process_metrics.append(CacheMetrics())
    return _process_metrics[0]


def from_env(
    env: Mapping[str, str], metrics: Callable[[], CacheMetrics | None] = process_metrics
) -> PredictionCache | None:
    """The cache the environment asks for, with its Prometheus metrics; None when the cache is off (the default)."""
    settings = settings_from_env(env)
    if not settings.enabled:
        return None
    return PredictionCache(settings.max_entries, settings.ttl_s, metrics=metrics())
