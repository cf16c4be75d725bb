"""The quality suite's measurement: every labelled set there is (modelops/gate/labelled.py), answered by the
candidate pool and by the live pool on their own URLs (requests marked synthetic: never logged), plus the replay of
the live version's recent logged traffic to the candidate (agreement; monitor/quality.py). Nothing is judged here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelops.gate.labelled import LabelledSet, ModelFacts, SetAnswers, holdout_set, read_quality_data
from modelops.monitor.concept import read_feedback
from modelops.monitor.labels import Outcome
from modelops.monitor.quality import QualityFigures, figures_of, labelled_window, live_window
from stacks.config import GateSettings

Predict = Callable[[list[list[float]]], list[str]]


@dataclass(frozen=True)
class QualityInputs:
    """Where the labelled rows and the logged traffic are, and the two models' facts."""

    log_dir: Path
    window: int
    feedback: Path | None
    candidate: ModelFacts | None
    live: ModelFacts | None
    labels_db: Path | None = None  # the stack's label store (modelops/monitor/labels.py); else the feedback file


@dataclass(frozen=True)
class Measured:
    figures: QualityFigures | None  # agreement on the live version's logged rows (None: nothing logged)
    sets: list[SetAnswers] = field(default_factory=list)


def labelled_sets(gate: GateSettings, inputs: QualityInputs) -> list[LabelledSet]:
    """The labelled sets that exist before any replay (the held-out sets and gate.quality_data); the production
    rows are found with the replay. Raises UsageError when gate.quality_data does not fit the candidate."""
    sets = []
    if gate.quality_data:
        sets.append(read_quality_data(gate.quality_data, inputs.candidate, gate.quality_label_column))
    candidate = holdout_set(inputs.candidate, "candidate_holdout")
    if candidate is not None:
        sets.append(candidate)
    same_model = inputs.live is not None and inputs.candidate is not None and inputs.live.tag == inputs.candidate.tag
    live = None if same_model else holdout_set(inputs.live, "live_holdout")
    if live is not None:
        sets.append(live)
    return sets


def labelled_production_rows(inputs: QualityInputs, live_model: str) -> list[Outcome]:
    """The newest ``window`` rows the live version served that have a label in the stack's label store (labels that
    arrived before their prediction reached the log are joined first)."""
    if inputs.labels_db is None or not inputs.labels_db.exists():
        return []
    return labelled_window(inputs.labels_db, live_model, inputs.window, inputs.log_dir)


def measure(
    gate: GateSettings, inputs: QualityInputs, live_model: str | None, candidate: Predict, live: Predict | None
) -> Measured:
    """Replay the logged traffic (agreement and labelled production rows) and ask both pools every labelled set."""
    logged = live_window(inputs.log_dir, live_model, inputs.window) if live_model else []
    replayed = candidate([r.features for r in logged]) if logged else []
    graded = labelled_production_rows(inputs, live_model) if live_model else []
    if graded:  # the label store: the newest labelled rows, which need not be among the newest logged ones
        labels: list[str | None] = [None] * len(logged)
        production_rows = [o.features for o in graded]
        production_labels = [o.label for o in graded]
        production_live = [o.prediction for o in graded]
        production_candidate = candidate(production_rows)
    else:  # no label store: the legacy feedback file, on the recent logged rows
        by_row = read_feedback(inputs.feedback) if inputs.feedback and inputs.feedback.exists() else {}
        labels = [by_row.get((r.prediction_id or r.request_id, r.row)) for r in logged]
        tagged = [i for i, label in enumerate(labels) if label is not None]
        production_rows = [logged[i].features for i in tagged]
        production_labels = [str(labels[i]) for i in tagged]
        production_live = [logged[i].prediction for i in tagged]
        production_candidate = [replayed[i] for i in tagged]
    figures = figures_of([r.prediction for r in logged], replayed, labels) if logged else None
    answered: list[SetAnswers] = []
    for labelled in labelled_sets(gate, inputs):
        answered.append(SetAnswers(labelled, candidate(labelled.rows), live(labelled.rows) if live else None))
    if production_rows:
        production = LabelledSet(
            name=f"{len(production_rows)} labelled production rows of {live_model}", source="production",
            rows=production_rows, labels=production_labels, live_answers=production_live,
            classification=inputs.candidate is None or bool(inputs.candidate.classes),
        )  # fmt: skip
        # What the live version answered is what it served (its log), not a fresh answer.
        answered.insert(0, SetAnswers(production, production_candidate, production.live_answers))
    return Measured(figures, answered)
