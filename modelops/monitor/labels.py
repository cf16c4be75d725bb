"""Ground-truth labels, kept durably per stack and joined to predictions by the server's prediction id.

Labels arrive late (a wine is graded days after it was predicted), long after the prediction log may have rotated.
So the store keeps, beside each label, what it was a label *of*: when a label arrives (or later, once the log holds
its prediction) the logged prediction is copied in — time, model version, predicted class, its confidence and the
row's features. From then on the labelled outcome no longer depends on the log: realised accuracy, ADWIN and the
gate's labelled rows read the store alone.

The key is ``(prediction_id, row)``: the server-side id every response carries in ``X-Prediction-Id``
(bento/prediction_log.py), unique per request. Clients may choose the same ``X-Request-Id``; a label that names only
a client's request id is accepted when the log holds exactly one request with that id, and refused as ambiguous
otherwise (never joined to someone else's prediction). A later label for the same row replaces the earlier one.

Storage: SQLite (standard library), one file per stack (``labels.sqlite`` in its directory, 0600), WAL mode so a
reader never blocks a writer; every arrival has its time (``arrived_at``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bento.prediction_log import LoggedRow

PREDICTION_ID, REQUEST_ID, ROW, LABEL = "prediction_id", "request_id", "row", "label"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    prediction_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    label TEXT NOT NULL,
    arrived_at REAL NOT NULL,
    predicted_at REAL,
    model_version TEXT,
    prediction TEXT,
    confidence REAL,
    features TEXT,
    PRIMARY KEY (prediction_id, row)
);
CREATE INDEX IF NOT EXISTS labels_by_time ON labels (model_version, predicted_at);
"""


class LabelError(ValueError):
    """A label file line is not a label. The message names the line and the expected format."""


@dataclass(frozen=True)
class Label:
    prediction_id: str
    row: int
    label: str


@dataclass(frozen=True)
class Outcome:
    """A label joined to the prediction it grades."""

    prediction_id: str
    row: int
    label: str
    arrived_at: float
    predicted_at: float
    model_version: str
    prediction: str
    confidence: float | None
    features: list[float]

    @property
    def correct(self) -> bool:
        return self.prediction == self.label


@dataclass(frozen=True)
class AddResult:
    stored: int  # labels written (new or replacing an earlier one)
    joined: int  # stored labels whose prediction the log held (now kept in the store)
    unmatched: int  # labels naming a client request id the log does not hold
    ambiguous: int  # labels naming a client request id that several requests used: refused


class LabelStore:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def add(self, labels: Iterable[Label], log_rows: Sequence[LoggedRow] = ()) -> AddResult:
        """Store labels (a later one for the same row wins), then join them to ``log_rows`` where they match."""
        now = self.clock()
        rows = [(lab.prediction_id, lab.row, lab.label, now) for lab in labels]
        with self._db() as db:
            db.executemany(
                "INSERT INTO labels (prediction_id, row, label, arrived_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(prediction_id, row) DO UPDATE SET label = excluded.label, arrived_at = excluded.arrived_at",
                rows,
            )
        joined = self.join(log_rows, only={(p, r) for p, r, _, _ in rows})
        return AddResult(stored=len(rows), joined=joined, unmatched=0, ambiguous=0)

    def join(self, log_rows: Sequence[LoggedRow], only: set[tuple[str, int]] | None = None) -> int:
        """Copy logged predictions into the labels that grade them and have no prediction yet. Returns how many."""
        with self._db() as db:
            waiting = {(p, r) for p, r in db.execute("SELECT prediction_id, row FROM labels WHERE prediction IS NULL")}
            if only is not None:
                waiting &= only
            found = [r for r in log_rows if (r.prediction_id, r.row) in waiting]
            db.executemany(
                "UPDATE labels SET predicted_at = ?, model_version = ?, prediction = ?, confidence = ?, features = ? "
                "WHERE prediction_id = ? AND row = ? AND prediction IS NULL",
                [
                    (r.ts, r.model_version, r.prediction, r.confidence, json.dumps(r.features), r.prediction_id, r.row)
                    for r in found
                ],
            )
        return len(found)

    def labels(self) -> dict[tuple[str, int], str]:
        """Every label, joined or not: (prediction id, row) -> label."""
        with self._db() as db:
            return {(p, r): lab for p, r, lab in db.execute("SELECT prediction_id, row, label FROM labels")}

    def outcomes(self, model_version: str | None = None, newest: int | None = None) -> list[Outcome]:
        """Labels joined to their predictions, oldest prediction first (the newest ``newest`` when given)."""
        where = "prediction IS NOT NULL" + (" AND model_version = ?" if model_version is not None else "")
        args: tuple = (model_version,) if model_version is not None else ()
        query = (
            "SELECT prediction_id, row, label, arrived_at, predicted_at, model_version, prediction, confidence, "
            f"features FROM labels WHERE {where} ORDER BY predicted_at DESC, prediction_id DESC, row DESC"
        )
        if newest is not None:
            query += f" LIMIT {int(newest)}"
        with self._db() as db:
            found = [
                Outcome(p, r, lab, arrived, predicted, version, prediction, confidence, json.loads(features))
                for p, r, lab, arrived, predicted, version, prediction, confidence, features in db.execute(query, args)
            ]
        return found[::-1]

    def model_versions(self) -> list[str]:
        with self._db() as db:
            return [
                v for (v,) in db.execute("SELECT DISTINCT model_version FROM labels WHERE model_version IS NOT NULL")
            ]


@dataclass(frozen=True)
class RawLabel:
    """A line of a label file: by prediction id (preferred) or by the client's request id."""

    prediction_id: str | None
    request_id: str | None
    row: int
    label: str


def read_label_file(path: Path) -> list[RawLabel]:
    """JSONL, one labelled row per line: ``{"prediction_id": "…", "row": 0, "label": "class_1"}`` (or
    ``"request_id"`` instead of ``"prediction_id"``: the client's id, resolved through the log)."""
    found: list[RawLabel] = []
    with Path(path).open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                prediction_id, request_id = record.get(PREDICTION_ID), record.get(REQUEST_ID)
                if not (prediction_id or request_id):
                    raise KeyError(PREDICTION_ID)
                found.append(
                    RawLabel(
                        str(prediction_id) if prediction_id else None,
                        str(request_id) if request_id else None,
                        int(record.get(ROW, 0)),
                        str(record[LABEL]),
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                raise LabelError(
                    f"{path}:{number} is not a labelled row: expected "
                    '{"prediction_id": "<X-Prediction-Id of the answer>", "row": 0, "label": "<class>"}'
                ) from None
    return found


def resolve(raw: Iterable[RawLabel], log_rows: Sequence[LoggedRow]) -> tuple[list[Label], int, int]:
    """(labels, unmatched, ambiguous): lines by prediction id as they are; lines by client request id mapped to the
    one logged request that used it — refused when several did, or when the log holds none."""
    by_client: dict[str, set[str]] = {}
    for r in log_rows:
        by_client.setdefault(r.request_id, set()).add(r.prediction_id)
    labels: list[Label] = []
    unmatched = ambiguous = 0
    for line in raw:
        if line.prediction_id:
            labels.append(Label(line.prediction_id, line.row, line.label))
            continue
        ids = by_client.get(line.request_id or "", set())
        if len(ids) == 1:
            labels.append(Label(next(iter(ids)), line.row, line.label))
        elif ids:
            ambiguous += 1
        else:
            unmatched += 1
    return labels, unmatched, ambiguous


def add_file(store: LabelStore, path: Path, log_rows: Sequence[LoggedRow]) -> AddResult:
    """`modelops labels add FILE`: read, resolve against the log, store and join."""
    labels, unmatched, ambiguous = resolve(read_label_file(path), log_rows)
    added = store.add(labels, log_rows)
    return AddResult(added.stored, added.joined, unmatched, ambiguous)
