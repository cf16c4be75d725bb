"""Benchmark-only trainer: a HistGradientBoosting classifier on the reference wine data, saved as `wine_hgb`.

`modelops bench` serves it (bento/bench_omp_service.py) to show what native thread pools do under a CPU budget:
HistGradientBoosting predicts in OpenMP threads, one per visible core unless OMP_NUM_THREADS says otherwise.

    python -m bento.train_hgb            # prints the model tag
"""

from __future__ import annotations

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from bento.train import GOLDEN_ROWS, TrainResult, wine

MODEL_NAME = "wine_hgb"


def save(seed: int = 1, name: str = MODEL_NAME) -> TrainResult:
    import bentoml  # imported late: training itself does not need the model store

    data = wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.x, data.y, test_size=0.25, random_state=seed, stratify=data.y
    )
    model = HistGradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
    golden = x_test[:GOLDEN_ROWS]
    metrics = {"accuracy": float(model.score(x_test, y_test))}
    metadata = {
        "feature_names": data.feature_names,
        "classes": data.classes,
        "metrics": metrics,
        "seed": seed,
        "dataset": data.source,
        # Example rows for the API schema (Locust builds its payloads from it) and the served-label check.
        "golden": {
            "rows": golden.tolist(),
            "labels": [data.classes[i] for i in model.predict(golden)],
            "probabilities": model.predict_proba(golden).tolist(),
        },
    }
    saved = bentoml.sklearn.save_model(name, model, metadata=metadata, labels={"dataset": "wine", "purpose": "bench"})
    return TrainResult(tag=str(saved.tag), metrics=metrics)


if __name__ == "__main__":
    print(save().tag)
