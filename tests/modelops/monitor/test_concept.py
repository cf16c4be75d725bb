"""Concept drift: a labelled stream whose accuracy falls at a known point is flagged after it, never before."""

from __future__ import annotations

import json
import random

import pytest

from bento.prediction_log import LoggedRow
from modelops.monitor.concept import FeedbackError, correctness, detect_accuracy_drops, read_feedback

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
