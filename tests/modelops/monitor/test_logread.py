"""The monitor's one reader of the prediction log: new whole lines only, across rotations, tolerant of keys it does
not know; the writers' counters from stats files or from the replicas' /metrics text."""

from __future__ import annotations

import json
import os

from bento.prediction_log import PredictionLogger
from modelops.monitor.logread import LogTail, parse_metrics_text, writer_counters


def _line(ts: float, rid: str, **extra) -> bytes:
    record = {"ts": ts, "request_id": rid, "model_version": "m:1", "rows": [[1.0, 2.0]], "predictions": ["a"], **extra}
    return (json.dumps(record) + "\n").encode()


def test_each_look_reads_only_what_was_appended_and_waits_for_a_line_being_written(tmp_path) -> None:
    path = tmp_path / "blue-1-w0.jsonl"
    path.write_bytes(_line(1.0, "r1") + _line(2.0, "r2"))
    tail = LogTail(tmp_path, since=0.0)
    assert [r.request_id for r in tail.read().rows] == ["r1", "r2"]
    half = _line(3.0, "r3")
    with path.open("ab") as f:
        f.write(half[:10])
    assert tail.read().rows == []
    with path.open("ab") as f:
        f.write(half[10:])
    assert [r.request_id for r in tail.read().rows] == ["r3"]
    assert tail.read().rows == []


def test_a_rotation_is_neither_read_twice_nor_cut_short(tmp_path) -> None:
    path = tmp_path / "blue-1-w0.jsonl"
    path.write_bytes(_line(1.0, "r1"))
    tail = LogTail(tmp_path, since=0.0)
    assert len(tail.read().rows) == 1
    with path.open("ab") as f:
        f.write(_line(2.0, "r2"))  # appended, then rotated before the next look
    os.replace(path, tmp_path / "blue-1-w0.jsonl.1")
    path.write_bytes(_line(3.0, "r3"))
    assert [r.request_id for r in tail.read().rows] == ["r2", "r3"]


def test_unknown_keys_are_ignored_and_broken_lines_counted(tmp_path) -> None:
    (tmp_path / "w.jsonl").write_bytes(
        _line(1.0, "r1", schema=2, probabilities=[[0.9, 0.1]]) + b"not json\n" + b'{"ts": 1}\n'
    )
    batch = LogTail(tmp_path, since=0.0).read()
    assert [r.request_id for r in batch.rows] == ["r1"] and batch.malformed == 2 and batch.records == 1


def test_rows_logged_before_the_monitor_started_are_skipped(tmp_path) -> None:
    (tmp_path / "w.jsonl").write_bytes(_line(1.0, "old") + _line(5.0, "new"))
    assert [r.request_id for r in LogTail(tmp_path, since=3.0).read().rows] == ["new"]


def test_reads_what_the_real_writer_writes(tmp_path) -> None:
    with PredictionLogger(tmp_path, "blue-1-w0", "m:1") as logger:
        logger.log("req", [[1.0, 2.0], [3.0, 4.0]], ["a", "b"])
    rows = LogTail(tmp_path, since=0.0).read().rows
    assert [(r.features, r.prediction, r.model_version) for r in rows] == [([1.0, 2.0], "a", "m:1"),
                                                                          ([3.0, 4.0], "b", "m:1")]  # fmt: skip


def test_counters_come_from_stats_files_when_the_writers_write_them(tmp_path) -> None:
    (tmp_path / "blue-1-w0.stats.json").write_text(json.dumps({"written": 10, "dropped": 2, "write_errors": 1}))
    assert writer_counters(tmp_path) == {"blue-1-w0": {"written": 10.0, "dropped": 2.0, "errors": 1.0}}


def test_counters_come_from_metrics_text_with_or_without_a_writer_label() -> None:
    text = (
        "# HELP modelops_prediction_log_dropped_total dropped\n"
        'modelops_prediction_log_dropped_total{writer="blue-1-w0"} 3.0\n'
        'modelops_prediction_log_written_total{writer="blue-1-w0"} 40.0\n'
        "modelops_prediction_log_errors_total 1.0\n"
        "modelops_prediction_log_dropped_created 1.7e9\n"
        'bentoml_service_request_total{endpoint="/predict"} 99.0\n'
    )
    assert parse_metrics_text(text, "blue-1") == {
        "blue-1-w0": {"dropped": 3.0, "written": 40.0},
        "blue-1": {"errors": 1.0},
    }


def test_no_counters_when_the_writers_publish_none(tmp_path) -> None:
    assert writer_counters(tmp_path) == {}
