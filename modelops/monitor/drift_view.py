"""`modelops drift`: the on-demand view of the drift monitor's detector, over the rows the prediction log holds.

The same detector as the monitor process (modelops/monitor/watch.py), replayed: the same reference signals and
CUSUM (modelops/monitor/online.py), the same thresholds from the same ``monitor.drift`` settings, the same chunks
(modelops/monitor/chunks.py cuts the log by the rows' own times, not by when somebody looked). A monitor that has
read the same rows since the first of them is in the same state: same sums, same drifted signals, same verdict (a
test holds the two to it).

One difference, said in the report: the view may take **one look now**. Rows of intervals that are not closed yet
(the monitor judges them at its next look, together with whatever arrives until then) are judged as one more chunk
when there are at least ``min_chunk_rows`` of them, marked ``provisional``. Without it a command run right after
traffic would wait up to an interval for an answer.

Where the log no longer holds the rows the monitor saw first (rotation, retention) or the monitor started after
them, the view starts its sums at zero: both then agree from the first chunk at which the monitor's sums are at 0
or at their cap too (a CUSUM forgets its past there).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from modelops.monitor import chunks
from modelops.monitor.drift import (
    DRIFT,
    INCONCLUSIVE,
    NO_DRIFT,
    ChunkRecord,
    DriftReport,
    Reference,
    SignalView,
    describe_classes,
    describe_feature,
)
from modelops.monitor.online import ChunkVerdict, Cusum, OnlineReference, thresholds
from stacks.config import MonitorSettings


class LoggedRow(Protocol):
    @property
    def ts(self) -> float: ...
    @property
    def features(self) -> list[float]: ...
    @property
    def prediction(self) -> str: ...


def _judge(
    cusum: Cusum, rows: Sequence[LoggedRow], provisional: bool, closes: float
) -> tuple[ChunkVerdict, ChunkRecord]:
    verdict = cusum.update(
        np.asarray([r.features for r in rows], dtype=float), [r.prediction for r in rows], rows[0].ts, rows[-1].ts
    )
    record = ChunkRecord(
        first_ts=rows[0].ts,
        last_ts=rows[-1].ts,
        closes=closes,
        rows=verdict.rows,
        drifted=verdict.drifted,
        provisional=provisional,
        statistics=verdict.statistics,
    )
    return verdict, record


def _when(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def judge_log(
    reference: Reference,
    rows: Sequence[LoggedRow],
    settings: MonitorSettings,
    now: float,
    model_version: str = "",
    look_now: bool = True,
) -> DriftReport:
    """The detector replayed over ``rows`` (one model version's, oldest first) as of ``now``, and the descriptive
    figures of the newest ``settings.window`` of them. ``look_now``: judge the rows of open intervals as one more
    (provisional) chunk when there are enough of them."""
    drift = settings.drift
    online = OnlineReference.of(reference, drift.pca_variance)
    limits = thresholds(online, drift)
    cusum = Cusum(online, limits)
    figures = {
        "interval_s": drift.interval_s,
        "min_chunk_rows": drift.min_chunk_rows,
        "max_false_alarms_per_day": drift.max_false_alarms_per_day,
        **limits.to_dict(),
    }
    rows = sorted(rows, key=lambda r: r.ts)
    common = {"model_version": model_version, "looked_at": now, "thresholds": figures, "reference_rows": online.rows}
    if not rows:
        return DriftReport(status=INCONCLUSIVE, reason="no logged rows", rows=0, **common)

    chunker: chunks.Chunker[LoggedRow] = chunks.Chunker(drift.interval_s, drift.min_chunk_rows, start=rows[0].ts)
    chunker.add(rows)
    verdicts, records = [], []
    for chunk in chunker.close(chunks.closed_until(now, drift.interval_s)):
        verdict, record = _judge(
            cusum, chunk, False, chunks.interval_start(chunk[-1].ts, drift.interval_s) + drift.interval_s
        )
        verdicts.append(verdict)
        records.append(record)
    rest = chunker.rest()
    if look_now and len(rest) >= drift.min_chunk_rows:
        verdict, record = _judge(cusum, rest, True, now)
        verdicts.append(verdict)
        records.append(record)
        rest = []

    recent = rows[-settings.window :]
    x = np.asarray([r.features for r in recent], dtype=float)
    features = [describe_feature(f.name, f.sample, x[:, i]) for i, f in enumerate(reference.features)]
    classes = describe_classes(reference, [r.prediction for r in recent])
    judged = sum(v.rows for v in verdicts)
    common.update(
        rows=judged,
        rows_waiting=len(rest),
        first_ts=rows[0].ts,
        last_ts=rows[-1].ts,
        chunks=records,
        recent_rows=len(recent),
        features=features,
        classes=classes,
    )
    if not verdicts:
        return DriftReport(
            status=INCONCLUSIVE,
            reason=f"only {len(rows)} logged rows of {model_version or 'the model'}, fewer than a chunk "
            f"(modelops:monitor.drift.min_chunk_rows = {drift.min_chunk_rows}): send more traffic, raise the "
            "log's sample rate, or lower min_chunk_rows (the thresholds follow it)",
            **common,
        )
    last = verdicts[-1]
    signals = [
        SignalView(
            signal=name,
            cusum=value,
            max_cusum=max(r.statistics[name] for r in records),
            drifted=name in last.drifted,
            last_effect_sd=last.effects[name],
        )
        for name, value in last.statistics.items()
    ]
    h = limits.h
    where = f"after {len(records)} chunk(s), {judged} rows"
    if records[-1].provisional:
        where += (
            f"; the last chunk ({records[-1].rows} rows from {_when(records[-1].first_ts)}) is this view's own look "
            "now: the monitor judges those rows at its next look"
        )
    if last.drift:
        reason = f"drifted: {', '.join(last.drifted)}: CUSUM above h = {h:.2f} {where}"
        return DriftReport(status=DRIFT, reason=reason, signals=signals, **common)
    top = max(signals, key=lambda s: s.cusum)
    highest = f"highest {top.signal} at {top.cusum:.2f}" if top.cusum > 0 else "every one at 0"
    reason = f"no signal's CUSUM above h = {h:.2f} ({highest}) {where}"
    return DriftReport(status=NO_DRIFT, reason=reason, signals=signals, **common)
