"""Anomaly detection in Python (the same method as the AnomalyFlagged rule): sustained anomalies fire after the
``for:`` hold, single noisy points and clean noise do not, counted signals need their events, drops are seen
downwards only."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.monitor.anomaly import alert_starts, condition, detect, firing, robust_scores
from stacks.config import MonitorSettings

SETTINGS = MonitorSettings()
HOLD = SETTINGS.anomaly_for_s // SETTINGS.scrape_interval_s  # evaluations the condition must hold beyond the first


def _latency(seed: int, n: int = 600) -> np.ndarray:
    """p95 latency, ms: noisy around 40 ms with a slow daily-like swing and log-normal jitter."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 40 + 5 * np.sin(t / 80) + rng.lognormal(0, 0.25, n) * 3


def _alerts(series, **kw) -> list[int]:
    held = condition(series, SETTINGS.anomaly_window, SETTINGS.anomaly_threshold, kw.pop("min_scale", 1.0),
                     kw.pop("direction", "up"), **kw)  # fmt: skip
    return alert_starts(firing(held, HOLD))


@pytest.mark.parametrize("seed", range(5))
def test_a_clean_noisy_latency_series_raises_no_alert(seed):
    assert _alerts(_latency(seed)) == []


@pytest.mark.parametrize("seed", range(5))
def test_a_slow_spell_fires_once_after_the_hold_and_a_single_slow_point_does_not(seed):
    series = _latency(seed)
    series[150] += 80  # one slow scrape: an outlier, not an incident
    series[320:360] += 80  # a slow replica for 40 scrapes
    assert _alerts(series) == [320 + HOLD]


def test_detect_flags_points_and_the_spike_does_not_hide_itself_by_moving_its_own_baseline():
    series = np.r_[np.full(100, 10.0) + np.random.default_rng(0).normal(0, 0.5, 100), [40.0]]
    (anomaly,) = detect(series, window=60, threshold=6.0)
    assert anomaly.index == 100 and anomaly.baseline == pytest.approx(10.0, abs=0.5)


def test_the_scale_is_the_interquartile_range_of_the_points_before_with_linear_quantiles():
    series = [1.0, 2.0, 3.0, 4.0, 10.0]  # baseline 1..4: median 2.5, IQR 3.25 - 1.75 = 1.5
    medians, scores = robust_scores(series, window=4, min_scale=0.0)
    assert medians.tolist() == [2.5]
    assert scores[0] == pytest.approx((10.0 - 2.5) / (1.5 / 1.349))


def test_an_error_burst_fires_only_with_enough_errors_in_the_window():
    ratio, errors = np.zeros(300), np.zeros(300)
    ratio[200:230], errors[200:230] = 0.05, 30.0  # 5 % of requests failing, 30 in the window
    lone_ratio, lone_errors = np.zeros(300), np.zeros(300)
    lone_ratio[200:230], lone_errors[200:230] = 1 / 60, 1.0  # one 5xx at 1 req/s stays in a 60-s window
    kw = {"min_scale": 0.001, "min_events": SETTINGS.anomaly_min_events}
    assert _alerts(ratio, events=errors, **kw) == [200 + HOLD]
    assert _alerts(lone_ratio, events=lone_errors, **kw) == []


def test_a_traffic_drop_is_seen_downwards_only_and_needs_traffic_to_drop_from():
    rng = np.random.default_rng(3)
    busy = 10 + rng.normal(0, 0.3, 400)
    busy[300:] = 1.0
    quiet = busy / 1000  # 0.01 req/s: fewer than min_events requests in a rate window
    kw = {"min_scale": 1e-4, "min_events": SETTINGS.anomaly_min_events, "baseline_events": SETTINGS.rate_window_s}
    assert _alerts(busy, direction="down", **kw) == [300 + HOLD]
    assert _alerts(busy, direction="up", **kw) == []
    assert _alerts(quiet, direction="down", **kw) == []
    assert _alerts(quiet, direction="down", min_scale=1e-4) != [], "without the events condition it would fire"


def test_too_short_a_window_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="anomaly_window"):
        detect([1.0] * 10, window=2)
