"""Train the reference classifier and save it to the BentoML model store.

The data ships inside scikit-learn (the UCI wine recognition set), so training needs no download. Everything the
rest of the pipeline needs to know about the model travels in the model's metadata: feature names, class labels,
held-out metrics, per-feature reference statistics of the training data (for drift detection), the labelled
held-out set itself (``holdout``: rows and their TRUE labels, so the gate can judge the served model's answers before
any production traffic exists) and a small "golden" subset of it (true labels, and the model's own answers) that
the smoke suite sends to every deployed copy.

Why the held-out set lives in the metadata and not in a file of the model's directory: the metadata travels with
the model into every bento, export and store without code of ours (``bentoml.sklearn.save_model`` offers no hook to
add a file, and writing into a saved model's directory afterwards edits the store behind BentoML's back), and the
gate already reads it without loading the model (modelops/bentos.py). Its cost is size: the set is capped at
HOLDOUT_MAX_ROWS rows (a stratified sample when the split is larger), which keeps model.yaml small.

    python -m bento.train --seed 1          # prints the model tag
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split

from bento.contract import probe_input_dtype

MODEL_NAME = "wine_classifier"
GOLDEN_ROWS = 16  # sent in one request by the smoke suite: enough rows to tell a model that answers wrongly
# Held-out rows kept in the metadata. Measured (busy machine): model.yaml grows by 8 KiB and PyYAML (pure Python, as
# BentoML reads it) parses it in 0.04 s for the wine set's 45 rows; 500 wine rows are 90 KiB and 0.42 s per read.
HOLDOUT_MAX_ROWS = 500
HISTOGRAM_BINS = 10


@dataclass(frozen=True)
class TrainResult:
    tag: str
    metrics: dict[str, float]


def reference_statistics(x: np.ndarray, feature_names: list[str]) -> dict[str, dict]:
    """Per-feature summary of the training data: the baseline that drift detection compares live inputs to."""
    stats = {}
    for i, name in enumerate(feature_names):
        column = x[:, i]
        edges = np.quantile(column, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1))
        counts, _ = np.histogram(column, bins=np.unique(edges))
        stats[name] = {
            "mean": float(column.mean()),
            "std": float(column.std(ddof=1)),
            "min": float(column.min()),
            "max": float(column.max()),
            "quantiles": {str(q): float(np.quantile(column, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
            "histogram": {"edges": [float(e) for e in np.unique(edges)], "counts": [int(c) for c in counts]},
            # A sample of raw values lets a two-sample test (KS) run later without keeping the whole set.
            "sample": [float(v) for v in column[:200]],
        }
    return stats


@dataclass(frozen=True)
class Dataset:
    """Rows to train on: features, class indices into ``classes``, and where they came from."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    classes: list[str]
    source: str


def wine() -> Dataset:
    data = load_wine()
    return Dataset(data.data, data.target, [str(n) for n in data.feature_names],
                   [str(c) for c in data.target_names], "sklearn.datasets.load_wine")  # fmt: skip


def train(
    seed: int = 1, n_estimators: int = 100, test_size: float = 0.25, data: Dataset | None = None
) -> tuple[object, dict]:
    """Fit the classifier and return (model, metadata). Deterministic for a given seed and data set."""
    data = data or wine()
    feature_names, classes = data.feature_names, data.classes
    x_train, x_test, y_train, y_test = train_test_split(
        data.x, data.y, test_size=test_size, random_state=seed, stratify=data.y
    )
    # n_jobs=1: a replica's CPU budget is its workers; a thread pool per predict call would fight the batcher.
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    model.fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    predicted = proba.argmax(axis=1)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "log_loss": float(log_loss(y_test, proba, labels=list(range(len(classes))))),
        "train_rows": len(x_train),
        "test_rows": len(x_test),
    }
    # The input contract is the model's: the service refuses values the model cannot compute with (a forest casts to
    # float32, so a finite 1e39 would become inf inside predict and fail the whole batch it is in).
    dtype, bound = probe_input_dtype(model.predict_proba, len(feature_names))
    kept_x, kept_y = kept_holdout(x_test, y_test, seed)
    kept_right = int((predicted_of(model, kept_x) == kept_y).sum())
    golden_x, golden_y = kept_x[:GOLDEN_ROWS], kept_y[:GOLDEN_ROWS]
    golden_proba = model.predict_proba(golden_x)
    metadata = {
        "feature_names": feature_names,
        "classes": classes,
        "input_contract": {"dtype": dtype, "max_abs": bound},
        "metrics": metrics,
        "seed": seed,
        "dataset": data.source,
        "reference_stats": reference_statistics(x_train, feature_names),
        # The TRUE labels of rows the model never saw: what the gate scores served answers against.
        "holdout": {
            "rows": kept_x.tolist(),
            "labels": [classes[int(i)] for i in kept_y],
            "right": kept_right,  # rows the model answered correctly at training: a served copy must match it
            "of_rows": len(x_test),  # the whole held-out split (the metrics' rows); more than kept when capped
        },
        # Golden labels are the truth too (not the model's own answers): a model that answers wrongly fails smoke.
        # "predicted" and "probabilities" are the model's own answers, for checks that the served copy is this model.
        "golden": {
            "rows": golden_x.tolist(),
            "labels": [classes[int(i)] for i in golden_y],
            "predicted": [classes[i] for i in golden_proba.argmax(axis=1)],
            "probabilities": golden_proba.tolist(),
        },
    }
    return model, metadata


def predicted_of(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(x)).argmax(axis=1)


def kept_holdout(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows kept with the model: all of them, or a stratified sample of HOLDOUT_MAX_ROWS."""
    if len(y) <= HOLDOUT_MAX_ROWS:
        return x, y
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    _, kept_x, _, kept_y = train_test_split(x, y, test_size=HOLDOUT_MAX_ROWS, random_state=seed, stratify=stratify)
    return kept_x, kept_y


def save(
    seed: int = 1,
    name: str = MODEL_NAME,
    data: Dataset | None = None,
    lineage: dict | None = None,
    trained: tuple[object, dict] | None = None,
) -> TrainResult:
    """Train and store the model; ``lineage`` (data hash, parent model, …) travels in its metadata. ``trained``: a
    (model, metadata) pair :func:`train` already made (checked before it is stored), instead of training again."""
    import bentoml  # imported late: training itself does not need the model store

    model, metadata = trained or train(seed=seed, data=data)
    if lineage is not None:
        metadata["lineage"] = {**lineage, "metrics": metadata["metrics"]}
    saved = bentoml.sklearn.save_model(
        name,
        model,
        metadata=metadata,
        labels={"dataset": "wine", "seed": str(seed)},
        signatures={"predict_proba": {"batchable": True, "batch_dim": 0}},
    )
    return TrainResult(tag=str(saved.tag), metrics=metadata["metrics"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1); same seed, same model")
    parser.add_argument("--name", default=MODEL_NAME, help=f"model name in the store (default: {MODEL_NAME})")
    args = parser.parse_args(argv)
    result = save(seed=args.seed, name=args.name)
    print(result.tag)
    print(", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
