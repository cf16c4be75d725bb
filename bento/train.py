"""Train the reference classifier and save it to the BentoML model store.

The data ships inside scikit-learn (the UCI wine recognition set), so training needs no download. Everything the
rest of the pipeline needs to know about the model travels in the model's metadata: feature names, class labels,
held-out metrics, per-feature reference statistics of the training data (for drift detection) and a small
"golden" set of rows with the model's own predictions (so a deployed copy can be checked against it).

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
GOLDEN_ROWS = 8
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
    golden_x = x_test[:GOLDEN_ROWS]
    golden_proba = model.predict_proba(golden_x)
    metadata = {
        "feature_names": feature_names,
        "classes": classes,
        "input_contract": {"dtype": dtype, "max_abs": bound},
        "metrics": metrics,
        "seed": seed,
        "dataset": data.source,
        "reference_stats": reference_statistics(x_train, feature_names),
        "golden": {
            "rows": golden_x.tolist(),
            "labels": [classes[i] for i in golden_proba.argmax(axis=1)],
            "probabilities": golden_proba.tolist(),
        },
    }
    return model, metadata


def save(
    seed: int = 1, name: str = MODEL_NAME, data: Dataset | None = None, lineage: dict | None = None
) -> TrainResult:
    """Train and store the model; ``lineage`` (data hash, parent model, …) travels in its metadata."""
    import bentoml  # imported late: training itself does not need the model store

    model, metadata = train(seed=seed, data=data)
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
