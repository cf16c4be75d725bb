"""The label store: labels joined by the server's prediction id (client ids may collide), kept with what they grade
so rotation of the prediction log cannot take them away, with their arrival times."""

from __future__ import annotations

import json
import shutil
import stat

import pytest

from bento.prediction_log import PredictionLogger, read_window
from modelops.monitor.labels import Label, LabelError, LabelStore, add_file, read_label_file

ROW = [1.0, 2.0]


def _log(tmp_path, *requests: tuple[str, str, str, float]) -> list:
    """Log requests (client id, prediction id, predicted class, confidence); return the rows read back."""
    with PredictionLogger(tmp_path / "log", "w", "m:1", classes=["a", "b"]) as log:
        for client_id, prediction_id, predicted, confidence in requests:
            other = 1.0 - confidence
            probabilities = [[confidence, other]] if predicted == "a" else [[other, confidence]]
            log.log(client_id, [ROW], [predicted], probabilities, prediction_id=prediction_id)
    return read_window(tmp_path / "log").rows


def test_labels_join_by_prediction_id_when_two_clients_chose_the_same_request_id(tmp_path):
    rows = _log(tmp_path, ("order-1", "p-first", "a", 0.9), ("order-1", "p-second", "b", 0.6))
    store = LabelStore(tmp_path / "labels.sqlite")
    result = store.add([Label("p-second", 0, "a"), Label("p-first", 0, "a")], rows)
    assert (result.stored, result.joined) == (2, 2)
    graded = {o.prediction_id: (o.prediction, o.label, o.correct, o.confidence) for o in store.outcomes()}
    assert graded == {"p-first": ("a", "a", True, 0.9), "p-second": ("b", "a", False, 0.6)}


def test_a_label_by_a_client_request_id_is_refused_when_several_requests_used_it(tmp_path):
    rows = _log(tmp_path, ("order-1", "p-1", "a", 0.9), ("order-1", "p-2", "b", 0.6), ("order-2", "p-3", "a", 0.8))
    path = tmp_path / "labels.jsonl"
    lines = [{"request_id": "order-1", "label": "a"}, {"request_id": "order-2", "label": "b"},
             {"request_id": "order-9", "label": "b"}]  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    store = LabelStore(tmp_path / "labels.sqlite")
    result = add_file(store, path, rows)
    assert (result.stored, result.ambiguous, result.unmatched) == (1, 1, 1)
    assert [(o.prediction_id, o.label) for o in store.outcomes()] == [("p-3", "b")]


def test_outcomes_survive_the_log_being_rotated_away_and_late_labels_join_when_their_prediction_is_logged(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite", clock=lambda: 1000.0)
    store.add([Label("p-late", 0, "b")])  # the label came before the log was read: stored, not joined
    assert store.outcomes() == []
    rows = _log(tmp_path, ("c-1", "p-late", "b", 0.7))
    assert store.join(rows) == 1
    shutil.rmtree(tmp_path / "log")  # rotated, swept, lost
    [outcome] = store.outcomes()
    assert (outcome.prediction, outcome.label, outcome.features, outcome.arrived_at) == ("b", "b", ROW, 1000.0)
    assert outcome.predicted_at == rows[0].ts


def test_a_later_label_for_the_same_row_replaces_the_earlier_one_with_its_arrival_time(tmp_path):
    rows = _log(tmp_path, ("c-1", "p-1", "a", 0.9))
    times = iter([10.0, 20.0])
    store = LabelStore(tmp_path / "labels.sqlite", clock=lambda: next(times))
    store.add([Label("p-1", 0, "b")], rows)
    store.add([Label("p-1", 0, "a")], rows)
    [outcome] = store.outcomes()
    assert (outcome.label, outcome.arrived_at, outcome.correct) == ("a", 20.0, True)


def test_the_store_is_readable_by_its_owner_only(tmp_path):
    store = LabelStore(tmp_path / "stack" / "labels.sqlite")
    store.add([Label("p-1", 0, "a")])
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_newest_outcomes_are_the_latest_predictions_oldest_first(tmp_path):
    rows = _log(tmp_path, *[(f"c-{i}", f"p-{i}", "a", 0.9) for i in range(5)])
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add([Label(f"p-{i}", 0, "a") for i in range(5)], rows)
    assert [o.prediction_id for o in store.outcomes("m:1", newest=2)] == ["p-3", "p-4"]
    assert store.outcomes("other:1") == []


def test_a_malformed_label_line_names_the_line_and_the_format(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"prediction_id": "p-1", "label": "a"}\n{"label": "a"}\n')
    with pytest.raises(LabelError, match=r"labels.jsonl:2 .*prediction_id"):
        read_label_file(path)
