"""The prediction log: sampled, bounded on disk, never blocking the request path, read back as rows."""

from __future__ import annotations

import json
import random
import threading

import pytest

from bento import prediction_log as plog
from bento.prediction_log import PredictionLogError, PredictionLogger, log_files, read_window

VERSION = "wine_classifier:test"
ROW = [13.2, 1.8, 2.4, 17.0, 100.0, 2.6, 2.7, 0.3, 1.8, 5.0, 1.0, 3.0, 1000.0]


def _logger(tmp_path, **kwargs) -> PredictionLogger:
    kwargs.setdefault("name", "b1-w0")
    kwargs.setdefault("model_version", VERSION)
    return PredictionLogger(tmp_path / "log", **kwargs)


def test_logged_requests_are_read_back_as_rows_with_version_request_id_and_time(tmp_path):
    ticks = iter([100.0, 101.0])
    with _logger(tmp_path, clock=lambda: next(ticks)) as writer:
        assert writer.log("req-1", [ROW, ROW], ["class_0", "class_1"])
        assert writer.log("req-2", [ROW], ["class_2"])
    window = read_window(tmp_path / "log")
    assert [(r.request_id, r.row, r.prediction, r.ts) for r in window.rows] == [
        ("req-1", 0, "class_0", 100.0),
        ("req-1", 1, "class_1", 100.0),
        ("req-2", 0, "class_2", 101.0),
    ]
    assert {r.model_version for r in window.rows} == {VERSION}
    assert window.rows[0].features == ROW


def test_log_rotates_at_max_bytes_and_disk_use_stays_under_the_cap(tmp_path):
    max_bytes, backups = 2048, 2
    with _logger(tmp_path, max_bytes=max_bytes, backups=backups) as writer:
        for i in range(200):
            writer.log(f"req-{i}", [ROW], ["class_0"])
    files = log_files(tmp_path / "log")
    assert [f.name for f in files] == ["b1-w0.jsonl", "b1-w0.jsonl.1", "b1-w0.jsonl.2"]
    assert all(f.stat().st_size <= max_bytes for f in files), {f.name: f.stat().st_size for f in files}
    assert sum(f.stat().st_size for f in files) <= (backups + 1) * max_bytes
    kept = read_window(tmp_path / "log").rows
    # The newest records survive rotation; the oldest are gone.
    assert kept[-1].request_id == "req-199"
    assert kept[0].request_id != "req-0"


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 400)])
def test_sample_rate_zero_logs_nothing_and_one_logs_everything(tmp_path, rate, expected):
    with _logger(tmp_path, sample_rate=rate) as writer:
        for i in range(400):
            writer.log(f"req-{i}", [ROW], ["class_0"])
    assert len(read_window(tmp_path / "log").rows) == expected


def test_sample_rate_logs_about_that_fraction_of_requests(tmp_path):
    with _logger(tmp_path, sample_rate=0.25, rng=random.Random(7)) as writer:
        for i in range(2000):
            writer.log(f"req-{i}", [ROW], ["class_0"])
    assert 400 <= len(read_window(tmp_path / "log").rows) <= 600


class _SlowDisk(PredictionLogger):
    """A writer whose first write blocks until released: the disk falling behind the traffic."""

    def __init__(self, *args, **kwargs) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        super().__init__(*args, **kwargs)

    def _write(self, entry: tuple) -> None:
        self.writing.set()
        assert self.release.wait(10), "test never released the slow disk"
        super()._write(entry)


def test_a_full_queue_drops_and_counts_records_instead_of_blocking_the_request(tmp_path):
    writer = _SlowDisk(tmp_path / "log", name="b1-w0", model_version=VERSION, queue_size=2)
    try:
        assert writer.log("req-0", [ROW], ["class_0"])
        assert writer.writing.wait(10), "the writer thread never picked up the first record"
        assert writer.log("req-1", [ROW], ["class_0"])
        assert writer.log("req-2", [ROW], ["class_0"])
        assert not writer.log("req-3", [ROW], ["class_0"])  # returns at once: the queue is full
        assert writer.dropped == 1
    finally:
        writer.release.set()
        writer.close()
    assert [r.request_id for r in read_window(tmp_path / "log").rows] == ["req-0", "req-1", "req-2"]


def test_read_window_returns_the_last_n_rows_across_writers_in_time_order(tmp_path):
    ticks = iter(float(t) for t in range(10))
    clock = lambda: next(ticks)  # noqa: E731 - both writers share one clock
    with _logger(tmp_path, name="b1-w0", clock=clock) as first, _logger(tmp_path, name="b2-w0", clock=clock) as second:
        for i in range(5):
            first.log(f"a{i}", [ROW], ["class_0"])
            first.flush()
            second.log(f"b{i}", [ROW], ["class_1"])
            second.flush()
    window = read_window(tmp_path / "log", 4)
    assert [r.request_id for r in window.rows] == ["a3", "b3", "a4", "b4"]
    assert len(window.files) == 2


def test_reader_skips_a_partial_line_and_counts_it(tmp_path):
    with _logger(tmp_path) as writer:
        writer.log("req-1", [ROW], ["class_0"])
    path = tmp_path / "log" / "b1-w0.jsonl"
    with path.open("a") as handle:
        handle.write(json.dumps({plog.TS: 1.0, plog.REQUEST_ID: "req-2"})[:20])  # a writer killed mid-line
    window = read_window(path.parent)
    assert [r.request_id for r in window.rows] == ["req-1"]
    assert window.malformed_lines == 1


def test_reading_a_missing_directory_gives_an_empty_window(tmp_path):
    window = read_window(tmp_path / "nowhere", 10)
    assert window.rows == [] and window.files == []


def test_from_env_is_off_without_a_directory(tmp_path):
    assert PredictionLogger.from_env("b1-w0", VERSION, environ={}) is None


def test_from_env_builds_the_writer_the_deployment_configured(tmp_path):
    env = {plog.ENV_DIR: str(tmp_path / "log"), plog.ENV_SAMPLE_RATE: "0.5", plog.ENV_MAX_BYTES: "4096"}
    writer = PredictionLogger.from_env("b1-w0", VERSION, environ=env)
    try:
        assert (writer.sample_rate, writer.max_bytes, writer.backups) == (0.5, 4096, 3)
        assert writer.path == tmp_path / "log" / "b1-w0.jsonl"
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({plog.ENV_SAMPLE_RATE: "1.5"}, plog.ENV_SAMPLE_RATE),
        ({plog.ENV_SAMPLE_RATE: "half"}, plog.ENV_SAMPLE_RATE),
        ({plog.ENV_MAX_BYTES: "10"}, plog.ENV_MAX_BYTES),
        ({plog.ENV_BACKUPS: "0"}, plog.ENV_BACKUPS),
    ],
)
def test_from_env_rejects_bad_settings_naming_the_variable(tmp_path, env, named):
    with pytest.raises(PredictionLogError, match=named):
        PredictionLogger.from_env("b1-w0", VERSION, environ={plog.ENV_DIR: str(tmp_path), **env})


def test_logging_after_close_is_refused_not_raised(tmp_path):
    writer = _logger(tmp_path)
    writer.close()
    writer.close()  # twice is fine
    assert not writer.log("late", [ROW], ["class_0"])


@pytest.mark.parametrize(
    ("headers", "kept", "logged"),
    [
        ({"x-request-id": "order-17.a:b_c-d"}, True, True),
        ({"x-request-id": "a" * 64}, True, True),
        ({"x-request-id": "a" * 65}, False, True),
        ({"x-request-id": "no spaces"}, False, True),
        ({"x-request-id": ""}, False, True),
        ({}, False, True),
        ({"x-request-id": "gate-1", "x-modelops-synthetic": "locust"}, True, False),
    ],
)
def test_request_identity_keeps_plain_client_ids_and_leaves_synthetic_traffic_out(headers, kept, logged):
    request_id, log = plog.request_identity(headers)
    assert (request_id == headers.get("x-request-id")) is kept
    assert 0 < len(request_id) <= 64
    assert log is logged


def test_writer_names_are_plain_file_names_stable_per_replica_and_worker():
    assert plog.writer_name("blue-3", 1) == "blue-3-w1"
    assert plog.writer_name(None, None) == "replica-w0"
    assert plog.writer_name("../evil/name", 0) == "___evil_name-w0"
