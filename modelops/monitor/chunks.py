"""Which logged rows the drift detector judges together: chunks cut by the rows' own log times, so the monitor
process (modelops/monitor/watch.py) and the on-demand view (`modelops drift`, modelops/monitor/drift_view.py) cut
the same log into the same chunks, whenever and however often they look.

Time is divided into **intervals** of ``monitor.drift.interval_s`` seconds aligned on the epoch (a 60-s interval
starts on the minute). When an interval closes, its rows join the pending chunk; the chunk is judged at the first
interval end where it holds at least ``min_chunk_rows`` rows (fewer: it waits for the next interval's rows).

Why by log time and not by "whatever the last look read" (what the monitor first did): a chunk that depends on when
the monitor happened to wake up cannot be reproduced from the log, so the on-demand view could only approximate
the monitor. With intervals the chunks are a function of the rows alone, and a monitor that missed a look (a busy
machine) still judges every interval on its own.

An interval is closed ``settle_s`` after its end: the replicas' log writers write what they queued every 0.2 s
(bento/prediction_log.py), so rows of an interval are in the files a moment after it ends. A row that reaches the
monitor after its interval was closed anyway (a writer stalled for longer) is **late**: the monitor judges it with the
next chunk and counts it; the view, which reads the log afterwards, finds it in its own interval — the one case in
which the two can cut differently, and the monitor's ``late_rows`` says whether it happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import groupby
from typing import Generic, Protocol, TypeVar

MAX_SETTLE_S = 2.0


class Timed(Protocol):
    @property
    def ts(self) -> float: ...


R = TypeVar("R", bound=Timed)


def settle_s(interval_s: float) -> float:
    """How long after an interval's end it is closed: ten writer ticks, at most half an interval."""
    return min(MAX_SETTLE_S, interval_s / 2)


def interval_start(ts: float, interval_s: float) -> float:
    return math.floor(ts / interval_s) * interval_s


def closed_until(now: float, interval_s: float) -> float:
    """The end of the newest interval that is closed at ``now``."""
    return interval_start(now - settle_s(interval_s), interval_s)


def next_look(now: float, interval_s: float) -> float:
    """When the next interval closes (a look then judges it)."""
    return closed_until(now, interval_s) + interval_s + settle_s(interval_s)


class Chunker(Generic[R]):
    """Rows in, chunks out (see the module docstring). ``start``: no row before it is expected (the first row's time,
    or the monitor's start); intervals are aligned on the epoch whatever it is."""

    def __init__(self, interval_s: float, min_rows: int, start: float) -> None:
        self.interval_s = interval_s
        self.min_rows = min_rows
        self.closed = interval_start(start, interval_s)  # every interval ending at or before this is closed
        self.open: list[R] = []  # rows of intervals not closed yet
        self.pending: list[R] = []  # rows of closed intervals, fewer than a chunk
        self.late = 0

    @property
    def waiting(self) -> int:
        """Rows not judged yet."""
        return len(self.open) + len(self.pending)

    def add(self, rows: Iterable[R]) -> None:
        for row in rows:
            if row.ts < self.closed:
                self.late += 1
                self.pending.append(row)
            else:
                self.open.append(row)

    def close(self, until: float) -> list[list[R]]:
        """Close every interval that ends at or before ``until``; the chunks completed, oldest first."""
        end = interval_start(until, self.interval_s)
        if end <= self.closed:
            return []
        self.open.sort(key=lambda r: r.ts)
        cut = next((i for i, r in enumerate(self.open) if r.ts >= end), len(self.open))
        due, self.open = self.open[:cut], self.open[cut:]
        chunks: list[list[R]] = []
        for _start, rows in groupby(due, key=lambda r: interval_start(r.ts, self.interval_s)):
            self.pending.extend(rows)
            if len(self.pending) >= self.min_rows:
                chunks.append(self.pending)
                self.pending = []
        if len(self.pending) >= self.min_rows:  # late rows alone completed a chunk
            chunks.append(self.pending)
            self.pending = []
        self.closed = end
        return chunks

    def rest(self) -> list[R]:
        """Every row not judged yet, oldest first (what a look now would judge)."""
        return sorted([*self.pending, *self.open], key=lambda r: r.ts)
