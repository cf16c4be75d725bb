"""Anomaly detection: injected spikes in noisy latency and error series are found; clean noise raises nothing."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.monitor.anomaly import detect
from stacks.config import MonitorSettings

SETTINGS = MonitorSettings()


def _latency(seed: int, n: int = 600) -> np.ndarray:
    """p95 latency, ms: noisy around 40 ms with a slow daily-like swing and log-normal jitter."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 40 + 5 * np.sin(t / 80) + rng.lognormal(0, 0.25, n) * 3


@pytest.mark.parametrize("seed", range(5))
def test_a_clean_noisy_latency_series_raises_no_alarm(seed):
    assert detect(_latency(seed), SETTINGS.anomaly_window, SETTINGS.anomaly_threshold) == []


@pytest.mark.parametrize("seed", range(5))
def test_injected_latency_spikes_are_found_at_their_positions(seed):
    series = _latency(seed)
    spikes = [150, 320, 321, 322, 500]  # a single slow point and a three-point slow spell (a slow replica)
    series[spikes] += 80
    found = [a.index for a in detect(series, SETTINGS.anomaly_window, SETTINGS.anomaly_threshold)]
    assert found == spikes


def test_an_error_ratio_that_was_zero_flags_its_first_burst_of_errors():
    errors = np.zeros(300)
    errors[200:203] = 0.05  # 5 % of requests failing for three scrapes
    found = detect(errors, window=60, threshold=6.0, min_scale=0.001)
    assert [a.index for a in found] == [200, 201, 202]
    assert found[0].baseline == 0.0


def test_a_spike_does_not_hide_itself_by_moving_its_own_baseline():
    series = np.r_[np.full(100, 10.0) + np.random.default_rng(0).normal(0, 0.5, 100), [40.0]]
    (anomaly,) = detect(series, window=60, threshold=6.0)
    assert anomaly.index == 100 and anomaly.baseline == pytest.approx(10.0, abs=0.5)


def test_a_drop_is_not_an_alarm_upwards_but_is_when_asked_for():
    series = _latency(1)
    series[400] = 0.0
    assert detect(series, 60, 6.0, direction="up") == []
    assert [a.index for a in detect(series, 60, 6.0, direction="down")] == [400]


def test_too_short_a_window_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="anomaly_window"):
        detect([1.0] * 10, window=2)
