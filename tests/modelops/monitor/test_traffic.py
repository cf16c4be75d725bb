"""Traffic scenarios: normal and shifted client traffic with known labels, and the loop they drive on a real
deployment — Locust's normal traffic raises no drift, its shifted traffic does, and the labels join the log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bento.prediction_log import PredictionLogger
from modelops.gate import loadgen
from modelops.monitor import drift_report, traffic
from modelops.monitor.concept import read_feedback
from modelops.retrain import read_csv


@pytest.fixture(scope="module")
def metadata(reference_bento) -> dict:
    from modelops.bentos import describe

    return drift_report.load_model(describe(reference_bento).models[0])[0]


def test_a_normal_scenario_is_held_out_rows_with_their_true_labels(metadata) -> None:
    s = traffic.scenario(metadata, "normal", 300, jitter=0.0, seed=3)
    x, labels = traffic.heldout(metadata)
    assert len(s.bodies()) == len(s.labels) == 300
    for row, label in zip(s.rows[:20], s.labels[:20], strict=True):
        index = next(i for i, held in enumerate(x) if np.allclose(held, row))
        assert labels[index] == label, "each request's label is its held-out row's"


def test_a_shifted_scenario_moves_one_feature_by_the_given_training_stds(metadata) -> None:
    normal = traffic.scenario(metadata, "normal", 2000, seed=4)
    shifted = traffic.scenario(metadata, "shifted", 2000, "color_intensity", 1.5, seed=4)
    column = metadata["feature_names"].index("color_intensity")
    moved = shifted.rows.mean(axis=0) - normal.rows.mean(axis=0)
    assert moved[column] == pytest.approx(1.5 * traffic.training_std(metadata, "color_intensity"), rel=1e-9)
    assert np.allclose(np.delete(moved, column), 0.0), "every other feature as in normal traffic"
    with pytest.raises(ValueError, match="unknown feature 'colour'"):
        traffic.scenario(metadata, "shifted", 10, "colour")


def test_labels_join_the_logged_requests_whose_ids_name_their_bodies(tmp_path) -> None:
    with PredictionLogger(tmp_path / "log", "w", "m:1") as log:
        log.log("p0-aa", [[1.0]], ["x"])
        log.log("p2-bb", [[2.0], [3.0]], ["y", "y"])
        log.log("client-7", [[4.0]], ["x"])  # not a scenario request: no label known
        log.log("p9-cc", [[5.0]], ["x"])  # beyond the scenario's bodies
    out = tmp_path / "feedback.jsonl"
    assert traffic.feedback_from_log(tmp_path / "log", ["a", "b", "c"], out) == 3
    assert read_feedback(out) == {("p0-aa", 0): "a", ("p2-bb", 0): "c", ("p2-bb", 1): "c"}


def test_the_shifted_training_data_is_what_retrain_reads(metadata, tmp_path) -> None:
    path = traffic.shifted_training_csv(metadata, "color_intensity", 1.5, tmp_path / "shifted.csv")
    data = read_csv(path, metadata["feature_names"], metadata["classes"])
    assert data.x.shape == (178, 13)
    assert json.dumps(sorted(set(data.y.tolist()))) == "[0, 1, 2]"


def test_locust_normal_traffic_raises_no_drift_and_shifted_traffic_does(make_target, reference_bento, metadata):
    from bento.prediction_log import read_window

    target = make_target(deploy={"cpu_per_replica": 1.0}, monitor={"window": 300})
    status = target.up(reference_bento, replicas=1, workers=1)
    monitor = target.settings.monitor
    verdicts = []
    for kind in ("normal", "shifted"):
        s = traffic.scenario(metadata, kind, 600, seed=5)
        payloads, _ = traffic.write_scenario(s, target.dir / "traffic")
        before = len(read_window(target.prediction_log_dir).rows)
        for attempt in range(5):  # until this kind fills a window on its own (a busy machine sends fewer per run)
            spec = loadgen.LoadSpec(users=4, spawn_rate=4, duration_s=5, rate=100, payload_file=payloads,
                                    traffic="production")  # fmt: skip
            result = loadgen.run(status.url, spec, target.dir / "locust", prefix=f"{kind}-{attempt}")
            assert result.measured.failures == 0
            if len(read_window(target.prediction_log_dir).rows) - before >= monitor.window:
                break
        report = drift_report.run_drift_check(target.prediction_log_dir, monitor, drift_report.store_reference)
        verdicts.append((report.status, report.drifted_features))
    assert verdicts == [("no_drift", []), ("drift", ["color_intensity"])]
