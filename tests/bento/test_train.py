"""Training: deterministic, evaluated on held-out data, metadata complete for serving and drift detection."""

from __future__ import annotations

import numpy as np

from bento import train


def test_same_seed_gives_the_same_model_and_metrics() -> None:
    (model_a, meta_a), (model_b, meta_b) = train.train(seed=3), train.train(seed=3)
    rows = np.asarray(meta_a["golden"]["rows"])
    assert meta_a["metrics"] == meta_b["metrics"]
    assert np.array_equal(model_a.predict_proba(rows), model_b.predict_proba(rows))


def test_metadata_carries_features_classes_metrics_reference_stats_and_golden_rows() -> None:
    _, meta = train.train(seed=1)
    assert len(meta["feature_names"]) == 13
    assert meta["classes"] == ["class_0", "class_1", "class_2"]
    assert 0.8 <= meta["metrics"]["accuracy"] <= 1.0, "held-out accuracy of a forest on wine"
    assert meta["metrics"]["test_rows"] > 0
    assert set(meta["reference_stats"]) == set(meta["feature_names"])
    alcohol = meta["reference_stats"]["alcohol"]
    assert alcohol["min"] <= alcohol["quantiles"]["0.5"] <= alcohol["max"]
    assert sum(alcohol["histogram"]["counts"]) == meta["metrics"]["train_rows"]
    assert len(meta["golden"]["rows"]) == len(meta["golden"]["labels"]) == train.GOLDEN_ROWS


def test_golden_labels_are_the_models_own_predictions() -> None:
    model, meta = train.train(seed=2)
    predicted = model.predict_proba(np.asarray(meta["golden"]["rows"])).argmax(axis=1)
    assert [meta["classes"][i] for i in predicted] == meta["golden"]["labels"]


def test_the_input_contract_is_the_dtype_the_model_computes_in() -> None:
    _, meta = train.train(seed=1)
    assert meta["input_contract"] == {"dtype": "float32", "max_abs": float(np.finfo(np.float32).max)}, (
        "a random forest casts its input to float32: larger finite values would raise inside predict"
    )


def test_the_contract_is_probed_from_the_model_not_assumed() -> None:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import HistGradientBoostingClassifier

    from bento.contract import probe_input_dtype

    data = load_wine()
    model = HistGradientBoostingClassifier(max_iter=5).fit(data.data, data.target)
    assert probe_input_dtype(model.predict_proba, data.data.shape[1])[0] == "float64", "HGB bins float64 input"
