"""Model quality for the gate: agreement with the live version on recent rows, accuracy on labelled feedback —
each rule fails once and passes once — and the measurement replaying a real prediction log to a predictor."""

from __future__ import annotations

import json

import pytest

from bento.prediction_log import PredictionLogger
from modelops.monitor.quality import QualityThresholds, figures_of, judge_quality, measure

LIMITS = QualityThresholds(min_rows=10, min_agreement=0.9, min_labelled=10, max_accuracy_drop=0.02)


def rows(live: str, candidate: str, labels: str | None = None):
    """One character per row: 'aab…' predictions; labels '.' for an unlabelled row."""
    truth = [None if c == "." else c for c in labels] if labels else [None] * len(live)
    return figures_of(list(live), list(candidate), truth)


@pytest.mark.parametrize(
    ("figures", "status", "words"),
    [
        (rows("a" * 9, "a" * 9), "inconclusive", "fewer than 10"),
        (rows("a" * 20, "a" * 18 + "bb"), "pass", "agreement 90.0%"),
        (rows("a" * 20, "a" * 17 + "bbb"), "fail", "agrees with the live version on 85.0%"),
        # Disagreeing, but labels show the candidate right where the live version was wrong: pass.
        (rows("a" * 20, "b" * 20, "b" * 20), "pass", "accuracy 100.0% vs live 0.0%"),
        # Agreeing mostly, but wrong on labelled rows the live version got right: fail on accuracy.
        (rows("a" * 20, "a" * 19 + "b", "a" * 20), "fail", "95.0% of the time, the live version 100.0%"),
        (rows("a" * 100, "a" * 99 + "b", "a" * 100), "pass", "accuracy 99.0% vs live 100.0%"),
        # Too few labels to let accuracy overrule low agreement.
        (rows("a" * 20, "b" * 20, "b" * 5 + "." * 15), "fail", "no labelled rows show it"),
    ],
)
def test_quality_rules(figures, status, words) -> None:
    result = judge_quality(figures, LIMITS)
    assert result.status == status and words in result.reason, result


def test_measure_replays_the_live_versions_logged_rows_and_joins_feedback(tmp_path) -> None:
    with PredictionLogger(tmp_path / "log", name="r1", model_version="m:live") as log:
        for i in range(12):
            log.log(f"req-{i}", [[float(i), 0.0]], ["small" if i < 6 else "large"])
    with PredictionLogger(tmp_path / "log", name="r2", model_version="m:other") as log:
        log.log("other", [[99.0, 0.0]], ["large"])  # another version's row: not part of the window
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text("".join(json.dumps({"request_id": f"req-{i}", "label": "small"}) + "\n" for i in range(4)))
    seen = []

    def candidate(batch: list[list[float]]) -> list[str]:
        seen.extend(batch)
        return ["small" if r[0] < 8 else "large" for r in batch]  # moves the boundary: rows 6, 7 differ

    figures = measure(tmp_path / "log", "m:live", candidate, window=100, feedback=feedback)
    assert [r[0] for r in seen] == [float(i) for i in range(12)]
    assert (figures.rows, figures.agreement, figures.labelled) == (12, 10 / 12, 4)
    assert figures.candidate_accuracy == figures.live_accuracy == 1.0


def test_accuracy_is_measured_on_the_newest_labelled_rows_not_on_the_newest_rows(tmp_path) -> None:
    """The newest logged rows have no labels yet; older ones do: accuracy comes from those, with intervals."""
    from bento.prediction_log import read_window
    from modelops.monitor.labels import Label, LabelStore

    with PredictionLogger(tmp_path / "log", name="r1", model_version="m:live") as log:
        for i in range(30):
            log.log(f"req-{i}", [[float(i), 0.0]], ["small"], prediction_id=f"p-{i}")
    store = LabelStore(tmp_path / "labels.sqlite")
    # Rows 0-19 are labelled (the live version right on 0-9 only); rows 20-29 are too new to be.
    store.add(
        [Label(f"p-{i}", 0, "small" if i < 10 else "large") for i in range(20)], read_window(tmp_path / "log").rows
    )

    def candidate(batch: list[list[float]]) -> list[str]:
        return ["small" if r[0] < 10 else "large" for r in batch]  # right on every labelled row

    figures = measure(tmp_path / "log", "m:live", candidate, window=10, labels=store.path)
    assert (figures.rows, figures.labelled) == (10, 10), "10 newest rows for agreement, 10 newest labelled ones"
    assert figures.agreement == 0.0, "rows 20-29: the candidate says large, the live version small"
    assert (figures.candidate_accuracy, figures.live_accuracy) == (1.0, 0.0), "rows 10-19"
    assert figures.candidate_accuracy_interval is not None and figures.candidate_accuracy_interval[0] > 0.6
    assert figures.live_accuracy_interval is not None and figures.live_accuracy_interval[1] < 0.4
