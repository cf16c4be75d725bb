"""The prediction log: sampled, bounded on disk, never blocking the request path, read back as rows."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest

from bento import prediction_log as plog
from bento.prediction_log import PredictionLogError, PredictionLogger, log_files, read_window
from modelops.waiting import wait_until
from tests.tinyfs import fill, tiny_tmpfs

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

    def _write(self, pending: list) -> None:
        self.writing.set()
        assert self.release.wait(10), "test never released the slow disk"
        super()._write(pending)


def test_a_full_queue_drops_and_counts_records_instead_of_blocking_the_request(tmp_path):
    one = plog._entry_bytes([ROW], ["class_0"], None)
    writer = _SlowDisk(tmp_path / "log", name="b1-w0", model_version=VERSION, queue_bytes=max(1024, 3 * one))
    try:
        assert writer.log("req-0", [ROW], ["class_0"])
        assert writer.writing.wait(10), "the writer thread never picked up the first record"
        queued = [writer.log(f"req-{i}", [ROW], ["class_0"]) for i in range(1, 10)]
        assert queued[:2] == [True, True] and not any(queued[2:]), "the byte bound holds 3 records of this size"
        assert writer.dropped == 7
    finally:
        writer.release.set()
        writer.close()
    assert [r.request_id for r in read_window(tmp_path / "log").rows] == ["req-0", "req-1", "req-2"]


def test_the_queue_is_bounded_in_bytes_so_large_requests_take_more_of_it(tmp_path):
    big = [ROW] * 100
    bound = plog._entry_bytes(big, ["class_0"] * 100, None) * 2 + plog._entry_bytes([ROW], ["class_0"], None)
    writer = _SlowDisk(tmp_path / "log", name="b1-w0", model_version=VERSION, queue_bytes=bound)
    try:
        assert writer.log("big-0", big, ["class_0"] * 100)
        assert writer.log("big-1", big, ["class_0"] * 100)
        assert not writer.log("big-2", big, ["class_0"] * 100), "a third 100-row record is over the byte bound"
        assert writer.log("small", [ROW], ["class_0"]), "a small one still fits"
    finally:
        writer.release.set()
        writer.close()


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
    request_id, log = plog.request_identity(headers, secret="locust")
    assert (request_id == headers.get("x-request-id")) is kept
    assert 0 < len(request_id) <= 64
    assert log is logged


def test_writer_names_are_plain_file_names_stable_per_replica_and_worker():
    assert plog.writer_name("blue-3", 1) == "blue-3-w1"
    assert plog.writer_name(None, None) == "replica-w0"
    assert plog.writer_name("../evil/name", 0) == "___evil_name-w0"


SECRET = "s" * 43


@pytest.mark.parametrize(
    ("marker", "secret", "logged"),
    [
        (SECRET, SECRET, False),  # the deployment's own load generators
        ("locust", SECRET, True),  # any other value: a client trying to hide its traffic
        ("", SECRET, True),
        (SECRET, None, True),  # a replica without a secret honours no marker
        ("locust", None, True),
    ],
)
def test_the_synthetic_marker_counts_only_with_the_deployments_secret(marker, secret, logged):
    headers = {"x-modelops-synthetic": marker} if marker else {}
    assert plog.identify(headers, secret).logged is logged


def test_every_request_gets_its_own_server_side_id_whatever_id_the_client_chose():
    same = {"x-request-id": "order-1"}
    first, second = plog.identify(same, None), plog.identify(same, None)
    assert first.request_id == second.request_id == "order-1"
    assert first.prediction_id != second.prediction_id and len(first.prediction_id) == 32


def test_records_carry_the_schema_version_prediction_id_and_class_probabilities(tmp_path):
    with _logger(tmp_path, classes=["class_0", "class_1"]) as writer:
        writer.log("client-1", [ROW, ROW], ["class_0", "class_1"], [[0.9, 0.1], [0.3, 0.7]], prediction_id="p-1")
    line = json.loads((tmp_path / "log" / "b1-w0.jsonl").read_text())
    assert line[plog.SCHEMA] == plog.SCHEMA_VERSION
    rows = read_window(tmp_path / "log").rows
    assert [(r.prediction_id, r.request_id, r.row) for r in rows] == [("p-1", "client-1", 0), ("p-1", "client-1", 1)]
    assert rows[1].probabilities == {"class_0": 0.3, "class_1": 0.7}
    assert [r.confidence for r in rows] == [0.9, 0.7]


def test_schema_1_records_are_still_read_with_the_client_id_as_their_prediction_id(tmp_path):
    (tmp_path / "log").mkdir()
    old = {
        plog.TS: 1.0,
        plog.REQUEST_ID: "req-1",
        plog.MODEL_VERSION: VERSION,
        plog.ROWS: [ROW],
        plog.PREDICTIONS: ["a"],
    }
    newer = {**old, plog.SCHEMA: plog.SCHEMA_VERSION + 1}  # a future schema this reader does not know
    (tmp_path / "log" / "old.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(newer) + "\n")
    window = read_window(tmp_path / "log")
    assert [(r.prediction_id, r.request_id, r.probabilities) for r in window.rows] == [("req-1", "req-1", None)]
    assert window.malformed_lines == 1


def test_the_log_directory_is_0700_and_its_files_0600(tmp_path):
    (tmp_path / "log").mkdir(mode=0o755)  # made earlier, too open: tightened
    with _logger(tmp_path, max_bytes=1024) as writer:
        for i in range(10):
            writer.log(f"req-{i}", [ROW], ["class_0"])
    assert stat.S_IMODE((tmp_path / "log").stat().st_mode) == 0o700
    files = log_files(tmp_path / "log")
    assert len(files) > 1, "rotated files too"
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}


def test_files_not_written_for_the_retention_time_are_deleted_also_other_writers(tmp_path):
    directory = tmp_path / "log"
    directory.mkdir()
    stale, fresh = directory / "blue-3-w0.jsonl.2", directory / "blue-1-w0.jsonl"
    for path in (stale, fresh):
        path.write_text("")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    with _logger(tmp_path, retention_s=600, sweep_interval_s=0.0) as writer:
        writer.log("req-1", [ROW], ["class_0"])
        writer.flush()
    assert not stale.exists(), "older than the retention time: deleted"
    assert fresh.exists() and writer.path.exists()


def test_a_torn_last_line_is_cut_off_before_the_writer_appends(tmp_path):
    with _logger(tmp_path) as writer:
        writer.log("req-1", [ROW], ["class_0"])
    path = tmp_path / "log" / "b1-w0.jsonl"
    with path.open("a") as handle:
        handle.write('{"schema": 2, "ts": 1.0, "requ')  # a process killed mid-write
    with _logger(tmp_path) as writer:
        writer.log("req-2", [ROW], ["class_0"])
    window = read_window(path.parent)
    assert [r.request_id for r in window.rows] == ["req-1", "req-2"]
    assert window.malformed_lines == 0


def test_a_directory_removed_under_the_writer_is_made_again_and_logging_goes_on(tmp_path):
    with _logger(tmp_path, max_bytes=1024, backoff_s=(0.01, 0.05)) as writer:
        writer.log("before", [ROW], ["class_0"])
        writer.flush()
        shutil.rmtree(tmp_path / "log")  # `rm -r .work` while the replica runs
        for i in range(20):  # enough to rotate: the rotation finds no file to move
            writer.log(f"after-{i}", [ROW], ["class_0"])
        writer.flush()
        assert writer._thread.is_alive()
    kept = [r.request_id for r in read_window(tmp_path / "log").rows]
    assert kept[-1] == "after-19" and "before" not in kept


def test_close_writes_everything_queued_and_fsyncs(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(plog.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    writer = _logger(tmp_path)
    for i in range(500):
        writer.log(f"req-{i}", [ROW], ["class_0"])
    writer.close()
    assert len(read_window(tmp_path / "log").rows) == 500
    assert synced, "close() fsyncs the file"
    assert writer.stats()[plog.QUEUED_BYTES] == 0


def test_the_counters_are_prometheus_metrics(tmp_path):
    registry = prometheus_client.CollectorRegistry()
    metrics = plog.LogMetrics(registry)
    with _logger(tmp_path, metrics=metrics, queue_bytes=1024) as writer:
        for i in range(5):
            writer.log(f"req-{i}", [ROW, ROW], ["a", "b"])  # two such records are over 1 KiB: some are dropped
        writer.flush()
    value = lambda name: registry.get_sample_value(f"{plog.METRIC_PREFIX}_{name}_total")  # noqa: E731
    assert value(plog.WRITTEN) == writer.written > 0
    assert value(plog.DROPPED) == writer.dropped > 0
    assert value(plog.ERRORS) == 0


# ------------------------------------------------------------------------------------------- a full filesystem
@pytest.fixture
def tiny_fs(tmp_path) -> Iterator[Path]:
    with tiny_tmpfs(tmp_path / "fs") as mount:
        yield mount


def test_a_full_disk_is_counted_and_retried_and_logging_recovers_when_space_returns(tiny_fs):
    filler = fill(tiny_fs, leave_kib=4)  # room for about 16 records
    queue_bytes = 32 * 1024
    with PredictionLogger(tiny_fs / "log", "b1-w0", VERSION, queue_bytes=queue_bytes, backoff_s=(0.01, 0.05)) as w:
        accepted = sum(w.log(f"full-{i}", [ROW], ["class_0"]) for i in range(400))
        w.flush()
        assert w.errors > 0 and "No space left" in w.last_error, w.stats()
        assert w.dropped == 400 - accepted > 0, "beyond the byte bound, records are dropped and counted"
        assert w.stats()[plog.QUEUED_BYTES] <= queue_bytes
        assert w._thread.is_alive(), "the writer outlives a full disk"
        filler.unlink()  # space comes back: the writer retries on its own, and the records it kept get written
        assert wait_until(lambda: w.stats()[plog.QUEUED_BYTES] == 0, timeout=10), w.stats()
        assert w.log("after", [ROW], ["class_0"])
        w.flush()
        written_after = w.written
    window = read_window(tiny_fs / "log")
    assert window.malformed_lines == 0, "no torn record left by a failed write"
    assert window.rows[-1].request_id == "after"
    assert written_after == len(window.rows) == accepted + 1, "every record accepted while the disk was full survived"
