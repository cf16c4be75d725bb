"""Concept drift and performance: accuracy estimated without labels (CBPE), realised once labels arrive, and a
streaming change detector (ADWIN) on the labelled outcomes.

**Estimated accuracy (no labels needed).** A classifier's probability for the class it predicts is, when
calibrated, the chance that the prediction is right; the mean of those confidences over a window is then an
unbiased estimate of the window's accuracy — NannyML's confidence-based performance estimation (CBPE). Random
forests are not calibrated (their probabilities are tree votes), so confidences are first mapped through an isotonic
regression fitted on labelled outcomes of the same model version when at least :data:`MIN_CALIBRATION` exist
(NannyML calibrates on its reference period the same way); with fewer, the raw confidences are used and the
status says so. The interval is the spread of the realised accuracy of ``n`` predictions that are right with those
probabilities (normal approximation of a Poisson-binomial); it does not include the calibration's own error.

**Realised accuracy.** On the newest ``concept_window`` labelled outcomes (modelops/monitor/labels.py), with a Wilson
95 % interval, and beside it what CBPE estimated for those same rows: the check that the estimate can be trusted.

**Concept drift.** Each labelled outcome becomes a 1 (right) or a 0 (wrong) in prediction-time order, and river's
ADWIN watches the mean of that stream: it keeps an adaptive window and cuts it where two sub-windows' means differ
more than its bound at confidence ``delta`` (``modelops:monitor.concept_delta``) allows. A cut where accuracy rose
is not an alarm. :data:`DRIFT_DETECTED` is 1 while the latest cut was a drop (a later recovery clears it).

:func:`concept_status` computes all of it per model version; :func:`prometheus_text` and :class:`ConceptCollector`
export it for Prometheus (the monitor process, and ``modelops quality --prom FILE``).

Legacy feedback files (``{"request_id", "row", "label"}`` JSONL) are still read by :func:`read_feedback`.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bento.prediction_log import LoggedRow
from stacks.alerting import CONCEPT_DRIFT_METRIC

REQUEST_ID, PREDICTION_ID, ROW, LABEL = "request_id", "prediction_id", "row", "label"
MIN_CALIBRATION = 100  # labelled outcomes with a confidence before CBPE calibrates on them
Z95 = 1.959963984540054

# Prometheus metric names (gauges, one series per model_version): shared with the alert rules and the tests.
PREFIX = "modelops_concept"
ESTIMATED = f"{PREFIX}_estimated_accuracy"
ESTIMATED_LOW, ESTIMATED_HIGH = f"{ESTIMATED}_lower", f"{ESTIMATED}_upper"
REALISED = f"{PREFIX}_realised_accuracy"
REALISED_LOW, REALISED_HIGH = f"{REALISED}_lower", f"{REALISED}_upper"
ESTIMATED_ON_LABELLED = f"{PREFIX}_estimated_accuracy_on_labelled"
ADWIN_ACCURACY = f"{PREFIX}_adwin_accuracy"
DRIFT_DETECTED = CONCEPT_DRIFT_METRIC  # the alert rule reads it (stacks/alerting.py)
LABELLED = f"{PREFIX}_labelled_rows"
LABEL_DELAY = f"{PREFIX}_label_delay_seconds"


class FeedbackError(ValueError):
    """A feedback file line is not a labelled row. The message names the line and the expected format."""


def read_feedback(path: Path) -> dict[tuple[str, int], str]:
    """(prediction id — or, in older files, request id —, row) -> true label, from a JSONL file. A later line for
    the same row wins."""
    labels: dict[tuple[str, int], str] = {}
    with Path(path).open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record.get(PREDICTION_ID) or record[REQUEST_ID]
                labels[(str(key), int(record.get(ROW, 0)))] = str(record[LABEL])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise FeedbackError(
                    f"{path}:{number} is not a labelled row: expected "
                    '{"prediction_id": "<X-Prediction-Id>", "row": 0, "label": "<class>"} (or "request_id" in older '
                    "files)"
                ) from None
    return labels


def _key(row: LoggedRow) -> tuple[str, int]:
    return (row.prediction_id or row.request_id, row.row)


def correctness(rows: Iterable[LoggedRow], labels: dict[tuple[str, int], str]) -> list[int]:
    """1/0 per logged prediction that has a label (joined by prediction id and row), in prediction-time order."""
    ordered = sorted(rows, key=lambda r: (r.ts, r.prediction_id, r.request_id, r.row))
    return [int(r.prediction == labels[_key(r)]) for r in ordered if _key(r) in labels]


@dataclass(frozen=True)
class ConceptDrift:
    index: int  # position in the labelled stream where the drop was detected
    accuracy_before: float
    accuracy_after: float


@dataclass(frozen=True)
class Adwin:
    drops: list[ConceptDrift]
    accuracy: float | None  # ADWIN's estimate: the mean over its current window
    drifted: bool  # the latest change ADWIN detected was a drop


def adwin(stream: Sequence[int], delta: float = 0.002) -> Adwin:
    from river import drift  # deferred: importing river takes a while, and the rules module imports this one

    detector = drift.ADWIN(delta=delta)
    drops: list[ConceptDrift] = []
    drifted = False
    for index, correct in enumerate(stream):
        before = detector.estimation
        detector.update(correct)
        if detector.drift_detected:
            drifted = detector.estimation < before
            if drifted:
                drops.append(ConceptDrift(index=index, accuracy_before=before, accuracy_after=detector.estimation))
    return Adwin(drops, detector.estimation if stream else None, drifted)


def detect_accuracy_drops(stream: Sequence[int], delta: float = 0.002) -> list[ConceptDrift]:
    """Every point where ADWIN detects that rolling accuracy fell."""
    return adwin(stream, delta).drops


# ------------------------------------------------------------------------------------------------ estimates
@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """A proportion with its Wilson score interval (well-behaved near 0 and 1, unlike the normal one)."""
    if n <= 0:
        raise ValueError("an accuracy needs at least one outcome")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


Calibration = Callable[[Sequence[float]], list[float]]


def calibration(confidences: Sequence[float], correct: Sequence[bool]) -> Calibration | None:
    """confidence -> probability of being right, fitted by isotonic regression on labelled outcomes (None with
    fewer than MIN_CALIBRATION of them, or when they are all right or all wrong: nothing to fit)."""
    if len(confidences) < MIN_CALIBRATION or len(set(correct)) < 2:
        return None
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(list(confidences), [float(c) for c in correct])
    return lambda values: [float(v) for v in model.predict(list(values))]


def cbpe(confidences: Sequence[float], calibrate: Calibration | None = None, z: float = Z95) -> Estimate:
    """Expected accuracy of predictions with these confidences (calibrated first when a calibration is given)."""
    if not confidences:
        raise ValueError("an estimate needs at least one prediction")
    p = calibrate(confidences) if calibrate is not None else [float(c) for c in confidences]
    n = len(p)
    mean = sum(p) / n
    half = z * math.sqrt(sum(q * (1 - q) for q in p)) / n
    return Estimate(mean, max(0.0, mean - half), min(1.0, mean + half), n)


# ------------------------------------------------------------------------------------------------ status
@dataclass(frozen=True)
class ConceptStatus:
    model_version: str
    logged_rows: int  # newest logged rows with probabilities the estimate is made on
    estimated: Estimate | None  # CBPE over them
    calibrated: bool  # whether CBPE mapped confidences through a calibration fitted on labelled outcomes
    labelled_rows: int  # labelled outcomes in the store for this version
    realised: Estimate | None  # accuracy on the newest concept_window labelled outcomes
    estimated_on_labelled: Estimate | None  # what CBPE says for those same rows (trust check)
    adwin_accuracy: float | None
    drift_detected: bool
    drops: list[ConceptDrift] = field(default_factory=list)
    label_delay_s: float | None = None  # median time from prediction to label, newest labelled outcomes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def concept_status(
    logged: Sequence[LoggedRow], outcomes: Sequence[Any], window: int, concept_window: int, delta: float
) -> list[ConceptStatus]:
    """Per model version: CBPE on the newest ``window`` logged rows, realised accuracy and the CBPE estimate on the
    newest ``concept_window`` labelled ``outcomes`` (labels.Outcome, oldest first), and ADWIN over all of them."""
    versions = sorted({r.model_version for r in logged} | {o.model_version for o in outcomes})
    found = []
    for version in versions:
        mine = [o for o in outcomes if o.model_version == version]
        with_confidence = [o for o in mine if o.confidence is not None]
        fit = calibration([o.confidence for o in with_confidence], [o.correct for o in with_confidence])
        rows = [r for r in logged if r.model_version == version and r.confidence is not None][-window:]
        estimated = cbpe([r.confidence for r in rows], fit) if rows else None  # type: ignore[misc]
        recent = mine[-concept_window:]
        realised = wilson(sum(o.correct for o in recent), len(recent)) if recent else None
        recent_conf = [o.confidence for o in recent if o.confidence is not None]
        on_labelled = cbpe(recent_conf, fit) if recent_conf else None
        watch = adwin([int(o.correct) for o in mine], delta)
        delays = [o.arrived_at - o.predicted_at for o in recent]
        found.append(
            ConceptStatus(
                model_version=version,
                logged_rows=len(rows),
                estimated=estimated,
                calibrated=fit is not None,
                labelled_rows=len(mine),
                realised=realised,
                estimated_on_labelled=on_labelled,
                adwin_accuracy=watch.accuracy,
                drift_detected=watch.drifted,
                drops=watch.drops,
                label_delay_s=statistics.median(delays) if delays else None,
            )
        )
    return found


def status_for_stack(log_dir: Path, labels_db: Path, monitor: Any) -> list[ConceptStatus]:
    """:func:`concept_status` from a stack's prediction log and label store (``monitor``: MonitorSettings). Joins
    any label that arrived before its prediction was logged first."""
    from bento.prediction_log import read_window
    from modelops.monitor.labels import LabelStore

    rows = read_window(log_dir).rows
    store = LabelStore(labels_db)
    store.join(rows)
    return concept_status(rows, store.outcomes(), monitor.window, monitor.concept_window, monitor.concept_delta)


def samples(statuses: Iterable[ConceptStatus]) -> Iterator[tuple[str, str, float]]:
    """(metric, model_version, value) of every gauge that has a value."""
    for s in statuses:
        est, real, on_labelled = s.estimated, s.realised, s.estimated_on_labelled
        values: dict[str, float | None] = {
            LABELLED: s.labelled_rows,
            ESTIMATED: est.value if est else None,
            ESTIMATED_LOW: est.low if est else None,
            ESTIMATED_HIGH: est.high if est else None,
            REALISED: real.value if real else None,
            REALISED_LOW: real.low if real else None,
            REALISED_HIGH: real.high if real else None,
            ESTIMATED_ON_LABELLED: on_labelled.value if on_labelled else None,
            ADWIN_ACCURACY: s.adwin_accuracy,
            DRIFT_DETECTED: float(s.drift_detected),
            LABEL_DELAY: s.label_delay_s,
        }
        for name, value in values.items():
            if value is not None:
                yield name, s.model_version, float(value)


HELP = {
    LABELLED: "labelled outcomes in the label store",
    ESTIMATED: "accuracy estimated from predicted probabilities (CBPE), newest logged rows",
    ESTIMATED_LOW: "lower bound of the 95 % interval of the estimated accuracy",
    ESTIMATED_HIGH: "upper bound of the 95 % interval of the estimated accuracy",
    REALISED: "accuracy on the newest labelled rows",
    REALISED_LOW: "lower bound of the Wilson 95 % interval of the realised accuracy",
    REALISED_HIGH: "upper bound of the Wilson 95 % interval of the realised accuracy",
    ESTIMATED_ON_LABELLED: "CBPE's estimate for the newest labelled rows (compare with the realised accuracy)",
    ADWIN_ACCURACY: "accuracy over ADWIN's current adaptive window of labelled outcomes",
    DRIFT_DETECTED: "1 while the latest change ADWIN detected in labelled accuracy was a drop",
    LABEL_DELAY: "median seconds from a prediction to its label, newest labelled rows",
}


class ConceptCollector:
    """A prometheus_client collector computing the gauges at each scrape: ``registry.register(ConceptCollector(
    lambda: status_for_stack(log_dir, labels_db, settings.monitor)))``."""

    def __init__(self, compute: Callable[[], Iterable[ConceptStatus]]) -> None:
        self.compute = compute

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families = {name: GaugeMetricFamily(name, text, labels=["model_version"]) for name, text in HELP.items()}
        for name, version, value in samples(self.compute()):
            families[name].add_metric([version], value)
        yield from families.values()


def prometheus_text(statuses: Iterable[ConceptStatus]) -> str:
    """The gauges in Prometheus' text format (a textfile, or a monitor process's /metrics)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    materialised = list(statuses)
    registry.register(ConceptCollector(lambda: materialised))
    return generate_latest(registry).decode()
