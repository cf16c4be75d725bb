"""Concept drift: a labelled stream whose accuracy falls at a known point is flagged after it, never before."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest

from bento.prediction_log import LoggedRow
from modelops.monitor import concept
from modelops.monitor.concept import (
    FeedbackError,
    calibration,
    cbpe,
    concept_status,
    correctness,
    detect_accuracy_drops,
    prometheus_text,
    read_feedback,
    wilson,
)

CHANGE = 1000


def _stream(before: float, after: float, seed: int, n: int = 2000) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.random() < (before if i < CHANGE else after)) for i in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_drop_in_accuracy_is_flagged_after_the_change_point_not_before(seed):
    drops = detect_accuracy_drops(_stream(0.95, 0.70, seed))
    assert drops, "the drop from 95 % to 70 % accuracy was never flagged"
    assert all(d.index >= CHANGE for d in drops), [d.index for d in drops]
    assert drops[0].index < CHANGE + 300, f"flagged only {drops[0].index - CHANGE} labels after the change"
    assert drops[0].accuracy_after < drops[0].accuracy_before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steady_accuracy_is_never_flagged(seed):
    assert detect_accuracy_drops(_stream(0.9, 0.9, seed)) == []


def test_a_rise_in_accuracy_is_not_an_alarm():
    assert detect_accuracy_drops(_stream(0.6, 0.95, seed=4)) == []


def _row(request_id: str, row: int, prediction: str, ts: float) -> LoggedRow:
    return LoggedRow(ts=ts, request_id=request_id, row=row, model_version="m:1", features=[0.0], prediction=prediction)


def test_feedback_is_joined_to_logged_predictions_by_request_id_and_row_in_time_order(tmp_path):
    path = tmp_path / "feedback.jsonl"
    lines = [
        {"request_id": "r2", "label": "b"},
        {"request_id": "r1", "row": 1, "label": "x"},
        {"request_id": "r9", "label": "a"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    logged = [_row("r2", 0, "b", ts=2.0), _row("r1", 0, "a", ts=1.0), _row("r1", 1, "a", ts=1.0)]
    # r1 row 0 has no label (skipped); r1 row 1 is wrong; r2 row 0 is right; r9 was never logged (skipped).
    assert correctness(logged, read_feedback(path)) == [0, 1]


def test_a_malformed_feedback_line_names_the_line_and_the_format(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"request_id": "r1", "label": "a"}\n{"label": "a"}\n')
    with pytest.raises(FeedbackError, match=r"feedback.jsonl:2 .*request_id"):
        read_feedback(path)


# ------------------------------------------------------------------------------------------ CBPE and status
def _confident_stream(n: int, seed: int, overconfidence: float = 0.0) -> tuple[list[float], list[bool]]:
    """Confidences in [0.5, 1) and outcomes that are right with probability confidence - overconfidence."""
    rng = random.Random(seed)
    confidences = [0.5 + 0.5 * rng.random() for _ in range(n)]
    return confidences, [rng.random() < max(0.0, c - overconfidence) for c in confidences]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cbpe_from_calibrated_confidences_brackets_the_realised_accuracy(seed):
    confidences, correct = _confident_stream(2000, seed)
    estimate = cbpe(confidences)
    realised = sum(correct) / len(correct)
    assert estimate.low <= realised <= estimate.high, (estimate, realised)
    assert estimate.high - estimate.low < 0.05, "2,000 predictions pin the accuracy down to a few points"


def test_cbpe_on_overconfident_scores_misses_until_calibrated_on_labelled_outcomes():
    reference_conf, reference_correct = _confident_stream(1000, seed=7, overconfidence=0.2)
    confidences, correct = _confident_stream(2000, seed=8, overconfidence=0.2)
    realised = sum(correct) / len(correct)
    raw = cbpe(confidences)
    assert raw.low > realised, f"raw confidences overestimate: {raw} vs {realised:.3f}"
    fit = calibration(reference_conf, reference_correct)
    assert fit is not None
    calibrated = cbpe(confidences, fit)
    assert calibrated.low - 0.01 <= realised <= calibrated.high + 0.01, (calibrated, realised)


def test_calibration_needs_enough_labelled_outcomes_of_both_kinds():
    assert calibration([0.9] * 50, [True, False] * 25) is None, "fewer than MIN_CALIBRATION"
    assert calibration([0.9] * 200, [True] * 200) is None, "nothing to fit when every prediction was right"


def test_wilson_interval_contains_the_proportion_and_stays_within_0_and_1():
    assert wilson(10, 10).high == pytest.approx(1.0) and wilson(10, 10).low > 0.6
    e = wilson(45, 50)
    assert e.low < 0.9 < e.high and e.value == 0.9


@dataclass(frozen=True)
class _Outcome:  # the fields concept_status reads from labels.Outcome
    model_version: str
    prediction: str
    label: str
    confidence: float | None
    predicted_at: float
    arrived_at: float

    @property
    def correct(self) -> bool:
        return self.prediction == self.label


def _outcomes(accuracies: list[tuple[int, float]], seed: int = 5) -> list[_Outcome]:
    rng = random.Random(seed)
    found, t = [], 0.0
    for n, accuracy in accuracies:
        for _ in range(n):
            t += 1.0
            right = rng.random() < accuracy
            found.append(_Outcome("m:1", "a", "a" if right else "b", 0.9, t, t + 60.0))
    return found


@pytest.mark.parametrize(
    ("phases", "drifted"),
    [
        ([(1000, 0.95), (600, 0.70)], True),  # fell and stayed down
        ([(1600, 0.90)], False),  # steady
        ([(1000, 0.95), (600, 0.70), (1500, 0.95)], False),  # fell, then recovered: the latest change is a rise
    ],
    ids=["dropped", "steady", "recovered"],
)
def test_adwin_flags_concept_drift_while_labelled_accuracy_stays_down(phases, drifted):
    [status] = concept_status([], _outcomes(phases), window=500, concept_window=500, delta=0.002)
    assert status.drift_detected is drifted, status.drops
    assert status.labelled_rows == sum(n for n, _ in phases)
    assert status.label_delay_s == 60.0


def test_status_shows_estimated_beside_realised_accuracy_and_exports_them_for_prometheus():
    logged = [
        LoggedRow(ts=float(i), request_id=f"r{i}", row=0, model_version="m:1", features=[0.0], prediction="a",
                  prediction_id=f"p{i}", probabilities={"a": 0.8, "b": 0.2})
        for i in range(100)
    ]  # fmt: skip
    outcomes = _outcomes([(200, 0.8)])
    [status] = concept_status(logged, outcomes, window=50, concept_window=100, delta=0.002)
    assert status.logged_rows == 50 and status.estimated is not None
    assert status.calibrated, "200 labelled outcomes with confidences: calibrated"
    assert status.realised is not None and status.realised.n == 100
    assert status.estimated_on_labelled is not None
    text = prometheus_text([status])
    for name in (concept.ESTIMATED, concept.REALISED, concept.DRIFT_DETECTED, concept.LABELLED):
        assert f'{name}{{model_version="m:1"}}' in text, name
