"""Anomalies in latency and error-ratio time series: rolling median and median-absolute-deviation bands.

Each point is compared with the ``window`` points before it (never with itself, so a spike cannot hide itself by
moving the baseline): its robust z-score is ``(x - median) / (1.4826 * MAD)``, the MAD scaled to a normal
distribution's standard deviation by scipy. Median and MAD ignore the outliers they are looking for, where a
mean and a standard deviation (or an EWMA) are dragged towards them.

A flat baseline has a MAD of 0 (an error ratio that is 0 for an hour): ``min_scale`` is the smallest spread assumed,
in the series' own unit, so that a first error is judged against it rather than divided by zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import median_abs_deviation

Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class Anomaly:
    index: int
    value: float
    baseline: float  # rolling median of the window before the point
    score: float  # robust z-score


def robust_scores(series: Sequence[float], window: int, min_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(baselines, scores) for points window.. of the series; earlier points have no history to judge them by."""
    values = np.asarray(series, dtype=float)
    if len(values) <= window:
        return np.array([]), np.array([])
    history = sliding_window_view(values[:-1], window)  # row i: the window points before point i + window
    medians = np.median(history, axis=1)
    scales = np.maximum(median_abs_deviation(history, axis=1, scale="normal"), min_scale)
    return medians, (values[window:] - medians) / scales


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
    if direction == "up":
        hits = scores > threshold
    elif direction == "down":
        hits = scores < -threshold
    else:
        hits = np.abs(scores) > threshold
    values = np.asarray(series, dtype=float)
    return [
        Anomaly(
            index=int(i) + window, value=float(values[i + window]), baseline=float(medians[i]), score=float(scores[i])
        )
        for i in np.flatnonzero(hits)
    ]
