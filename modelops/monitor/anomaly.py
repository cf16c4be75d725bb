"""Anomalies in the deployment's time series, the same method as the ``AnomalyFlagged`` rule (stacks/alerting.py).

One method, written twice — in PromQL for Prometheus and here for ``modelops monitor`` (without Prometheus) and
for measuring the rule's false alarms over a simulated day (:mod:`modelops.monitor.anomaly_day`) — and a test runs
both on the same series (``promtool test rules`` and :func:`firing`).

A point's **robust z-score** is its distance from the median of the ``window`` points *before* it (never itself:
a spike cannot hide by moving its own baseline), divided by their interquartile range / 1.349 (a normal
distribution's sd), floored at ``min_scale`` in the series' unit (a flat baseline has no spread: a first error is
judged against the floor, not divided by zero). Quantiles interpolate linearly between ranks, as Prometheus'
``quantile_over_time`` and numpy's default do. Median and IQR ignore the outliers they look for, where a mean and a
standard deviation (or an EWMA) are dragged towards them. The IQR replaces the MAD the first version used: PromQL
cannot take a median of deviations from a median over a range, so the Python side follows PromQL.

A **condition** holds at a point whose score passes ``threshold`` in its direction (latency and errors up, traffic
down, class mix either way) and, for counted signals, whose window held at least ``min_events`` events. An alert
**fires** once its condition held at every evaluation for ``for_points`` more steps (Prometheus' ``for:``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from stacks.alerting import IQR_TO_SIGMA

Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class Anomaly:
    index: int
    value: float
    baseline: float  # median of the window before the point
    score: float  # robust z-score


def _history(values: np.ndarray, window: int) -> np.ndarray:
    return sliding_window_view(values[:-1], window)  # row i: the window points before point i + window


def robust_scores(series: Sequence[float] | np.ndarray, window: int, min_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(baselines, scores) for points window.. of the series; earlier points have no history to judge them by."""
    values = np.asarray(series, dtype=float)
    if len(values) <= window:
        return np.array([]), np.array([])
    history = _history(values, window)
    q25, medians, q75 = np.quantile(history, [0.25, 0.5, 0.75], axis=1)
    scales = np.maximum((q75 - q25) / IQR_TO_SIGMA, min_scale)
    return medians, (values[window:] - medians) / scales


def _passes(scores: np.ndarray, threshold: float, direction: Direction) -> np.ndarray:
    if direction == "up":
        return scores > threshold
    if direction == "down":
        return scores < -threshold
    return np.abs(scores) > threshold


def detect(
    series: Sequence[float],
    window: int = 60,
    threshold: float = 6.0,
    min_scale: float = 1e-9,
    direction: Direction = "up",
) -> list[Anomaly]:
    """Points whose robust z-score passes ``threshold`` in ``direction`` (latency and errors: up)."""
    if window < 3:
        raise ValueError(f"window must be at least 3 points, got {window}: set modelops:monitor.anomaly_window")
    medians, scores = robust_scores(series, window, min_scale)
    values = np.asarray(series, dtype=float)
    return [
        Anomaly(
            index=int(i) + window, value=float(values[i + window]), baseline=float(medians[i]), score=float(scores[i])
        )
        for i in np.flatnonzero(_passes(scores, threshold, direction))
    ]


def condition(
    series: Sequence[float] | np.ndarray,
    window: int,
    threshold: float,
    min_scale: float,
    direction: Direction,
    events: Sequence[float] | np.ndarray | None = None,
    min_events: float | None = None,
    baseline_events: float | None = None,
) -> np.ndarray:
    """Per point: does the anomaly condition hold? The first ``window`` points never do (no full baseline).

    ``events`` (aligned with the series) with ``min_events``: the point also needs that many events in its window
    (errors for an error ratio). ``baseline_events`` (seconds) with ``min_events``: the baseline's median times it
    must reach ``min_events`` (a traffic drop needs traffic to drop from)."""
    values = np.asarray(series, dtype=float)
    held = np.zeros(len(values), dtype=bool)
    medians, scores = robust_scores(values, window, min_scale)
    if len(scores) == 0:
        return held
    ok = _passes(scores, threshold, direction)
    if events is not None and min_events is not None:
        ok &= np.asarray(events, dtype=float)[window:] >= min_events
    if baseline_events is not None and min_events is not None:
        ok &= medians * baseline_events >= min_events
    held[window:] = ok
    return held


def firing(held: np.ndarray, for_points: int) -> np.ndarray:
    """Per point: is the alert firing? Prometheus fires once the condition held at ``for_points`` + 1 consecutive
    evaluations (active since t0, firing when t - t0 >= for)."""
    out = np.zeros(len(held), dtype=bool)
    run = 0
    for i, h in enumerate(held):
        run = run + 1 if h else 0
        out[i] = run > for_points
    return out


def alert_starts(fires: np.ndarray) -> list[int]:
    """Indexes where an alert starts firing (each is one notification: one false alarm when nothing happened)."""
    f = np.asarray(fires, dtype=bool)
    return [int(i) for i in np.flatnonzero(f & ~np.r_[False, f[:-1]])]
