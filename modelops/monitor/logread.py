"""The monitor's one way into the prediction log: new rows since the last look, and the writers' own counters.

Everything the monitor process knows about the log's format is in this module, so a change of the format (a schema
version, probabilities, a per-stack directory) is merged in one place.

**Rows.** :class:`LogTail` follows every writer's file in the directory the way ``tail -F`` does: it remembers, per
file identity (device, inode), how many bytes it consumed, and reads only what was appended since — whole lines
only (a writer mid-line is read at the next look). A rotation renames the file (``x.jsonl`` → ``x.jsonl.1``), which
keeps its inode, so nothing is read twice and the rest of a rotated file is still read; a new file is read from its
start. Records are the writer's JSON lines (bento/prediction_log.py); keys this reader does not know are ignored
(a schema version, probabilities), lines that are not a record are counted as malformed.

**Counters.** :func:`writer_counters` reads what the writers say about themselves, tolerant of where they say it:

1. JSON files in the log directory named ``*.stats.json`` (or a ``stats/`` folder of ``*.json``), each an object
   with any of ``written``, ``dropped``, ``errors`` (``write_errors``/``error`` accepted) and optionally ``writer``;
2. lines of the replicas' ``/metrics`` (Prometheus text) whose metric name contains ``prediction_log`` and one of
   ``written``, ``dropped``, ``error`` (e.g. ``modelops_prediction_log_dropped_total{writer="blue-1-w0"} 3``).

Whichever the writer provides (the ``monitor-log`` branch adds them), the monitor re-exports them under its own
names (``stacks/alerting.py``: ``LOG_WRITTEN`` …) so the rules have one place to look.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bento.prediction_log import MODEL_VERSION, PREDICTIONS, REQUEST_ID, ROWS, TS, log_files

COUNTERS = ("written", "dropped", "errors")
_ALIASES = {"written": "written", "dropped": "dropped", "errors": "errors", "write_errors": "errors", "error": "errors"}
_METRIC_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})?\s+(?P<value>\S+)")
_WRITER_LABEL = re.compile(r'(?:writer|name|replica)="([^"]*)"')


@dataclass(frozen=True)
class Row:
    """One logged row: when, which model, its features and the predicted class."""

    ts: float
    request_id: str
    model_version: str
    features: list[float]
    prediction: str


@dataclass
class Batch:
    rows: list[Row] = field(default_factory=list)
    records: int = 0  # requests read
    malformed: int = 0  # lines that were not a record


def parse_record(record: object) -> list[Row] | None:
    """A log line's rows, or None when it is not a record this reader understands."""
    if not isinstance(record, dict):
        return None
    try:
        rows, predictions = record[ROWS], record[PREDICTIONS]
        if len(rows) != len(predictions):
            return None
        ts, request_id, version = float(record[TS]), str(record[REQUEST_ID]), str(record.get(MODEL_VERSION, ""))
        return [
            Row(ts, request_id, version, [float(v) for v in features], str(prediction))
            for features, prediction in zip(rows, predictions, strict=True)
        ]
    except (KeyError, TypeError, ValueError):
        return None


class LogTail:
    """New rows of a prediction log directory, look after look. Not thread-safe (the monitor has one loop)."""

    def __init__(self, directory: Path, since: float | None = None) -> None:
        self.directory = Path(directory)
        self.since = since  # rows older than this are skipped (the monitor judges traffic from its start on)
        self._offsets: dict[tuple[int, int], int] = {}

    def read(self) -> Batch:
        batch = Batch()
        for path in log_files(self.directory):
            try:
                with path.open("rb") as handle:
                    info = os.fstat(handle.fileno())
                    key = (info.st_dev, info.st_ino)
                    offset = self._offsets.get(key, 0)
                    if info.st_size < offset:  # truncated (or the inode was reused): start again
                        offset = 0
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue  # rotated away or removed between listing and opening: the next look finds it
            end = data.rfind(b"\n") + 1  # whole lines only
            self._offsets[key] = offset + end
            for line in data[:end].splitlines():
                if not line.strip():
                    continue
                try:
                    rows = parse_record(json.loads(line))
                except ValueError:
                    rows = None
                if rows is None:
                    batch.malformed += 1
                    continue
                batch.records += 1
                batch.rows.extend(r for r in rows if self.since is None or r.ts >= self.since)
        batch.rows.sort(key=lambda r: r.ts)
        return batch


def _stats_files(directory: Path) -> Iterable[Path]:
    if not directory.is_dir():
        return []
    found = list(directory.glob("*.stats.json"))
    if (directory / "stats").is_dir():
        found += list((directory / "stats").glob("*.json"))
    return sorted(found)


def _from_files(directory: Path) -> dict[str, dict[str, float]]:
    counters: dict[str, dict[str, float]] = {}
    for path in _stats_files(directory):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        writer = str(data.get("writer") or path.name.removesuffix(".json").removesuffix(".stats"))
        for key, value in data.items():
            name = _ALIASES.get(key)
            if name and isinstance(value, int | float):
                counters.setdefault(writer, {})[name] = float(value)
    return counters


def parse_metrics_text(text: str, default_writer: str) -> dict[str, dict[str, float]]:
    """Prediction-log counters in a Prometheus text page (see the module docstring), by writer."""
    counters: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if not match or "prediction_log" not in match["name"] or match["name"].endswith("_created"):
            continue
        name = next((c for c in COUNTERS if c.rstrip("s") in match["name"]), None)
        if name is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        label = _WRITER_LABEL.search(match["labels"] or "")
        writer = label[1] if label else default_writer
        entry = counters.setdefault(writer, {})
        entry[name] = entry.get(name, 0.0) + value
    return counters


def writer_counters(
    directory: Path, metrics_urls: dict[str, str] | None = None, timeout: float = 2.0
) -> dict[str, dict[str, float]]:
    """{writer: {written, dropped, errors}} from the stats files, else from the replicas' /metrics pages
    (``{replica name: url}``). Empty when the writers publish neither (today's log before the monitor-log work)."""
    counters = _from_files(Path(directory))
    if counters or not metrics_urls:
        return counters
    for replica, url in metrics_urls.items():
        try:
            reply = httpx.get(url, timeout=timeout)
        except httpx.HTTPError:
            continue
        if reply.status_code == 200:
            for writer, values in parse_metrics_text(reply.text, replica).items():
                counters.setdefault(writer, {}).update(values)
    return counters
