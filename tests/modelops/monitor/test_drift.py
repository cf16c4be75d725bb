"""Drift: PSI + KS per feature, predicted class shares, reports, the command, and the measured error rates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bento.prediction_log import PredictionLogger
from modelops.cli import app
from modelops.errors import ExitStatus
from modelops.monitor import drift_report
from modelops.monitor.calibrate import calibrate, heldout_rows
from modelops.monitor.drift import (
    DRIFT,
    INCONCLUSIVE,
    NO_DRIFT,
    DriftError,
    DriftReport,
    FeatureReference,
    Reference,
    bin_counts,
    check_drift,
    prediction_drift,
    psi,
    reference_from_metadata,
)
from stacks.config import MonitorSettings

CLASSES = ["a", "b"]
SETTINGS = MonitorSettings(window=400, min_rows=100)


def _reference(seed: int = 0, features: int = 3, n: int = 300) -> Reference:
    """Standard-normal training features with decile histograms, like bento/train.py saves."""
    rng = np.random.default_rng(seed)
    refs = []
    for i in range(features):
        sample = rng.normal(0.0, 1.0, n)
        edges = np.unique(np.quantile(sample, np.linspace(0, 1, 11)))
        counts, _ = np.histogram(sample, bins=edges)
        refs.append(FeatureReference(name=f"f{i}", edges=edges, counts=counts.astype(float), sample=sample))
    return Reference(features=refs, classes=CLASSES, class_shares={"a": 0.5, "b": 0.5})


def _window(seed: int, n: int = 400, shift: dict[int, float] | None = None) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(0.0, 1.0, (n, 3))
    for column, by in (shift or {}).items():
        rows[:, column] += by
    return rows


def _balanced(n: int) -> list[str]:
    return ["a", "b"] * (n // 2)


def test_psi_is_zero_for_identical_distributions_and_matches_the_formula():
    assert psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    # (0.5 - 0.25) ln(0.5 / 0.25) + (0.5 - 0.75) ln(0.5 / 0.75)
    assert psi(np.array([1, 3]), np.array([1, 1])) == pytest.approx(0.25 * np.log(2) - 0.25 * np.log(2 / 3))


def test_bin_counts_put_values_outside_the_training_range_into_the_outer_bins():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    assert bin_counts(np.array([-5.0, 0.5, 1.0, 2.5, 99.0]), edges).tolist() == [2, 1, 2]


def test_a_window_from_the_training_distribution_does_not_drift():
    report = check_drift(_reference(), _window(1), _balanced(400), SETTINGS)
    assert report.status == NO_DRIFT, report.reason
    assert report.drifted_features == []


def test_a_shifted_feature_drifts_and_is_the_only_one_named():
    report = check_drift(_reference(), _window(1, shift={1: 1.0}), _balanced(400), SETTINGS)
    assert report.status == DRIFT
    assert report.drifted_features == ["f1"]
    assert "f1" in report.reason


@pytest.mark.parametrize(
    ("settings", "drifted"),
    [
        (SETTINGS, True),
        # PSI is over its threshold but the KS test is not significant enough: not drift.
        (SETTINGS.model_copy(update={"ks_alpha": 1e-30}), False),
        # KS is significant but the PSI effect stays under its threshold: not drift.
        (SETTINGS.model_copy(update={"psi_threshold": 5.0}), False),
    ],
    ids=["both-agree", "psi-only", "ks-only"],
)
def test_a_feature_drifts_only_when_psi_and_ks_both_say_so(settings, drifted):
    report = check_drift(_reference(), _window(1, shift={0: 0.6}), _balanced(400), settings)
    assert ("f0" in report.drifted_features) is drifted, report.features[0]


def test_too_few_rows_is_inconclusive_and_says_how_to_get_more():
    report = check_drift(_reference(), _window(1, n=50), _balanced(50), SETTINGS)
    assert report.status == INCONCLUSIVE
    assert "min_rows" in report.reason and "send more traffic" in report.reason


def test_rows_of_another_model_shape_are_refused_with_the_fix():
    with pytest.raises(DriftError, match="--model"):
        check_drift(_reference(), np.zeros((200, 5)), _balanced(200), SETTINGS)


@pytest.mark.parametrize(
    ("predictions", "drifted"),
    [(_balanced(400), False), (["a"] * 300 + ["b"] * 100, True)],
    ids=["same-shares", "one-class-dominates"],
)
def test_prediction_drift_compares_predicted_class_shares_with_the_reference(predictions, drifted):
    result = prediction_drift({"a": 0.5, "b": 0.5}, predictions, SETTINGS)
    assert result.drifted is drifted, result
    assert sum(result.window_shares.values()) == pytest.approx(1.0)


def test_predicted_classes_the_model_does_not_have_are_refused():
    with pytest.raises(DriftError, match=r"\['zebra'\]"):
        prediction_drift({"a": 0.5, "b": 0.5}, ["a", "zebra"], SETTINGS)


def test_a_model_without_reference_statistics_says_to_retrain():
    with pytest.raises(DriftError, match="retrain"):
        reference_from_metadata({"feature_names": ["x"], "classes": ["a"]})


@pytest.mark.parametrize(
    ("status", "code"),
    [(DRIFT, ExitStatus.DRIFT_DETECTED), (NO_DRIFT, ExitStatus.OK), (INCONCLUSIVE, ExitStatus.INCONCLUSIVE)],
)
def test_each_drift_status_has_its_exit_code(status, code):
    assert drift_report.exit_status(DriftReport(status=status, reason="", rows=0, thresholds={})) == code


def test_drift_detected_has_an_exit_code_of_its_own():
    assert [s for s in ExitStatus if s == ExitStatus.DRIFT_DETECTED] == [ExitStatus.DRIFT_DETECTED]
    assert len({int(s) for s in ExitStatus}) == len(ExitStatus)


def _log(directory, version: str, rows: np.ndarray, labels: list[str], start: float = 0.0) -> None:
    ticks = iter(start + i for i in range(len(rows)))
    with PredictionLogger(
        directory, name=version.replace(":", "-"), model_version=version, clock=lambda: next(ticks)
    ) as w:
        for i, (row, label) in enumerate(zip(rows.tolist(), labels, strict=True)):
            w.log(f"{version}-{i}", [row], [label])


def test_the_check_reads_the_log_and_compares_only_the_newest_models_rows(tmp_path):
    _log(tmp_path, "m:old", _window(2, n=200, shift={2: 3.0}), _balanced(200), start=0)
    _log(tmp_path, "m:new", _window(3, n=300), _balanced(300), start=1000)
    asked = []

    def load(version: str) -> Reference:
        asked.append(version)
        return _reference()

    report = drift_report.run_drift_check(tmp_path, SETTINGS, load, window=400)
    assert asked == ["m:new"]
    assert (report.status, report.rows, report.model_version) == (NO_DRIFT, 300, "m:new")
    assert "also held m:old" in report.reason


def test_an_empty_log_is_inconclusive_and_says_how_to_turn_logging_on(tmp_path):
    report = drift_report.run_drift_check(tmp_path / "none", SETTINGS, lambda _v: _reference())
    assert report.status == INCONCLUSIVE and "log_dir" in report.reason


def test_the_report_files_hold_the_model_and_a_page_naming_every_feature(tmp_path):
    report = check_drift(_reference(), _window(1, shift={1: 1.0}), _balanced(400), SETTINGS)
    json_path, html_path = drift_report.write_report(report, tmp_path)
    assert DriftReport.model_validate_json(json_path.read_text()) == report
    page = html_path.read_text()
    assert all(f">{name}<" in page for name in ("f0", "f1", "f2")) and "<svg" in page


@pytest.fixture(scope="module")
def wine():
    """The reference wine model trained in-process (small forest: the statistics do not depend on its size)."""
    from bento.train import train

    model, metadata = train(seed=1, n_estimators=10)
    classes = metadata["classes"]

    def predict(rows):
        return [classes[i] for i in model.predict(rows)]

    return metadata, predict, reference_from_metadata(metadata, predict)


def test_heldout_rows_are_the_rows_training_left_out(wine):
    metadata, _, _ = wine
    rows = heldout_rows(metadata)
    assert rows.shape == (metadata["metrics"]["test_rows"], len(metadata["feature_names"]))


def test_calibration_measures_few_false_alarms_and_finds_a_shifted_feature(wine):
    _, predict, reference = wine
    settings = MonitorSettings(window=200, min_rows=100)
    result = calibrate(
        reference, predict, heldout_rows(wine[0]), settings, windows=20, trials=3, shift_std=1.5, step=20, seed=1
    )
    assert result.false_alarms <= 2, result
    assert result.missed == 0 and result.max_delay <= 2 * settings.window, result.delays


def test_calibration_never_flags_an_unshifted_stream(wine):
    _, predict, reference = wine
    settings = MonitorSettings(window=200, min_rows=100)
    result = calibrate(
        reference, predict, heldout_rows(wine[0]), settings, windows=1, trials=3, shift_std=0.0, step=50, seed=2
    )
    assert result.missed == 3, result.delays


@pytest.fixture(scope="module")
def stored_model(bentoml_home):
    from bento.train import save

    return save(seed=1).tag


def test_drift_command_exits_with_drift_detected_on_a_shifted_log_and_writes_both_reports(tmp_path, stored_model, wine):
    metadata, predict, _ = wine
    rows = heldout_rows(metadata)[np.random.default_rng(0).integers(0, 45, 300)]
    rows[:, 0] += 3 * np.std(metadata["reference_stats"]["alcohol"]["sample"])
    _log(tmp_path / "log", stored_model, rows, predict(rows))
    result = CliRunner().invoke(
        app, ["drift", "--log", str(tmp_path / "log"), "--window", "300", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == ExitStatus.DRIFT_DETECTED, result.output
    assert "alcohol" in result.output
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["status"] == DRIFT
    assert (tmp_path / "out" / "drift.html").is_file()


def test_drift_command_names_the_fix_when_the_model_is_not_in_the_store(tmp_path):
    _log(tmp_path / "log", "nosuch:v1", _window(1, n=10), _balanced(10))
    result = CliRunner().invoke(app, ["drift", "--log", str(tmp_path / "log"), "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitStatus.USAGE
    assert "--model" in result.output and "modelops build" in result.output
