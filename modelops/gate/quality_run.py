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
from modelops.monitor.quality import QualityFigures, figures_of, live_window
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


def measure(
    gate: GateSettings, inputs: QualityInputs, live_model: str | None, candidate: Predict, live: Predict | None
) -> Measured:
    """Replay the logged traffic (agreement and labelled production rows) and ask both pools every labelled set."""
    logged = live_window(inputs.log_dir, live_model, inputs.window) if live_model else []
    labels_by_row = read_feedback(inputs.feedback) if inputs.feedback and inputs.feedback.exists() else {}
    replayed = candidate([r.features for r in logged]) if logged else []
    labels = [labels_by_row.get((r.request_id, r.row)) for r in logged]
    figures = figures_of([r.prediction for r in logged], replayed, labels) if logged else None
    answered: list[SetAnswers] = []
    for labelled in labelled_sets(gate, inputs):
        answered.append(SetAnswers(labelled, candidate(labelled.rows), live(labelled.rows) if live else None))
    tagged = [i for i, label in enumerate(labels) if label is not None]
    if tagged:
        production = LabelledSet(
            name=f"{len(tagged)} labelled production rows of {live_model}", source="production",
            rows=[logged[i].features for i in tagged], labels=[str(labels[i]) for i in tagged],
            live_answers=[logged[i].prediction for i in tagged],
            classification=inputs.candidate is None or bool(inputs.candidate.classes),
        )  # fmt: skip
        # What the live version answered is what it served (its log), not a fresh answer.
        answered.insert(0, SetAnswers(production, [replayed[i] for i in tagged], production.live_answers))
    return Measured(figures, answered)
