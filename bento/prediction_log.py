"""Prediction log: a sample of what a replica was asked and what it answered, as rotated JSONL with a size cap.

The writer is built for the request path: :meth:`PredictionLogger.log` decides the sample, puts a reference to the
request's rows and predictions on a bounded queue and returns; a background thread serialises and writes them.
When the queue is full (the disk is slower than the traffic) records are dropped and counted, never waited for:
the log is a sample, the prediction is the product.

Disk use is bounded: each writer's file rotates at ``max_bytes`` into ``NAME.jsonl.1`` … ``NAME.jsonl.BACKUPS``
(oldest dropped), so a writer never holds more than ``(backups + 1) * max_bytes``. Every process (BentoML worker)
needs its own writer name (two processes rotating one file lose records); stable names (replica + worker index)
keep the directory bounded across restarts too.

One line per request::

    {"ts": 1767225600.12, "request_id": "…", "model_version": "wine_classifier:abc", "rows": [[…]],
     "predictions": ["class_0"]}

This module is imported by the service, so it uses the standard library only.
"""

from __future__ import annotations

import json
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".jsonl"
# Environment the service reads (the deployment sets them from modelops:monitor in the stack file).
ENV_DIR = "MODELOPS_PREDICTION_LOG_DIR"
ENV_SAMPLE_RATE = "MODELOPS_PREDICTION_LOG_SAMPLE_RATE"
ENV_MAX_BYTES = "MODELOPS_PREDICTION_LOG_MAX_BYTES"
ENV_BACKUPS = "MODELOPS_PREDICTION_LOG_BACKUPS"
ENV_REPLICA = "MODELOPS_REPLICA_NAME"  # the replica's name in its deployment (writer names derive from it)
# Request headers the service reads: a client's own request id (echoed back; feedback labels refer to it), and the
# marker of synthetic traffic (the gate's and the benchmark's load), which is never logged: the drift check must see
# what production clients send, not what a load generator made up.
REQUEST_ID_HEADER = "x-request-id"
SYNTHETIC_HEADER = "x-modelops-synthetic"
_REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
MAX_REQUEST_ID = 64
# Record fields: shared with the reader (and the tests) instead of repeated as literals.
TS, REQUEST_ID, MODEL_VERSION, ROWS, PREDICTIONS = "ts", "request_id", "model_version", "rows", "predictions"


def request_identity(headers: Mapping[str, str]) -> tuple[str, bool]:
    """(request id, whether to log the request): the client's ``X-Request-Id`` when it is a plain token of at most
    64 characters (letters, digits, ``._:-``), a fresh one otherwise; synthetic traffic is not logged."""
    given = headers.get(REQUEST_ID_HEADER, "")
    valid = 0 < len(given) <= MAX_REQUEST_ID and _REQUEST_ID_CHARS.issuperset(given)
    return (given if valid else uuid.uuid4().hex), headers.get(SYNTHETIC_HEADER, "") == ""


def writer_name(replica: str | None, worker_index: int | None) -> str:
    """A stable per-process log name: the replica's (from the deployment) and the BentoML worker's index."""
    base = "".join(c if c.isalnum() or c in "-_" else "_" for c in (replica or "replica"))[:48] or "replica"
    return f"{base}-w{worker_index or 0}"


# How long the writer lets records gather before writing them (flush() and close() do not wait for it).
WRITE_INTERVAL_S = 0.2


class PredictionLogError(ValueError):
    """The prediction log is misconfigured. The message names the setting and the fix."""


class PredictionLogger:
    """Samples requests and writes them off the request path. Thread-safe; one instance per process."""

    def __init__(
        self,
        directory: Path | str,
        name: str,
        model_version: str,
        sample_rate: float = 1.0,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 3,
        queue_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise PredictionLogError(f"sample_rate must be between 0 and 1, got {sample_rate!r}: set {ENV_SAMPLE_RATE}")
        if max_bytes < 1024:
            raise PredictionLogError(f"max_bytes must be >= 1024, got {max_bytes!r}: set {ENV_MAX_BYTES}")
        if backups < 1:
            raise PredictionLogError(f"backups must be >= 1, got {backups!r}: set {ENV_BACKUPS}")
        if not name or "/" in name or name.startswith("."):
            raise PredictionLogError(f"writer name must be a plain file name like 'b1-w0', got {name!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{name}{SUFFIX}"
        self.model_version = model_version
        self.sample_rate = sample_rate
        self.max_bytes = max_bytes
        self.backups = backups
        self.dropped = 0  # records lost because the queue was full
        self.written = 0
        self._clock = clock
        self._rng = rng or random.Random()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._file = self.path.open("ab")
        self._size = self._file.tell()
        self._hurry = threading.Event()  # set by flush/close: write what is queued now, not at the next tick
        self._thread = threading.Thread(target=self._run, name=f"prediction-log-{name}", daemon=True)
        self._closed = False
        self._thread.start()

    @classmethod
    def from_env(cls, name: str, model_version: str, environ: dict[str, str] | None = None) -> PredictionLogger | None:
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
                max_bytes=int(env.get(ENV_MAX_BYTES, str(10 * 1024 * 1024))),
                backups=int(env.get(ENV_BACKUPS, "3")),
            )
        except ValueError as exc:
            if isinstance(exc, PredictionLogError):
                raise
            raise PredictionLogError(
                f"prediction log settings must be numbers ({exc}): check {ENV_SAMPLE_RATE}, {ENV_MAX_BYTES}, "
                f"{ENV_BACKUPS}"
            ) from None

    def log(self, request_id: str, rows: Sequence[Sequence[float]], predictions: Sequence[str]) -> bool:
        """Record one request if it falls in the sample. Never blocks; returns whether it was queued.

        The caller hands over ``rows`` and ``predictions`` and must not change them afterwards (they are
        serialised later, on the writer thread).
        """
        if self._closed or (self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate):
            return False
        try:
            self._queue.put_nowait((self._clock(), request_id, rows, predictions))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is on disk (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        self._hurry.set()
        if not done.wait(timeout):
            raise TimeoutError(f"prediction log {self.path} did not flush within {timeout} s")

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the writer thread and close the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None, timeout=timeout)
        self._hurry.set()
        self._thread.join(timeout)
        self._file.close()

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            # Then let records gather for a tick: under load the writer wakes a few times a second, not once per
            # request (each wake-up took the GIL from the request path).
            self._hurry.wait(WRITE_INTERVAL_S)
            self._hurry.clear()
            batch = [item]
            # Drain what else is waiting (the queue bounds it), so a tick costs one write and one flush.
            while len(batch) < 100_000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = False
            waiters = []
            for entry in batch:
                if entry is None:
                    stop = True
                elif isinstance(entry, threading.Event):
                    waiters.append(entry)
                else:
                    self._write(entry)
            self._file.flush()
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _write(self, entry: tuple) -> None:
        ts, request_id, rows, predictions = entry
        record = {
            TS: ts,
            REQUEST_ID: request_id,
            MODEL_VERSION: self.model_version,
            ROWS: rows.tolist() if hasattr(rows, "tolist") else [list(map(float, row)) for row in rows],
            PREDICTIONS: list(predictions),
        }
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        self._file.write(line)
        self._size += len(line)
        self.written += 1

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            newer = self.path.with_name(f"{self.path.name}.{index - 1}") if index > 1 else self.path
            if newer.exists():
                os.replace(newer, older)  # replaces (drops) the oldest backup when index == backups
        self._file = self.path.open("ab")
        self._size = 0


@dataclass(frozen=True)
class LoggedRow:
    """One row a replica predicted, as the reader returns it (requests flattened into rows)."""

    ts: float
    request_id: str
    row: int  # index of the row in its request
    model_version: str
    features: list[float]
    prediction: str


@dataclass(frozen=True)
class LogWindow:
    rows: list[LoggedRow]
    files: list[Path]
    malformed_lines: int  # lines that were not a complete record (e.g. a writer was mid-line)


def log_files(directory: Path | str) -> list[Path]:
    """Every current and rotated prediction log file in the directory."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and (p.name.endswith(SUFFIX) or f"{SUFFIX}." in p.name))


def _records(path: Path, malformed: list[int]) -> Iterator[dict]:
    with path.open("rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                if isinstance(record, dict) and len(record[ROWS]) == len(record[PREDICTIONS]):
                    yield record
                    continue
            except (ValueError, KeyError, TypeError):
                pass
            malformed[0] += 1


def read_window(directory: Path | str, n: int | None = None) -> LogWindow:
    """The last ``n`` logged rows across every writer in the directory, oldest first (all rows when n is None).

    Reads every file: the size cap bounds what there is to read.
    """
    files = log_files(directory)
    malformed = [0]
    rows: list[LoggedRow] = []
    for path in files:
        for record in _records(path, malformed):
            for i, (features, prediction) in enumerate(zip(record[ROWS], record[PREDICTIONS], strict=True)):
                rows.append(
                    LoggedRow(
                        ts=float(record[TS]),
                        request_id=str(record[REQUEST_ID]),
                        row=i,
                        model_version=str(record.get(MODEL_VERSION, "")),
                        features=features,
                        prediction=str(prediction),
                    )
                )
    rows.sort(key=lambda r: (r.ts, r.request_id, r.row))
    if n is not None:
        rows = rows[-n:] if n > 0 else []
    return LogWindow(rows=rows, files=files, malformed_lines=malformed[0])
