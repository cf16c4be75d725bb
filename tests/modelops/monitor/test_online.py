"""The monitor's online drift detector: thresholds from the false alarms a day the user accepts, per-signal CUSUMs
that find mean shifts, class-mix changes and broken correlations (PCA reconstruction error), and forget a drift
that ended. Data: a synthetic reference of correlated features, classes predicted by a fixed rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from modelops.monitor.drift import DriftError
from modelops.monitor.online import (
    RECONSTRUCTION,
    Cusum,
    OnlineReference,
    average_run_length,
    thresholds,
)
from stacks.config import DriftWatchSettings
from tests.modelops.monitor import synthetic
from tests.modelops.monitor.synthetic import NAMES, SD, draw, predict


@pytest.fixture(scope="module")
def online() -> OnlineReference:
    return synthetic.online_reference()


SETTINGS = DriftWatchSettings(interval_s=60, min_chunk_rows=100)


def _run(online: OnlineReference, chunks: list[np.ndarray], settings: DriftWatchSettings = SETTINGS) -> list:
    cusum = Cusum(online, thresholds(online, settings))
    return [cusum.update(c, predict(c)) for c in chunks]


def test_the_threshold_gives_the_run_length_asked_for_by_simulation() -> None:
    """Siegmund's approximation against 4,000 simulated CUSUMs of normal increments: the mean run length to h."""
    drift, target = -0.5, 200.0
    h = next(x / 100 for x in range(1, 2000) if average_run_length(drift, x / 100) >= target)
    rng = np.random.default_rng(1)
    s, runs, alive = np.zeros(4000), np.zeros(4000), np.ones(4000, dtype=bool)
    for step in range(1, 20_000):
        s = np.where(alive, np.maximum(0.0, s + rng.normal(drift, 1.0, 4000)), s)
        crossed = alive & (s > h)
        runs[crossed], alive[crossed] = step, False
        if not alive.any():
            break
    assert runs.mean() == pytest.approx(target, rel=0.15), f"h {h}: simulated {runs.mean():.0f} vs {target}"


def test_more_false_alarms_accepted_or_bigger_chunks_lower_the_threshold(online) -> None:
    base = thresholds(online, SETTINGS).h
    assert thresholds(online, SETTINGS.model_copy(update={"max_false_alarms_per_day": 10.0})).h < base
    assert thresholds(online, SETTINGS.model_copy(update={"min_chunk_rows": 400})).h < base
    assert thresholds(online, SETTINGS.model_copy(update={"interval_s": 1})).h > base, "more looks a day: higher h"


def test_the_allowance_sits_between_the_references_resolution_and_the_shift_to_find(online) -> None:
    limits = thresholds(online, SETTINGS)
    assert limits.statistics == 2 * (4 + 3) + 1
    assert limits.resolution == pytest.approx(stats.norm.isf(0.05 / (2 * 15)) / math.sqrt(2000))  # z / sqrt(M)
    assert limits.resolution < limits.allowance < SETTINGS.min_shift_sd


def test_a_shift_the_reference_cannot_resolve_is_raised_and_said(online) -> None:
    limits = thresholds(online, SETTINGS.model_copy(update={"min_shift_sd": 0.01}))
    assert limits.shift == pytest.approx(1.5 * limits.resolution) and "resolve" in limits.note


def test_normal_traffic_stays_quiet_for_a_simulated_day(online) -> None:
    rng = np.random.default_rng(2)
    verdicts = _run(online, [draw(rng, 300) for _ in range(1440)])
    assert sum(v.drift for v in verdicts) == 0


@pytest.mark.parametrize(("column", "shift"), [(0, 1.0), (3, -1.0), (1, 0.6)])
def test_a_shifted_feature_is_flagged_by_name_within_a_few_chunks(online, column, shift) -> None:
    rng = np.random.default_rng(3)
    normal = [draw(rng, 300) for _ in range(20)]
    shifted = [draw(rng, 300) + np.eye(4)[column] * shift * SD for _ in range(5)]
    verdicts = _run(online, normal + shifted)
    assert not any(v.drift for v in verdicts[:20])
    first = next(v for v in verdicts[20:] if v.drift)
    assert NAMES[column] in first.drifted
    assert verdicts.index(first) - 20 <= 2


def test_broken_correlations_are_found_by_the_reconstruction_error_alone(online) -> None:
    """Each feature keeps its marginal distribution, only the link between a, b and c is gone: no mean moves."""
    rng = np.random.default_rng(4)
    chunks = []
    for _ in range(5):
        rows = draw(rng, 300)
        for column in range(3):
            rows[:, column] = rng.permutation(rows[:, column])
        chunks.append(rows)
    flagged = {name for v in _run(online, chunks) for name in v.drifted}
    assert RECONSTRUCTION in flagged
    assert not flagged & set(NAMES), flagged


def test_a_changed_class_mix_is_flagged_on_the_class_signals(online) -> None:
    rng = np.random.default_rng(5)
    rows = draw(rng, 3000)
    low = rows[np.asarray(predict(rows)) == "low"][:300]  # only rows the model calls "low"
    verdict = _run(online, [low])[0]
    assert "class:low" in verdict.drifted and verdict.class_shares["low"] == 1.0


def test_a_drift_that_ended_is_forgotten(online) -> None:
    rng = np.random.default_rng(6)
    shifted = [draw(rng, 300) + np.array([2.0, 0, 0, 0]) * SD for _ in range(10)]
    verdicts = _run(online, shifted + [draw(rng, 300) for _ in range(30)])
    assert verdicts[9].drift and not verdicts[-1].drift


def test_rows_of_another_model_are_refused_naming_the_cause(online) -> None:
    with pytest.raises(DriftError, match="another model"):
        online.standardise(np.zeros((3, 5)), ["low"] * 3)
    with pytest.raises(DriftError, match="not classes"):
        online.standardise(np.zeros((1, 4)), ["purple"])
