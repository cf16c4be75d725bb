"""Model quality of a candidate against the live version, on the recent production window: for the gate.

Measurement (:func:`measure`): the last ``window`` rows the live version logged (bento/prediction_log.py) are
replayed to the candidate pool alone (its own URL: live traffic untouched); the candidate's answers are compared
with what the live version answered for the same rows (agreement). Accuracy is measured on the newest ``window``
*labelled* rows of the live version, from the stack's label store (modelops/monitor/labels.py: labels joined by
the server's prediction id, kept with the row's features, so rotation of the log cannot take them away): those
rows are replayed too, and both versions are scored against the true labels, each with a Wilson 95 % interval.
(The newest logged rows are those least likely to be labelled yet: taking the labelled ones is what makes the
accuracy comparison possible at all.) Without a label store, labels come from a legacy feedback file, joined to
the recent rows only.

Verdict (:func:`judge_quality`, pure):

- ``inconclusive`` with fewer than ``min_rows`` replayed rows: nothing to judge on;
- ``fail`` when, on at least ``min_labelled`` labelled rows, the candidate's accuracy is more than
  ``max_accuracy_drop`` below the live version's;
- ``fail`` when it agrees with the live version on fewer than ``min_agreement`` of the rows *and* no labelled
  evidence shows it at least as accurate (a model retrained on shifted data is meant to disagree: labels decide);
- ``pass`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import httpx

from bento.prediction_log import LoggedRow, read_window
from modelops.monitor import synthetic
from modelops.monitor.concept import read_feedback, wilson
from modelops.monitor.labels import LabelStore, Outcome

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class QualityThresholds:
    min_rows: int = 100
    min_agreement: float = 0.9
    min_labelled: int = 50
    max_accuracy_drop: float = 0.02


@dataclass(frozen=True)
class QualityFigures:
    rows: int
    agreement: float | None
    labelled: int
    candidate_accuracy: float | None
    live_accuracy: float | None
    # Wilson 95 % intervals of the accuracies (None where there is no accuracy, or from older summaries)
    candidate_accuracy_interval: tuple[float, float] | None = None
    live_accuracy_interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class QualityResult:
    status: Status
    reason: str
    figures: QualityFigures

    def to_dict(self) -> dict:
        return asdict(self)


def figures_of(live: Sequence[str], candidate: Sequence[str], labels: Sequence[str | None]) -> QualityFigures:
    """Agreement and, on the labelled rows, each version's accuracy. Three aligned sequences, one item per row."""
    if not len(live) == len(candidate) == len(labels):
        raise ValueError(f"rows differ in length: live {len(live)}, candidate {len(candidate)}, labels {len(labels)}")
    rows = len(live)
    agreement = sum(a == b for a, b in zip(live, candidate, strict=True)) / rows if rows else None
    labelled = [(lv, c, t) for lv, c, t in zip(live, candidate, labels, strict=True) if t is not None]
    n = len(labelled)
    return QualityFigures(
        rows=rows, agreement=agreement, labelled=n,
        candidate_accuracy=sum(c == t for _, c, t in labelled) / n if n else None,
        live_accuracy=sum(lv == t for lv, _, t in labelled) / n if n else None,
    )  # fmt: skip


def judge_quality(figures: QualityFigures, limits: QualityThresholds) -> QualityResult:
    f = figures
    if f.rows < limits.min_rows or f.agreement is None:
        return QualityResult("inconclusive", f"{f.rows} logged rows replayed, fewer than {limits.min_rows}: "
                             "log more production traffic (modelops:monitor.log_sample_rate)", f)  # fmt: skip
    # (candidate, live) accuracy, when enough rows are labelled to judge them
    accuracies = (
        (f.candidate_accuracy, f.live_accuracy)
        if f.labelled >= limits.min_labelled and f.candidate_accuracy is not None and f.live_accuracy is not None
        else None
    )
    labelled = accuracies is not None
    if accuracies is not None and accuracies[0] < accuracies[1] - limits.max_accuracy_drop:
        return QualityResult(
            "fail",
            f"on {f.labelled} labelled rows the candidate is right {f.candidate_accuracy:.1%} of the time, the live "
            f"version {f.live_accuracy:.1%}: more than {limits.max_accuracy_drop:.1%} worse",
            f,
        )
    at_least_as_good = accuracies is not None and accuracies[0] >= accuracies[1]
    if f.agreement < limits.min_agreement and not at_least_as_good:
        evidence = "no labelled rows show it" if not labelled else "labelled rows show it less accurate"
        return QualityResult(
            "fail",
            f"the candidate agrees with the live version on {f.agreement:.1%} of {f.rows} recent rows (minimum "
            f"{limits.min_agreement:.0%}) and {evidence} at least as accurate: send feedback labels to judge it",
            f,
        )
    accuracy = (
        f", accuracy {f.candidate_accuracy:.1%} vs live {f.live_accuracy:.1%} on {f.labelled} labelled rows"
        if labelled
        else ""
    )
    return QualityResult("pass", f"agreement {f.agreement:.1%} on {f.rows} recent rows{accuracy}", f)


def http_predictor(
    url: str, batch: int = 32, timeout: float = 30.0, synthetic_secret: str | None = None
) -> Callable[[list[list[float]]], list[str]]:
    """Predicted labels from a pool's URL (``POST /predict {"rows": [...]}``), ``batch`` rows per request; marked
    synthetic with the deployment's secret (modelops/monitor/synthetic.py) when one is given."""
    marker = synthetic.headers(synthetic_secret)

    def predict(rows: list[list[float]]) -> list[str]:
        labels: list[str] = []
        with httpx.Client(timeout=timeout) as client:
            for start in range(0, len(rows), batch):
                # Marked synthetic: a replay is not production traffic, so the candidate does not log it.
                body = {"rows": rows[start : start + batch]}
                reply = client.post(f"{url}/predict", json=body, headers=marker)
                reply.raise_for_status()
                labels += [item["label"] if isinstance(item, dict) else str(item) for item in reply.json()]
        return labels

    return predict


def live_window(log_dir: Path, live_version: str, window: int) -> list[LoggedRow]:
    """The last ``window`` rows the live model version logged (other versions' rows, e.g. a canary's, left out)."""
    return [r for r in read_window(log_dir).rows if r.model_version == live_version][-window:]


def labelled_window(labels_db: Path, live_version: str, window: int, log_dir: Path | None = None) -> list[Outcome]:
    """The newest ``window`` labelled rows the live version predicted (features, prediction, label, times), from
    the label store; labels that arrived before their prediction was in the log are joined first (``log_dir``)."""
    store = LabelStore(labels_db)
    if log_dir is not None:
        store.join(read_window(log_dir).rows)
    return store.outcomes(live_version, newest=window)


def measure(
    log_dir: Path,
    live_version: str,
    predict: Callable[[list[list[float]]], list[str]],
    window: int,
    feedback: Path | None = None,
    labels: Path | None = None,
) -> QualityFigures:
    """Replay the live version's last ``window`` logged rows to the candidate (``predict``) and compare; score both
    versions on the newest ``window`` labelled rows of the label store ``labels`` (or, without one, on the recent
    rows the legacy ``feedback`` file labels)."""
    logged = live_window(log_dir, live_version, window)
    candidate = predict([r.features for r in logged]) if logged else []
    graded = labelled_window(labels, live_version, window, log_dir) if labels is not None and labels.exists() else []
    if not graded:  # no label store (or nothing labelled in it): the legacy feedback file, on the recent rows
        labels_by_row = read_feedback(feedback) if feedback and feedback.exists() else {}
        truth = [labels_by_row.get((r.prediction_id or r.request_id, r.row)) for r in logged]
        return with_intervals(figures_of([r.prediction for r in logged], candidate, truth))
    recent = figures_of([r.prediction for r in logged], candidate, [None] * len(logged))
    on_labelled = figures_of(
        [o.prediction for o in graded], predict([o.features for o in graded]), [o.label for o in graded]
    )
    return with_intervals(
        replace(
            recent,
            labelled=on_labelled.labelled,
            candidate_accuracy=on_labelled.candidate_accuracy,
            live_accuracy=on_labelled.live_accuracy,
        )
    )


def with_intervals(f: QualityFigures) -> QualityFigures:
    """The figures with Wilson 95 % intervals around both accuracies."""

    def interval(accuracy: float | None) -> tuple[float, float] | None:
        if accuracy is None or not f.labelled:
            return None
        estimate = wilson(round(accuracy * f.labelled), f.labelled)
        return (estimate.low, estimate.high)

    return replace(
        f,
        candidate_accuracy_interval=interval(f.candidate_accuracy),
        live_accuracy_interval=interval(f.live_accuracy),
    )
