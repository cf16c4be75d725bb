"""Concept drift: labelled feedback joined to logged predictions, and a streaming change detector on correctness.

Feedback is JSONL, one object per labelled row: ``{"request_id": "…", "row": 0, "label": "class_1"}`` (``row``
defaults to 0, the first row of the request). Each labelled prediction becomes a 1 (right) or a 0 (wrong) in
prediction-time order, and river's ADWIN watches the mean of that stream: the rolling accuracy. ADWIN keeps an
adaptive window and cuts it where two sub-windows' means differ more than its bound at confidence ``delta`` allows,
so it needs no fixed window length and adapts to slow and abrupt changes. A cut where accuracy *rose* is not an
alarm: only drops are reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from river import drift

from bento.prediction_log import LoggedRow

REQUEST_ID, ROW, LABEL = "request_id", "row", "label"


class FeedbackError(ValueError):
    """A feedback file line is not a labelled row. The message names the line and the expected format."""


def read_feedback(path: Path) -> dict[tuple[str, int], str]:
    """(request id, row) -> true label, from a JSONL file. A later line for the same row wins."""
    labels: dict[tuple[str, int], str] = {}
    with Path(path).open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                labels[(str(record[REQUEST_ID]), int(record.get(ROW, 0)))] = str(record[LABEL])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise FeedbackError(
                    f"{path}:{number} is not a labelled row: expected "
                    '{"request_id": "<id from the prediction log>", "row": 0, "label": "<class>"}'
                ) from None
    return labels


def correctness(rows: Iterable[LoggedRow], labels: dict[tuple[str, int], str]) -> list[int]:
    """1/0 per logged prediction that has a label, in prediction-time order."""
    ordered = sorted(rows, key=lambda r: (r.ts, r.request_id, r.row))
    return [int(r.prediction == labels[(r.request_id, r.row)]) for r in ordered if (r.request_id, r.row) in labels]


@dataclass(frozen=True)
class ConceptDrift:
    index: int  # position in the labelled stream where the drop was detected
    accuracy_before: float
    accuracy_after: float


def detect_accuracy_drops(stream: Sequence[int], delta: float = 0.002) -> list[ConceptDrift]:
    """Every point where ADWIN detects that rolling accuracy fell."""
    detector = drift.ADWIN(delta=delta)
    found = []
    for index, correct in enumerate(stream):
        before = detector.estimation
        detector.update(correct)
        if detector.drift_detected and detector.estimation < before:
            found.append(ConceptDrift(index=index, accuracy_before=before, accuracy_after=detector.estimation))
    return found
