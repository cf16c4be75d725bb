"""Memory of serving processes: the RSS of a replica and all its workers, sampled over time, and its trend.

A small sampler for the bake (modelops/bake.py), which watches the live replicas' memory after a switch. A replica
is a `bentoml serve` process plus the worker processes it starts; its memory is theirs summed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import psutil

MB = 1024 * 1024


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
class Trend:
    slope_mb_per_h: float
    span_s: float
    samples: int


def trend(samples: list[tuple[float, float]]) -> Trend | None:
    """Least-squares slope of (seconds, MB) samples in MB per hour; None with fewer than 3 samples."""
    if len(samples) < 3:
        return None
    t = np.array([s[0] for s in samples], dtype=float)
    mb = np.array([s[1] for s in samples], dtype=float)
    span = float(t.max() - t.min())
    if span <= 0:
        return None
    slope = float(np.polyfit(t, mb, 1)[0])  # MB per second
    return Trend(slope_mb_per_h=slope * 3600, span_s=span, samples=len(samples))
