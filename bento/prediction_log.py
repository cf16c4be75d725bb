"""Prediction log: a sample of what a replica was asked and what it answered, as rotated JSONL with a size cap.

The writer is built for the request path: :meth:`PredictionLogger.log` decides the sample, puts a reference to the
request's rows and predictions on a queue bounded in bytes and returns; a background thread serialises and writes
them. When the queue is full (the disk is slower than the traffic, or failing) records are dropped and counted,
never waited for: the log is a sample, the prediction is the product.

The writer survives its disk. Any OSError (a full filesystem, the directory removed under it, a rotation that
fails) is counted, the records not yet written stay queued (still counted against the byte bound), and the writer
retries with exponential back-off; a line cut short by a failed write is truncated away before the next one, so
the file never holds a torn record in the middle. A file unlinked under the writer (``rm -r``, another writer's
retention sweep) is noticed and reopened. The counters — records written, records dropped, write errors, bytes
queued — are on the replica's ``/metrics`` (:class:`LogMetrics`), where an alert watches them
(modelops/monitor/rules.py).

Disk use is bounded in size and in age: each writer's file rotates at ``max_bytes`` into ``NAME.jsonl.1`` …
``NAME.jsonl.BACKUPS`` (oldest dropped), and every log file in the directory not written for ``retention_s`` is
deleted (swept by each writer, so files of replicas that no longer run go too). Every process (BentoML worker)
needs its own writer name (two processes rotating one file lose records); stable names (replica + worker index)
keep the directory bounded across restarts too. The directory is 0700 and the files 0600: they hold raw inputs.

:meth:`PredictionLogger.close` (the service's shutdown hook, and ``atexit`` as a fallback) writes everything
queued, fsyncs and closes: a clean stop (SIGTERM) loses no record that was queued.

One line per request, schema version :data:`SCHEMA_VERSION`::

    {"schema": 2, "ts": 1767225600.12, "prediction_id": "9f…", "request_id": "…", "model_version": "wine:abc",
     "rows": [[…]], "predictions": ["class_0"], "classes": ["class_0", …], "probabilities": [[0.9, 0.05, 0.05]]}

``prediction_id`` is made by the server, unique per request, and returned in the ``X-Prediction-Id`` response
header: labels are joined by it. ``request_id`` is the client's own ``X-Request-Id`` (two clients may choose the
same one). Schema 1 records (no ``schema`` key, no prediction id or probabilities) are still read.

This module is imported by the service, so it uses the standard library only (prometheus_client, a dependency of
BentoML itself, is imported only when metrics are asked for).
"""

from __future__ import annotations

import atexit
import contextlib
import hmac
import json
import os
import queue
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

SUFFIX = ".jsonl"
SCHEMA_VERSION = 2
# Environment the service reads (the deployment sets them from modelops:monitor in the stack file).
ENV_DIR = "MODELOPS_PREDICTION_LOG_DIR"
ENV_SAMPLE_RATE = "MODELOPS_PREDICTION_LOG_SAMPLE_RATE"
ENV_MAX_BYTES = "MODELOPS_PREDICTION_LOG_MAX_BYTES"
ENV_BACKUPS = "MODELOPS_PREDICTION_LOG_BACKUPS"
ENV_QUEUE_BYTES = "MODELOPS_PREDICTION_LOG_QUEUE_BYTES"
ENV_RETENTION_S = "MODELOPS_PREDICTION_LOG_RETENTION_S"
ENV_WRITE_INTERVAL_S = "MODELOPS_PREDICTION_LOG_WRITE_INTERVAL_S"  # how long records gather before a write
ENV_REPLICA = "MODELOPS_REPLICA_NAME"  # the replica's name in its deployment (writer names derive from it)
# The deployment's secret: a request is synthetic (left out of the log) only when its marker header carries it.
ENV_SYNTHETIC_SECRET = "MODELOPS_SYNTHETIC_SECRET"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 3
DEFAULT_QUEUE_BYTES = 32 * 1024 * 1024
DEFAULT_RETENTION_S = 7 * 24 * 3600.0
# Request headers the service reads: a client's own request id (echoed back), and the marker of synthetic traffic
# (the gate's and the benchmark's load), which is not logged when it carries the deployment's secret: the drift
# check must see what production clients send, not what a load generator made up — and a client must not be able
# to hide its traffic from it. The server's own id of each request goes back in PREDICTION_ID_HEADER.
REQUEST_ID_HEADER = "x-request-id"
PREDICTION_ID_HEADER = "x-prediction-id"
SYNTHETIC_HEADER = "x-modelops-synthetic"
_REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
MAX_REQUEST_ID = 64
# Record fields: shared with the reader (and the tests) instead of repeated as literals.
SCHEMA, TS, REQUEST_ID, MODEL_VERSION, ROWS, PREDICTIONS = (
    "schema",
    "ts",
    "request_id",
    "model_version",
    "rows",
    "predictions",
)
PREDICTION_ID, CLASSES, PROBABILITIES = "prediction_id", "classes", "probabilities"
# Prometheus metric names (shared with the alert rules and the tests). Counters get "_total" on /metrics.
METRIC_PREFIX = "modelops_prediction_log"
WRITTEN, DROPPED, ERRORS, QUEUED_BYTES = "written", "dropped", "errors", "queued_bytes"

SYNTHETIC_SECRET = os.environ.get(ENV_SYNTHETIC_SECRET) or None  # this process's deployment secret, if any


class Identity(NamedTuple):
    request_id: str  # the client's X-Request-Id when it is a plain token, else a fresh one
    prediction_id: str  # the server's own id of this request: unique, what labels are joined by
    logged: bool  # False for synthetic traffic that proved it with the deployment's secret


def identify(headers: Mapping[str, str], secret: str | None = SYNTHETIC_SECRET) -> Identity:
    """Who this request is: the client's id, a fresh server-side id, and whether it may be logged.

    The client's ``X-Request-Id`` is kept when it is a plain token of at most 64 characters (letters, digits,
    ``._:-``). ``X-Modelops-Synthetic`` keeps the request out of the log only when it equals the deployment's
    ``secret`` (compared in constant time); without a secret, or with any other value, the request is logged."""
    given = headers.get(REQUEST_ID_HEADER, "")
    valid = 0 < len(given) <= MAX_REQUEST_ID and _REQUEST_ID_CHARS.issuperset(given)
    prediction_id = uuid.uuid4().hex
    marker = headers.get(SYNTHETIC_HEADER, "")
    synthetic = bool(secret) and bool(marker) and hmac.compare_digest(marker.encode(), str(secret).encode())
    return Identity(given if valid else prediction_id, prediction_id, not synthetic)


def request_identity(headers: Mapping[str, str], secret: str | None = SYNTHETIC_SECRET) -> tuple[str, bool]:
    """(request id, whether to log the request): :func:`identify` without the server-side id."""
    identity = identify(headers, secret)
    return identity.request_id, identity.logged


def writer_name(replica: str | None, worker_index: int | None) -> str:
    """A stable per-process log name: the replica's (from the deployment) and the BentoML worker's index."""
    base = "".join(c if c.isalnum() or c in "-_" else "_" for c in (replica or "replica"))[:48] or "replica"
    return f"{base}-w{worker_index or 0}"


# How long the writer lets records gather before writing them (flush() and close() do not wait for it).
WRITE_INTERVAL_S = 0.2
IDLE_WAKE_S = 1.0  # an idle writer still wakes this often: retries after an error, the retention sweep
BACKOFF_S = (0.1, 5.0)  # first and longest wait before retrying after a failed write
SWEEP_INTERVAL_S = 60.0
_ENTRY_OVERHEAD = 200  # bytes of a record besides its rows and predictions (keys, id, version, time)


class PredictionLogError(ValueError):
    """The prediction log is misconfigured. The message names the setting and the fix."""


class LogMetrics:
    """The writer's counters in prometheus_client, under ``modelops_prediction_log_*``.

    Create it in a BentoML worker after startup (the service's ``__init__``), so that prometheus_client writes to
    the multiprocess directory /metrics reads (see bento/cache.py). ``registry`` defaults to the global one."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client  # deferred: must follow the worker's PROMETHEUS_MULTIPROC_DIR

        where = {} if registry is None else {"registry": registry}
        help_text = {
            WRITTEN: "prediction log records written to disk",
            DROPPED: "prediction log records dropped (queue full or unwritable)",
            ERRORS: "prediction log write errors (OSError: disk full, directory removed, ...)",
        }
        self.counters = {
            name: prometheus_client.Counter(f"{METRIC_PREFIX}_{name}", text, **where)
            for name, text in help_text.items()
        }
        self.queued = prometheus_client.Gauge(
            f"{METRIC_PREFIX}_{QUEUED_BYTES}",
            "bytes of prediction log records waiting to be written",
            multiprocess_mode="livesum",
            **where,
        )

    def count(self, name: str, amount: int = 1) -> None:
        if amount:
            self.counters[name].inc(amount)


_process_metrics: list[LogMetrics] = []


def process_metrics() -> LogMetrics:
    """This process's metrics, made once (prometheus_client refuses a second registration of a name)."""
    if not _process_metrics:
        _process_metrics.append(LogMetrics())
    return _process_metrics[0]


def _entry_bytes(rows: Any, predictions: Sequence[Any], probabilities: Sequence[Any] | None) -> int:
    """The record's size as JSON, estimated without serialising it (about 20 characters per number)."""
    size = getattr(rows, "size", None)
    cells = int(size) if size is not None else sum(len(row) for row in rows)
    per_row = 24 + (22 * len(probabilities[0]) if probabilities else 0)
    return _ENTRY_OVERHEAD + 20 * cells + per_row * len(predictions)


_open_loggers: weakref.WeakSet[PredictionLogger] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """A process that exits without the service's shutdown hook still writes what it queued."""
    for logger in list(_open_loggers):
        with contextlib.suppress(Exception):
            logger.close(timeout=5.0)


class PredictionLogger:
    """Samples requests and writes them off the request path. Thread-safe; one instance per process."""

    def __init__(
        self,
        directory: Path | str,
        name: str,
        model_version: str,
        sample_rate: float = 1.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        retention_s: float = DEFAULT_RETENTION_S,
        classes: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        metrics: LogMetrics | None = None,
        backoff_s: tuple[float, float] = BACKOFF_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
        write_interval_s: float = WRITE_INTERVAL_S,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise PredictionLogError(f"sample_rate must be between 0 and 1, got {sample_rate!r}: set {ENV_SAMPLE_RATE}")
        if max_bytes < 1024:
            raise PredictionLogError(f"max_bytes must be >= 1024, got {max_bytes!r}: set {ENV_MAX_BYTES}")
        if backups < 1:
            raise PredictionLogError(f"backups must be >= 1, got {backups!r}: set {ENV_BACKUPS}")
        if queue_bytes < 1024:
            raise PredictionLogError(f"queue_bytes must be >= 1024, got {queue_bytes!r}: set {ENV_QUEUE_BYTES}")
        if not retention_s > 0:
            raise PredictionLogError(f"retention_s must be > 0, got {retention_s!r}: set {ENV_RETENTION_S}")
        if not 0 <= write_interval_s <= 60:
            raise PredictionLogError(
                f"write_interval_s must be between 0 and 60, got {write_interval_s!r}: set {ENV_WRITE_INTERVAL_S}"
            )
        if not name or "/" in name or name.startswith("."):
            raise PredictionLogError(f"writer name must be a plain file name like 'b1-w0', got {name!r}")
        self.directory = Path(directory)
        self.path = self.directory / f"{name}{SUFFIX}"
        self.model_version = model_version
        self.sample_rate = sample_rate
        self.max_bytes = max_bytes
        self.backups = backups
        self.queue_bytes = queue_bytes
        self.retention_s = retention_s
        self.classes = list(classes) if classes is not None else None
        self.metrics = metrics
        self.dropped = 0  # records lost: the queue was full, or a record could not be serialised
        self.written = 0
        self.errors = 0  # failed attempts to write (each OSError once)
        self.last_error = ""
        self._clock = clock
        self._rng = rng or random.Random()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queued_bytes = 0  # estimated bytes of records queued or pending, against queue_bytes
        self._lock = threading.Lock()  # guards _queued_bytes and dropped (log() and the writer both change them)
        self._fd: int | None = None
        self._size = 0  # bytes of complete records in the open file: a failed write is truncated back to it
        self._backoff = backoff_s
        self._retry_in = 0.0
        self._retry_at = 0.0
        self._sweep_interval_s = sweep_interval_s
        self._write_interval_s = write_interval_s
        self._swept_at = 0.0
        self._hurry = threading.Event()  # set by flush/close: write what is queued now, not at the next tick
        self._thread = threading.Thread(target=self._run, name=f"prediction-log-{name}", daemon=True)
        self._closed = False
        try:
            self._open()
        except OSError as exc:  # the disk is not ready yet: the writer retries; the replica serves meanwhile
            self._failed(exc)
        _open_loggers.add(self)
        self._thread.start()

    @classmethod
    def from_env(
        cls,
        name: str,
        model_version: str,
        environ: Mapping[str, str] | None = None,
        classes: Sequence[str] | None = None,
        metrics: Callable[[], LogMetrics | None] = lambda: None,
    ) -> PredictionLogger | None:
        """The writer the deployment asked for through the environment, or None when prediction logging is off."""
        env = os.environ if environ is None else environ
        directory = env.get(ENV_DIR)
        if not directory:
            return None
        try:
            return cls(
                directory,
                name=name,
                model_version=model_version,
                sample_rate=float(env.get(ENV_SAMPLE_RATE, "1.0")),
                max_bytes=int(env.get(ENV_MAX_BYTES, str(DEFAULT_MAX_BYTES))),
                backups=int(env.get(ENV_BACKUPS, str(DEFAULT_BACKUPS))),
                queue_bytes=int(env.get(ENV_QUEUE_BYTES, str(DEFAULT_QUEUE_BYTES))),
                retention_s=float(env.get(ENV_RETENTION_S, str(DEFAULT_RETENTION_S))),
                write_interval_s=float(env.get(ENV_WRITE_INTERVAL_S, str(WRITE_INTERVAL_S))),
                classes=classes,
                metrics=metrics(),
            )
        except ValueError as exc:
            if isinstance(exc, PredictionLogError):
                raise
            raise PredictionLogError(
                f"prediction log settings must be numbers ({exc}): check {ENV_SAMPLE_RATE}, {ENV_MAX_BYTES}, "
                f"{ENV_BACKUPS}, {ENV_QUEUE_BYTES}, {ENV_RETENTION_S}, {ENV_WRITE_INTERVAL_S}"
            ) from None

    # ------------------------------------------------------------------------------------------- request path
    def log(
        self,
        request_id: str,
        rows: Sequence[Sequence[float]],
        predictions: Sequence[str],
        probabilities: Sequence[Sequence[float]] | None = None,
        prediction_id: str | None = None,
    ) -> bool:
        """Record one request if it falls in the sample. Never blocks; returns whether it was queued.

        The caller hands over ``rows``, ``predictions`` and ``probabilities`` (one list per row, in the order of
        ``classes``) and must not change them afterwards (they are serialised later, on the writer thread).
        """
        if self._closed or (self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate):
            return False
        size = _entry_bytes(rows, predictions, probabilities)
        with self._lock:
            if self._queued_bytes + size > self.queue_bytes:
                self.dropped += 1
                full = True
            else:
                self._queued_bytes += size
                full = False
        if full:
            if self.metrics is not None:
                self.metrics.count(DROPPED)
            return False
        self._queue.put(
            (self._clock(), request_id, prediction_id or request_id, rows, predictions, probabilities, size)
        )
        return True

    # ------------------------------------------------------------------------------------------- control
    def stats(self) -> dict[str, Any]:
        return {
            WRITTEN: self.written,
            DROPPED: self.dropped,
            ERRORS: self.errors,
            QUEUED_BYTES: self._queued_bytes,
            "last_error": self.last_error,
        }

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far was written, or attempted and kept for a retry (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        self._hurry.set()
        if not done.wait(timeout):
            raise TimeoutError(f"prediction log {self.path} did not flush within {timeout} s")

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, fsync and close the file, stop the writer thread. Safe to call twice.

        Records that cannot be written even now (the disk still failing) are counted as dropped."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._hurry.set()
        self._thread.join(timeout)
        _open_loggers.discard(self)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- writer thread
    def _run(self) -> None:
        pending: list[tuple[bytes, int]] = []  # serialised records not on disk yet: (line, its queued-bytes estimate)
        while True:
            try:
                item = self._queue.get(timeout=IDLE_WAKE_S)
            except queue.Empty:
                item = False  # nothing new: a chance to retry and sweep
            if item is not False:
                # Let records gather for a tick: under load the writer wakes a few times a second, not once per
                # request (each wake-up took the GIL from the request path).
                self._hurry.wait(self._write_interval_s)
                self._hurry.clear()
            batch = [] if item is False else [item]
            # Drain what else is waiting (the byte bound limits it), so a tick costs one write.
            while len(batch) < 100_000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop, waiters = False, []
            for entry in batch:
                if entry is None:
                    stop = True
                elif isinstance(entry, threading.Event):
                    waiters.append(entry)
                else:
                    line = self._serialise(entry)
                    if line is not None:
                        pending.append((line, entry[-1]))
            try:
                now = time.monotonic()
                if pending and (stop or waiters or now >= self._retry_at):
                    self._write(pending)
                if now - self._swept_at >= self._sweep_interval_s:
                    self._swept_at = now
                    self._sweep()
                if stop:
                    self._finish(pending)
            except Exception as exc:  # the writer must outlive anything: count it and go on
                self._failed(exc)
            if self.metrics is not None:
                self.metrics.queued.set(self._queued_bytes)
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _serialise(self, entry: tuple) -> bytes | None:
        ts, request_id, prediction_id, rows, predictions, probabilities, size = entry
        record: dict[str, Any] = {
            SCHEMA: SCHEMA_VERSION,
            TS: ts,
            PREDICTION_ID: prediction_id,
            REQUEST_ID: request_id,
            MODEL_VERSION: self.model_version,
        }
        try:
            record[ROWS] = rows.tolist() if hasattr(rows, "tolist") else [list(map(float, row)) for row in rows]
            record[PREDICTIONS] = list(predictions)
            if probabilities is not None:
                if self.classes is not None:
                    record[CLASSES] = self.classes
                record[PROBABILITIES] = probabilities.tolist() if hasattr(probabilities, "tolist") else probabilities
            return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        except (TypeError, ValueError) as exc:
            self._release(size)
            self._drop(1)
            self.last_error = f"unserialisable record {prediction_id}: {exc}"
            return None

    def _write(self, pending: list[tuple[bytes, int]]) -> None:
        """Write the pending records in order, rotating between lines; on OSError keep the rest for a retry."""
        try:
            self._open()
            while pending:
                room, take, used = self.max_bytes - self._size, 0, 0
                for line, _ in pending:
                    # A line that does not fit waits for a rotation, unless the file is empty (it goes in alone).
                    if used + len(line) > room and (take or self._size):
                        break
                    take, used = take + 1, used + len(line)
                if not take:
                    self._rotate()
                    continue
                chunk = pending[:take]
                self._write_all(b"".join(line for line, _ in chunk))
                del pending[: len(chunk)]
                self._release(sum(estimate for _, estimate in chunk))
                self.written += len(chunk)
                if self.metrics is not None:
                    self.metrics.count(WRITTEN, len(chunk))
            self._retry_in = 0.0
        except OSError as exc:
            self._failed(exc)

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            # A record cut short must not stay in the file: the next line would be glued to it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _open(self) -> None:
        """Open the file if it is not (or no longer: unlinked under us), with the directory at 0700, files 0600."""
        if self._fd is not None:
            if os.fstat(self._fd).st_nlink > 0:
                return
            self._close_fd()  # removed (rm -r, a retention sweep): start a new file where it belongs
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):  # a directory made before (or by someone else): tighten it if we may
            if self.directory.stat().st_mode & 0o077:
                self.directory.chmod(0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)
            size = os.fstat(fd).st_size
            if size and _ends_mid_line(self.path, size):
                size = _last_line_end(self.path, size)  # a torn record from a crash or a failed write
                os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size = fd, size

    def _rotate(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        self._close_fd()
        for index in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            newer = self.path.with_name(f"{self.path.name}.{index - 1}") if index > 1 else self.path
            if newer.exists():
                os.replace(newer, older)  # replaces (drops) the oldest backup when index == backups
        self._open()

    def _sweep(self) -> None:
        """Delete every log file in the directory not written for retention_s (this writer's and others')."""
        cutoff = time.time() - self.retention_s
        for path in log_files(self.directory):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def _finish(self, pending: list[tuple[bytes, int]]) -> None:
        """Stop: fsync and close; whatever still could not be written is counted as dropped."""
        if pending:
            self._write(pending)  # one more attempt, back-off or not
        if pending:
            self._release(sum(estimate for _, estimate in pending))
            self._drop(len(pending))
            pending.clear()
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._failed(exc)
            self._close_fd()

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.metrics is not None:
            self.metrics.count(ERRORS)
        # A file whose last write failed may be gone or half-written: reopen (and repair) on the next attempt.
        if isinstance(exc, OSError):
            self._close_fd()
        low, high = self._backoff
        self._retry_in = min(high, max(low, self._retry_in * 2))
        self._retry_at = time.monotonic() + self._retry_in

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _release(self, size: int) -> None:
        with self._lock:
            self._queued_bytes -= size

    def _drop(self, count: int) -> None:
        with self._lock:
            self.dropped += count
        if self.metrics is not None:
            self.metrics.count(DROPPED, count)


def _ends_mid_line(path: Path, size: int) -> bool:
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) != b"\n"


def _last_line_end(path: Path, size: int) -> int:
    """Offset just after the last newline before ``size`` (0 when there is none)."""
    with path.open("rb") as handle:
        start = max(0, size - 1024 * 1024)  # records are far smaller than this
        handle.seek(start)
        data = handle.read(size - start)
    cut = data.rfind(b"\n")
    return start + cut + 1 if cut >= 0 else 0


@dataclass(frozen=True)
class LoggedRow:
    """One row a replica predicted, as the reader returns it (requests flattened into rows)."""

    ts: float
    request_id: str  # the client's id (not unique across clients)
    row: int  # index of the row in its request
    model_version: str
    features: list[float]
    prediction: str
    prediction_id: str = ""  # the server's id of the request (unique): labels are joined by (prediction_id, row)
    probabilities: dict[str, float] | None = None  # per class, when the record has them (schema 2)

    @property
    def confidence(self) -> float | None:
        """The predicted class's probability (what a confidence-based performance estimate uses)."""
        return max(self.probabilities.values()) if self.probabilities else None


@dataclass(frozen=True)
class LogWindow:
    rows: list[LoggedRow]
    files: list[Path]
    malformed_lines: int  # lines that were not a complete record (e.g. a writer was mid-line), or of a newer schema


def log_files(directory: Path | str) -> list[Path]:
    """Every current and rotated prediction log file in the directory."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and (p.name.endswith(SUFFIX) or f"{SUFFIX}." in p.name))


def _records(path: Path, malformed: list[int]) -> Iterator[dict]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:  # rotated or swept away since it was listed
        return
    with handle:
        for line in handle:
            try:
                record = json.loads(line)
                if (
                    isinstance(record, dict)
                    and int(record.get(SCHEMA, 1)) <= SCHEMA_VERSION
                    and len(record[ROWS]) == len(record[PREDICTIONS])
                ):
                    yield record
                    continue
            except (ValueError, KeyError, TypeError):
                pass
            malformed[0] += 1


def _rows_of(record: dict) -> Iterator[LoggedRow]:
    request_id = str(record[REQUEST_ID])
    prediction_id = str(record.get(PREDICTION_ID) or request_id)  # schema 1: the client's id was all there was
    classes, probabilities = record.get(CLASSES) or [], record.get(PROBABILITIES) or []
    with_probabilities = (
        isinstance(classes, list)
        and isinstance(probabilities, list)
        and len(probabilities) == len(record[ROWS]) > 0
        and all(isinstance(p, list) and len(p) == len(classes) for p in probabilities)
    )
    for i, (features, prediction) in enumerate(zip(record[ROWS], record[PREDICTIONS], strict=True)):
        yield LoggedRow(
            ts=float(record[TS]),
            request_id=request_id,
            row=i,
            model_version=str(record.get(MODEL_VERSION, "")),
            features=features,
            prediction=str(prediction),
            prediction_id=prediction_id,
            probabilities=dict(zip(classes, map(float, probabilities[i]), strict=True)) if with_probabilities else None,
        )


def read_window(directory: Path | str, n: int | None = None) -> LogWindow:
    """The last ``n`` logged rows across every writer in the directory, oldest first (all rows when n is None).

    Reads every file: the size cap bounds what there is to read.
    """
    files = log_files(directory)
    malformed = [0]
    rows: list[LoggedRow] = []
    for path in files:
        for record in _records(path, malformed):
            try:
                rows.extend(_rows_of(record))
            except (ValueError, TypeError):
                malformed[0] += 1
    rows.sort(key=lambda r: (r.ts, r.prediction_id, r.row))
    if n is not None:
        rows = rows[-n:] if n > 0 else []
    return LogWindow(rows=rows, files=files, malformed_lines=malformed[0])
