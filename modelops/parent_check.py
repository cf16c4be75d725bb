"""Before a retrained model is stored: is it worse than the version it descends from? (`modelops retrain`)

Two checks, each on held-out rows with the data's labels:

- **on the parent's held-out set** (rows the parent never saw, labels the parent was promoted on), the new model and
  the parent answer the same rows: McNemar (modelops/gate/quality_tests.py). A model trained on relabelled or
  shuffled data is confidently worse here, even when its own held-out labels are as wrong as its training labels
  (then its own metric looks like noise, not like a drop);
- **the recorded held-out accuracies** (each model's own held-out split: different rows): worse by more than the
  margin *and* Fisher's exact test (one-sided) confident that the new model's accuracy is lower — two small
  held-out sets differ by a row or two by chance, and that must not block a retrain.

Either one flags the retrain. ``modelops retrain`` then refuses to store the model or build a bento (exit 17, as the
gate's quality rejection) unless ``--force``: a collapse like "accuracy 0.378, parent 0.978" almost always means a
broken data pipeline, and a stored model becomes the store's ``latest`` — the one the next ``modelops build`` packs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from scipy import stats

from modelops.gate import quality_tests

DEFAULT_MARGIN = 0.03  # as the gate's quality margin (modelops:gate.quality_max_accuracy_drop)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ParentCheck:
    parent: str
    flagged: bool
    findings: list[str] = field(default_factory=list)  # what was compared, with the figures (flagged ones first)


def recorded_drop(new: dict, parent: dict, margin: float, confidence: float = CONFIDENCE) -> tuple[bool, str] | None:
    """Each model's recorded held-out accuracy ({"accuracy", "test_rows"}), compared as two independent samples."""
    try:
        acc_new, n_new = float(new["accuracy"]), int(new["test_rows"])
        acc_old, n_old = float(parent["accuracy"]), int(parent["test_rows"])
    except (KeyError, TypeError, ValueError):
        return None
    right_new, right_old = round(acc_new * n_new), round(acc_old * n_old)
    table = [[right_new, n_new - right_new], [right_old, n_old - right_old]]
    p_value = float(stats.fisher_exact(table, alternative="less").pvalue)
    flagged = acc_new < acc_old - margin and p_value < 1 - confidence
    said = (
        f"held-out accuracy {acc_new:.3f} on {n_new} rows vs the parent's {acc_old:.3f} on {n_old} "
        f"(Fisher one-sided p {p_value:.2g}, margin {margin:.0%})"
    )
    return flagged, said


def on_parent_rows(
    new_model, parent_model, holdout: dict, classes: list[str], margin: float, confidence: float = CONFIDENCE
) -> tuple[bool, str]:
    """Both models on the parent's held-out rows (metadata["holdout"]: rows and true labels)."""
    rows = np.asarray(holdout["rows"], dtype=float)
    truth = [str(label) for label in holdout["labels"]]
    new = [classes[i] for i in np.asarray(new_model.predict_proba(rows)).argmax(axis=1)]
    old = [classes[i] for i in np.asarray(parent_model.predict_proba(rows)).argmax(axis=1)]
    outcome = quality_tests.paired_classification(
        [a == t for a, t in zip(new, truth, strict=True)], [a == t for a, t in zip(old, truth, strict=True)],
        margin, confidence,
    )  # fmt: skip
    return outcome.status == "fail", f"on the parent's {len(truth)} held-out rows: {outcome.reason}"


def check(new_model, new_metadata: dict, parent: str | None, margin: float = DEFAULT_MARGIN) -> ParentCheck | None:
    """Compare a freshly trained model (not stored yet) with ``parent`` from the store (None: nothing to compare)."""
    if parent is None:
        return None
    import bentoml

    try:
        stored = bentoml.models.get(parent)
    except bentoml.exceptions.NotFound:
        return None
    metadata = cast("dict[str, Any]", dict(stored.info.metadata))  # bentoml types metadata loosely
    findings: list[tuple[bool, str]] = []
    recorded = recorded_drop(new_metadata.get("metrics", {}), metadata.get("metrics") or {}, margin)
    if recorded is not None:
        findings.append(recorded)
    holdout = metadata.get("holdout")
    same_features = metadata.get("feature_names") == new_metadata.get("feature_names")
    if isinstance(holdout, dict) and holdout.get("rows") and same_features:
        parent_model = bentoml.sklearn.load_model(stored)
        findings.append(on_parent_rows(new_model, parent_model, holdout, list(new_metadata["classes"]), margin))
    findings.sort(key=lambda f: not f[0])
    return ParentCheck(parent=parent, flagged=any(f for f, _ in findings), findings=[text for _, text in findings])
