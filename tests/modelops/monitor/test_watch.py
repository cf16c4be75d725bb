"""The drift monitor's look at the log and what it exports: rows written by the real prediction-log writer are
judged in chunks, drift shows on /metrics as the series the DriftDetected rule reads, a new model version starts
a new detector, and a model without a reference is reported instead of stopping the monitor."""

from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest

from bento.prediction_log import PredictionLogger
from modelops.monitor.drift import DriftError, Reference
from modelops.monitor.watch import Watch, registry_for
from stacks import alerting
from stacks.config import load_stack_config
from tests.modelops.monitor import synthetic

SETTINGS = load_stack_config("local").with_overrides(monitor={"drift": {"min_chunk_rows": 200}})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _log(directory, version: str, rows: np.ndarray, clock: Clock) -> None:
    with PredictionLogger(directory, f"w-{version.replace(':', '_')}", version, clock=clock) as logger:
        for row in rows:
            logger.log("r", row[None, :], synthetic.predict(row[None, :]))


def _references(version: str) -> Reference:
    if version == "broken:1":
        raise DriftError("no reference statistics in its metadata")
    return synthetic.reference()


def _metrics(watch: Watch) -> str:
    return generate_latest(registry_for(watch)).decode()


def test_normal_rows_are_judged_in_chunks_and_a_shift_shows_as_drift_on_metrics(tmp_path) -> None:
    # The local stack's 60-s intervals: rows logged at 1000 s are in [960, 1020), closed from 1022 s on (settle 2 s).
    clock, rng = Clock(), np.random.default_rng(0)
    watch = Watch(SETTINGS, tmp_path, _references, clock=clock, since=0.0)
    _log(tmp_path, "m:1", synthetic.draw(rng, 150), clock)
    assert watch.look() is None, "the interval is still open"
    clock.now = 1030.0
    assert watch.look() is None, "150 rows: fewer than a chunk, they wait"
    _log(tmp_path, "m:1", synthetic.draw(rng, 100), clock)
    clock.now = 1090.0
    verdict = watch.look()
    assert verdict is not None and verdict.rows == 250 and not verdict.drift
    assert f'{alerting.DRIFT_METRIC}{{model_version="m:1"}} 0.0' in _metrics(watch)

    shifted = synthetic.draw(rng, 400) + np.array([0.0, 0.0, 0.0, 2.0]) * synthetic.SD
    _log(tmp_path, "m:1", shifted, clock)
    clock.now += 60
    verdict = watch.look()
    assert verdict is not None and verdict.drift and "d" in verdict.drifted
    text = _metrics(watch)
    assert f'{alerting.DRIFT_METRIC}{{model_version="m:1"}} 1.0' in text
    assert f'{alerting.DRIFT_SIGNAL_DRIFTED}{{model_version="m:1",signal="d"}} 1.0' in text
    assert f"{alerting.DRIFT_DATA_AGE} 60.0" in text, "the newest row judged was logged 60 s ago"
    assert f'{alerting.DRIFT_ROWS}{{model_version="m:1"}} 650.0' in text


def test_a_new_model_version_starts_a_new_detector_and_sets_the_old_rows_aside(tmp_path) -> None:
    clock, rng = Clock(), np.random.default_rng(1)
    watch = Watch(SETTINGS, tmp_path, _references, clock=clock, since=0.0)
    _log(tmp_path, "m:1", synthetic.draw(rng, 100), clock)
    watch.look()
    clock.now += 1
    _log(tmp_path, "m:2", synthetic.draw(rng, 250), clock)
    clock.now = 1030.0
    verdict = watch.look()
    assert watch.model_version == "m:2" and verdict is not None and verdict.rows == 250
    assert watch.set_aside == 100


def test_a_model_without_a_reference_is_reported_and_the_monitor_keeps_going(tmp_path) -> None:
    clock, rng = Clock(), np.random.default_rng(2)
    watch = Watch(SETTINGS, tmp_path, _references, clock=clock, since=0.0)
    _log(tmp_path, "broken:1", synthetic.draw(rng, 300), clock)
    assert watch.look() is None
    assert "no reference for broken:1" in watch.status()["error"]
    assert alerting.DRIFT_METRIC not in _metrics(watch), "no verdict is exported without a reference"


def test_rows_that_reach_the_log_after_their_interval_was_judged_are_counted_late(tmp_path) -> None:
    clock, rng = Clock(), np.random.default_rng(3)
    watch = Watch(SETTINGS, tmp_path, _references, clock=clock, since=0.0)
    _log(tmp_path, "m:1", synthetic.draw(rng, 250), clock)
    clock.now = 1030.0
    assert watch.look() is not None and watch.status()["late_rows"] == 0
    clock.now = 1005.0  # a writer that stalled: rows of the judged interval [960, 1020) arrive now
    _log(tmp_path, "m:1", synthetic.draw(rng, 20), clock)
    clock.now = 1030.0
    assert watch.look() is None
    assert watch.status()["late_rows"] == 20 and watch.status()["pending_rows"] == 20
