"""`modelops retrain`: a new model version from new data, with its lineage, and its bento — ready for the gate.

Lineage travels in the model's metadata (``metadata["lineage"]``, beside the metrics and the drift reference):
the SHA-256 of the training data (of the file as given, so ``sha256sum FILE`` checks it; of the arrays for the
built-in set), where it came from, the parent model version (the newest one in the store before this one), the
seed and the held-out metrics. ``modelops history`` reads it back for every version that went live.

A data file is CSV with a header: the model's feature columns (any order; the parent's contract) and a ``class``
column holding class names.
"""

from __future__ import annotations

import csv
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from modelops import parent_check
from modelops.errors import ExitStatus, ModelopsError, UsageError
from modelops.parent_check import ParentCheck

LABEL_COLUMN = "class"


@dataclass(frozen=True)
class RetrainResult:
    model: str
    bento: str
    lineage: dict
    parent_check: ParentCheck | None = None  # the new model against its parent (None: no parent to compare with)


class RetrainRefusedError(ModelopsError):
    """The retrained model is worse than its parent on labelled rows: not stored, no bento (``--force`` overrides)."""

    exit_status = ExitStatus.QUALITY_FAILED


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_csv(path: Path, feature_names: list[str], classes: list[str]):
    """The rows of ``path`` as a training Dataset; refuses missing columns and unknown classes, saying the fix."""
    from bento.train import Dataset

    if not path.is_file():
        raise UsageError(f"--data {path}: no such file")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in [*feature_names, LABEL_COLUMN] if c not in columns]
        if missing:
            raise UsageError(
                f"--data {path} lacks the column(s) {', '.join(missing)}: the header needs every feature of the "
                f"model ({', '.join(feature_names)}) and a {LABEL_COLUMN!r} column of class names"
            )
        x, y = [], []
        for line, row in enumerate(reader, start=2):
            label = row[LABEL_COLUMN]
            if label not in classes:
                raise UsageError(f"--data {path} line {line}: class {label!r} is not one of {', '.join(classes)}")
            try:
                x.append([float(row[f]) for f in feature_names])
            except ValueError as exc:
                raise UsageError(f"--data {path} line {line}: {exc}: every feature must be a number") from None
            y.append(classes.index(label))
    counts = np.bincount(np.asarray(y, dtype=int), minlength=len(classes))
    if counts.min() < 2:
        shown = dict(zip(classes, counts.tolist(), strict=True))
        raise UsageError(f"--data {path}: every class needs at least 2 rows (stratified hold-out), got {shown}")
    return Dataset(np.asarray(x), np.asarray(y), feature_names, classes, str(path))


def parent_model(name: str) -> str | None:
    """The newest version of the model in the store: what this retrain descends from."""
    import bentoml

    models = [m for m in bentoml.models.list() if m.tag.name == name]
    return str(max(models, key=lambda m: m.info.creation_time).tag) if models else None


def retrain(data_file: Path | None, seed: int, build=None, force: bool = False, warn=None) -> RetrainResult:
    """Train a new model version on ``data_file`` (default: the built-in set), check it against its parent
    (modelops/parent_check.py), record its lineage, store it and build its bento. A model worse than its parent
    raises RetrainRefusedError before anything is stored, unless ``force`` (then ``warn`` is told why, loudly)."""
    from bento import train
    from modelops import bentos

    reference = train.wine()
    if data_file is None:
        data = reference
        data_hash = hashlib.sha256(reference.x.tobytes() + reference.y.tobytes()).hexdigest()
    else:
        data = read_csv(data_file, reference.feature_names, reference.classes)
        data_hash = file_sha256(data_file)
    parent = parent_model(train.MODEL_NAME)
    lineage = {
        "data_sha256": data_hash,
        "data_source": data.source,
        "rows": len(data.y),
        "parent": parent,
        "seed": seed,
        "trained_at": time.time(),
    }
    trained = train.train(seed=seed, data=data)
    checked = parent_check.check(trained[0], trained[1], parent)
    if checked is not None and checked.flagged:
        said = f"the new model is worse than its parent {parent}: " + "; ".join(checked.findings)
        if not force:
            raise RetrainRefusedError(
                f"{said}. Nothing was stored or built. Check the data's labels (shuffled or misaligned?); if the "
                "drop is intended, run again with --force"
            )
        if warn is not None:
            warn(f"{said} (stored and built anyway: --force)")
        lineage["forced_past"] = checked.findings
    result = train.save(seed=seed, data=data, lineage=lineage, trained=trained)
    bento = (build or bentos.build)()
    return RetrainResult(model=result.tag, bento=bento, lineage={**lineage, "metrics": result.metrics},
                         parent_check=checked)  # fmt: skip


def lineage_of(bento: str) -> dict | None:
    """The model version a bento serves and its lineage (None when the bento or its model is not in the store)."""
    import bentoml

    from modelops.bentos import describe
    from modelops.errors import BentoNotFoundError

    try:
        models = describe(bento).models
    except BentoNotFoundError:
        return None
    for tag in models:
        try:
            metadata = bentoml.models.get(tag).info.metadata
        except bentoml.exceptions.NotFound:
            continue
        # retrain() writes "lineage" as a dict (models trained before it have none); bentoml types metadata loosely.
        lineage = cast("dict[str, Any] | None", metadata.get("lineage"))
        return {"model": tag, **(lineage or {})}
    return None
