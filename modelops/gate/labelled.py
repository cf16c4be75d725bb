"""Where the quality suite's labelled rows come from — rows whose TRUE answer is known, so the candidate and the live
version can be scored on the same rows before (or beside) any production traffic:

- ``quality_data``: the CSV a user names with ``modelops:gate.quality_data`` (header: the model's feature names and
  ``gate.quality_label_column``), for their own model — rows neither version trained on;
- ``production``: the live version's recent logged rows whose labels arrived as feedback (monitor/quality.py reads
  the log and the labels; which rows it picks is the monitor's business);
- ``candidate holdout`` / ``live holdout``: the held-out set each model kept at training (bento/train.py writes
  ``metadata["holdout"]``: rows it never saw, with the data's labels).

Which of them decide is the judge's business (modelops/gate/judge.py, judge_quality).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from modelops.errors import UsageError
from stacks.config import PROJECT_ROOT

Source = Literal["quality_data", "production", "candidate_holdout", "live_holdout"]
SETTING = "modelops:gate.quality_data"


@dataclass(frozen=True)
class LabelledSet:
    name: str  # for people: "gate.quality_data (FILE)", "the candidate's held-out set (MODEL)" …
    source: Source
    rows: list[list[float]]
    labels: list[str]
    recorded_right: int | None = None  # a model's own held-out set: rows it answered right at training
    live_answers: list[str] | None = None  # production rows: what the live version answered (its log)
    # False only for a model that declares no classes (a regressor): numeric labels are then values, not class names
    classification: bool = True


@dataclass(frozen=True)
class ModelFacts:
    """What the quality suite needs from a model's metadata."""

    tag: str
    feature_names: list[str]
    classes: list[str]
    holdout: dict[str, Any] | None


def model_facts(tag: str | None) -> ModelFacts | None:
    """The model's features, classes and held-out set from the store (None when it is not in this store)."""
    if tag is None:
        return None
    import bentoml

    try:
        metadata = bentoml.models.get(tag).info.metadata
    except bentoml.exceptions.NotFound:
        return None
    # bentoml types metadata loosely; bento/train.py writes these as lists and a dict.
    meta = cast("dict[str, Any]", metadata)
    holdout = meta.get("holdout")
    return ModelFacts(tag=tag, feature_names=[str(n) for n in meta.get("feature_names") or []],
                      classes=[str(c) for c in meta.get("classes") or []],
                      holdout=holdout if isinstance(holdout, dict) and holdout.get("rows") else None)  # fmt: skip


def holdout_set(facts: ModelFacts | None, source: Source) -> LabelledSet | None:
    if facts is None or facts.holdout is None:
        return None
    whose = "candidate's" if source == "candidate_holdout" else "live version's"
    holdout = facts.holdout
    right = holdout.get("right")
    return LabelledSet(
        name=f"the {whose} held-out set ({facts.tag})",
        source=source,
        rows=[[float(v) for v in row] for row in holdout["rows"]],
        labels=[str(label) for label in holdout["labels"]],
        recorded_right=int(right) if right is not None else None,
        classification=bool(facts.classes),
    )


def quality_data_path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def read_quality_data(value: str, facts: ModelFacts | None, label_column: str) -> LabelledSet:
    """The CSV named by gate.quality_data, checked against the candidate's features (and classes): every error says
    what to change."""
    path = quality_data_path(value)
    if not path.is_file():
        raise UsageError(f"{SETTING}: no such file {path}: name a CSV of labelled rows, or remove the setting")
    if facts is None or not facts.feature_names:
        raise UsageError(
            f"{SETTING} is set, but the candidate's model declares no feature names (metadata feature_names): the "
            "gate cannot tell which column is which feature; save the model with them, or remove the setting"
        )
    features = facts.feature_names
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in [*features, label_column] if c not in columns]
        if missing:
            raise UsageError(
                f"{SETTING} {path} lacks the column(s) {', '.join(missing)}: its header needs every feature of the "
                f"model ({', '.join(features)}) and the label column {label_column!r} "
                "(another name: set modelops:gate.quality_label_column)"
            )
        rows, labels = [], []
        for line, record in enumerate(reader, start=2):
            try:
                rows.append([float(record[f]) for f in features])
            except (TypeError, ValueError):
                bad = next(f for f in features if not _number(record.get(f)))
                raise UsageError(
                    f"{SETTING} {path} line {line}: feature {bad!r} is {record.get(bad)!r}: every feature must be a "
                    "number"
                ) from None
            label = (record.get(label_column) or "").strip()
            if facts.classes and label not in facts.classes:
                raise UsageError(
                    f"{SETTING} {path} line {line}: label {label!r} is not one of the model's classes "
                    f"({', '.join(facts.classes)}): write the class names the model answers with"
                )
            labels.append(label)
    if not rows:
        raise UsageError(f"{SETTING} {path} holds no rows: add labelled rows under the header")
    return LabelledSet(
        name=f"gate.quality_data ({path})",
        source="quality_data",
        rows=rows,
        labels=labels,
        classification=bool(facts.classes),
    )


def _number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class SetAnswers:
    """One labelled set and what each version answered on its rows."""

    labelled: LabelledSet
    candidate: list[str]
    live: list[str] | None  # None: no live answers (the live version's model is unknown here: judged alone)

    @property
    def regression(self) -> bool:
        """A regressor's values (its model declares no classes, and labels and answers are numbers)."""
        values = [*self.labelled.labels, *self.candidate]
        return not self.labelled.classification and bool(values) and all(_number(v) for v in values)

    def right(self, answers: list[str]) -> list[bool]:
        return [a == t for a, t in zip(answers, self.labelled.labels, strict=True)]

    def errors(self, answers: list[str]) -> list[float]:
        return [float(a) - float(t) for a, t in zip(answers, self.labelled.labels, strict=True)]
