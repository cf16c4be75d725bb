"""`modelops drift`: the monitor's detector replayed over the prediction log — it says what the monitor says on the
same rows, stays quiet where the old window check false-alarmed, finds a shift — and its report and command."""

from __future__ import annotations

import json
import re
from base64 import b64decode

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from bento.prediction_log import PredictionLogger
from modelops.cli import app
from modelops.errors import ExitStatus
from modelops.monitor import drift_report
from modelops.monitor.calibrate import heldout_rows
from modelops.monitor.drift import DRIFT, INCONCLUSIVE, NO_DRIFT, DriftReport, Reference, reference_from_metadata
from modelops.monitor.traffic import smoothed_bootstrap
from modelops.monitor.watch import Watch
from stacks.config import load_stack_config
from tests.modelops.monitor import synthetic

SETTINGS = load_stack_config("local")  # the shipped detector: 60-s intervals, chunks of >= 100 rows
START = 1_700_000_000.0
MOVE_D = np.array([0.0, 0.0, 0.0, synthetic.SD[3]])  # feature d up by one training sd


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _log(directory, version: str, rows: np.ndarray, labels: list[str], start: float = START, gap: float = 0.2):
    """Rows logged by the real writer, one request each, ``gap`` seconds apart from ``start``."""
    ticks = iter(start + gap * i for i in range(len(rows)))
    with PredictionLogger(directory, "w", model_version=version, clock=lambda: next(ticks)) as writer:
        for i, (row, label) in enumerate(zip(rows.tolist(), labels, strict=True)):
            writer.log(f"{version}-{i}", [row], [label])


def _reference(_version: str = "") -> Reference:
    return synthetic.reference()


def _check(directory, now: float, window: int | None = None) -> DriftReport:
    return drift_report.run_drift_check(directory, SETTINGS.monitor, _reference, window=window, clock=lambda: now)


# ------------------------------------------------------------------------- the view and the monitor agree
def test_the_view_and_monitors_looking_at_different_times_agree_on_the_same_log(tmp_path) -> None:
    """5 rows/s for 10 min, then feature d moved by 1 sd for 5 min. One monitor looks every 10 s, another every
    3 min; the view replays the log afterwards, and at every minute on the log as it was then."""
    rng = np.random.default_rng(7)
    rows = np.vstack([synthetic.draw(rng, 3000), synthetic.draw(rng, 1500) + MOVE_D])
    labels = synthetic.predict(rows)
    clock = Clock()
    often = Watch(SETTINGS, tmp_path, _reference, clock=clock, since=0.0)
    rarely = Watch(SETTINGS, tmp_path, _reference, clock=clock, since=0.0)
    judged = []
    for second in range(0, 900, 10):
        part = slice(second * 5, (second + 10) * 5)
        _log(tmp_path, "m:1", rows[part], labels[part], start=START + second)
        clock.now = START + second + 10
        if (verdict := often.look()) is not None:
            judged.append(verdict)
        if second % 180 == 170:
            rarely.look()
        if second % 60 == 50:  # the view on the log as it is now, without its own look at open intervals
            closed = [c for c in _check(tmp_path, clock.now).chunks if not c.provisional]
            assert [c.statistics for c in closed] == [v.statistics for v in judged], f"at {second + 10} s"
    clock.now = START + 900 + 62  # every interval closed
    often.look(), rarely.look()
    view = _check(tmp_path, clock.now)

    assert not any(c.provisional for c in view.chunks)
    assert often.last is not None and rarely.last is not None
    assert view.status == DRIFT and often.last.drift and rarely.last.drift
    assert view.drifted_signals == often.last.drifted == rarely.last.drifted and "d" in view.drifted_signals
    assert view.chunks[-1].statistics == often.last.statistics == rarely.last.statistics
    assert view.rows == often.rows_judged == rarely.rows_judged == 4500
    assert len(view.chunks) == often.chunks == rarely.chunks
    assert view.thresholds["h"] == often.limits.h  # type: ignore[union-attr]


def test_rows_of_an_open_interval_are_judged_as_one_look_now_and_marked_so(tmp_path) -> None:
    rows = synthetic.draw(np.random.default_rng(3), 150)
    _log(tmp_path, "m:1", rows, synthetic.predict(rows))  # 30 s of rows: their interval is still open
    report = _check(tmp_path, now=START + 31)
    assert report.status == NO_DRIFT and [c.provisional for c in report.chunks] == [True]
    assert "this view's own look now" in report.reason
    waiting = drift_report.run_drift_check(tmp_path, SETTINGS.monitor.model_copy(update={"window": 100}), _reference,
                                           clock=lambda: START + 31)  # fmt: skip
    assert waiting.recent_rows == 100, "the window sets the descriptive figures only"


def test_fewer_rows_than_a_chunk_are_inconclusive_and_say_how_to_get_more(tmp_path) -> None:
    rows = synthetic.draw(np.random.default_rng(4), 60)
    _log(tmp_path, "m:1", rows, synthetic.predict(rows))
    report = _check(tmp_path, now=START + 3600)
    assert (report.status, report.rows, report.rows_waiting) == (INCONCLUSIVE, 0, 60)
    assert "min_chunk_rows" in report.reason and "send more traffic" in report.reason
    assert drift_report.exit_status(report) == ExitStatus.INCONCLUSIVE


def test_the_view_judges_only_the_newest_models_rows(tmp_path) -> None:
    rng = np.random.default_rng(5)
    old = synthetic.draw(rng, 200) + 3 * MOVE_D
    _log(tmp_path / "log", "m:old", old, synthetic.predict(old))
    new = synthetic.draw(rng, 300)
    _log(tmp_path / "log", "m:new", new, synthetic.predict(new), start=START + 600)
    asked = []

    def load(version: str) -> Reference:
        asked.append(version)
        return synthetic.reference()

    report = drift_report.run_drift_check(tmp_path / "log", SETTINGS.monitor, load, clock=lambda: START + 3600)
    assert asked == ["m:new"]
    assert (report.status, report.rows, report.model_version) == (NO_DRIFT, 300, "m:new")
    assert "also holds m:old" in report.reason


def test_an_empty_log_is_inconclusive_and_says_how_to_turn_logging_on(tmp_path) -> None:
    report = _check(tmp_path / "none", now=START)
    assert report.status == INCONCLUSIVE and "log_dir" in report.reason


# --------------------------------------------------------- the reference wine model: old false alarm, a shift
@pytest.fixture(scope="module")
def wine():
    """The reference wine model trained in-process (small forest: the statistics do not depend on its size)."""
    from bento.train import train

    model, metadata = train(seed=1, n_estimators=10)
    classes = metadata["classes"]

    def predict(rows):
        return [classes[i] for i in model.predict(rows)]

    return metadata, predict, reference_from_metadata(metadata, predict)


def _old_window_check(reference: Reference, rows: np.ndarray) -> list[str]:
    """The rule `modelops drift` had until this change: PSI >= 0.25 on the training deciles and KS p < 0.001 / 13."""
    flagged = []
    for i, f in enumerate(reference.features):
        window = np.bincount(np.searchsorted(f.edges[1:-1], rows[:, i], side="right"), minlength=len(f.counts))
        e, a = np.maximum(f.counts / f.counts.sum(), 1e-4), np.maximum(window / window.sum(), 1e-4)
        psi = float(np.sum((a - e) * np.log(a / e)))
        if psi >= 0.25 and stats.ks_2samp(rows[:, i], f.sample).pvalue < 0.001 / len(reference.features):
            flagged.append(f.name)
    return flagged


def test_normal_traffic_the_old_window_check_called_drifted_is_no_drift_to_the_detector(wine, tmp_path) -> None:
    # 2,000 rows of the shipped model's normal traffic (as `modelops traffic` sends it): nonflavanoid_phenols' PSI
    # over bins of ~13 training rows reached 0.27 and KS rejected the exact null (the held-out rows sit 0.2 sd off
    # the 133-row training mean: within what that reference can resolve).
    metadata, predict, reference = wine
    rows = smoothed_bootstrap(heldout_rows(metadata), 2000, 0.3, np.random.default_rng(5))[0]
    assert _old_window_check(reference, rows) == ["nonflavanoid_phenols"]
    _log(tmp_path, "wine:1", rows, predict(rows))
    report = drift_report.run_drift_check(tmp_path, SETTINGS.monitor, lambda _v: reference, clock=lambda: 2e9)
    assert report.status == NO_DRIFT, report.reason


def test_a_shifted_feature_of_the_wine_model_is_found_and_named(wine, tmp_path) -> None:
    metadata, predict, reference = wine
    rows = smoothed_bootstrap(heldout_rows(metadata), 1000, 0.3, np.random.default_rng(6))[0]
    column = reference.feature_names.index("flavanoids")
    rows[500:, column] += reference.features[column].sample.std(ddof=1)  # +1 sd after 100 s of normal traffic
    _log(tmp_path, "wine:1", rows, predict(rows))
    report = drift_report.run_drift_check(tmp_path, SETTINGS.monitor, lambda _v: reference, clock=lambda: 2e9)
    assert report.status == DRIFT and report.drifted_features == ["flavanoids"], report.reason
    assert drift_report.exit_status(report) == ExitStatus.DRIFT_DETECTED


# --------------------------------------------------------------------------------------- report and command
def test_the_report_files_hold_the_model_and_every_plot_has_axis_labels_and_a_legend(tmp_path) -> None:
    rows = synthetic.draw(np.random.default_rng(8), 600) + MOVE_D
    _log(tmp_path / "log", "m:1", rows, synthetic.predict(rows))
    report = _check(tmp_path / "log", now=START + 3600)
    json_path, html_path = drift_report.write_report(report, tmp_path / "out")
    assert DriftReport.model_validate_json(json_path.read_text()) == report
    page = html_path.read_text()
    svgs = [b64decode(s).decode() for s in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)]
    assert len(svgs) == 1 + len(synthetic.NAMES) + 1, "CUSUM, one histogram per feature, class shares"
    texts = [" ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg)) for svg in svgs]
    cusum, *histograms, classes = texts
    assert "CUSUM statistic" in cusum and "chunk closed at" in cusum and "threshold h" in cusum and " d" in cusum
    for name, text in zip(synthetic.NAMES, histograms, strict=True):
        assert f"{name} (value as logged)" in text and "share of rows per bin" in text, name
        assert "recent (" in text and "reference (training" in text, f"{name}: legend"
    assert "predicted class" in classes and "share of predictions" in classes and "reference (training" in classes
    assert all("<svg xmlns" in svg and 'width="' in svg for svg in svgs)


@pytest.mark.parametrize(
    ("status", "code"),
    [(DRIFT, ExitStatus.DRIFT_DETECTED), (NO_DRIFT, ExitStatus.OK), (INCONCLUSIVE, ExitStatus.INCONCLUSIVE)],
)
def test_each_drift_status_has_its_exit_code(status, code) -> None:
    assert drift_report.exit_status(DriftReport(status=status, reason="", rows=0)) == code


def test_a_model_without_reference_statistics_says_to_retrain() -> None:
    from modelops.monitor.drift import DriftError

    with pytest.raises(DriftError, match="retrain"):
        reference_from_metadata({"feature_names": ["x"], "classes": ["a"]})


def test_heldout_rows_are_the_rows_training_left_out(wine) -> None:
    metadata, _, _ = wine
    assert heldout_rows(metadata).shape == (metadata["metrics"]["test_rows"], len(metadata["feature_names"]))


def test_the_window_check_settings_are_refused_with_the_fix() -> None:
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match=r"psi_threshold no longer exist.*max_false_alarms_per_day"):
        SETTINGS.with_overrides(monitor={"psi_threshold": 0.25})


@pytest.fixture(scope="module")
def stored_model(bentoml_home):
    from bento.train import save

    return save(seed=1).tag


def test_drift_command_exits_with_drift_detected_on_a_shifted_log_and_writes_both_reports(tmp_path, stored_model, wine):
    metadata, predict, _ = wine
    rows = heldout_rows(metadata)[np.random.default_rng(0).integers(0, 45, 300)]
    rows[:, 0] += 3 * np.std(metadata["reference_stats"]["alcohol"]["sample"])
    _log(tmp_path / "log", stored_model, rows, predict(rows))
    result = CliRunner().invoke(app, ["drift", "--log", str(tmp_path / "log"), "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitStatus.DRIFT_DETECTED, result.output
    assert "alcohol" in result.output
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["status"] == DRIFT
    assert (tmp_path / "out" / "drift.html").is_file()


def test_drift_command_names_the_fix_when_the_model_is_not_in_the_store(tmp_path) -> None:
    rows = synthetic.draw(np.random.default_rng(1), 10)
    _log(tmp_path / "log", "nosuch:v1", rows, synthetic.predict(rows))
    result = CliRunner().invoke(app, ["drift", "--log", str(tmp_path / "log"), "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitStatus.USAGE
    assert "--model" in result.output and "modelops build" in result.output
