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


def test_golden_labels_are_the_truth_and_the_models_own_answers_are_kept_beside_them() -> None:
    from sklearn.model_selection import train_test_split

    model, meta = train.train(seed=2)
    data = train.wine()
    _, x_test, _, y_test = train_test_split(data.x, data.y, test_size=0.25, random_state=2, stratify=data.y)
    golden = meta["golden"]
    assert np.array_equal(np.asarray(golden["rows"]), x_test[: train.GOLDEN_ROWS])
    assert golden["labels"] == [meta["classes"][i] for i in y_test[: train.GOLDEN_ROWS]], "the data's labels"
    predicted = model.predict_proba(np.asarray(golden["rows"])).argmax(axis=1)
    assert golden["predicted"] == [meta["classes"][i] for i in predicted]


def test_the_labelled_holdout_set_travels_with_the_model_and_records_how_often_it_was_right() -> None:
    model, meta = train.train(seed=1)
    holdout = meta["holdout"]
    assert len(holdout["rows"]) == len(holdout["labels"]) == holdout["of_rows"] == meta["metrics"]["test_rows"]
    predicted = [meta["classes"][i] for i in model.predict_proba(np.asarray(holdout["rows"])).argmax(axis=1)]
    assert holdout["right"] == sum(p == t for p, t in zip(predicted, holdout["labels"], strict=True))
    assert holdout["right"] / len(holdout["rows"]) == meta["metrics"]["accuracy"]


def test_a_large_holdout_split_is_kept_as_a_stratified_sample_of_the_cap() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [1200, 600, 200])
    x = rng.normal(size=(len(y), 3)) + y[:, None]
    kept_x, kept_y = train.kept_holdout(x, y, seed=1)
    assert len(kept_y) == train.HOLDOUT_MAX_ROWS and kept_x.shape == (train.HOLDOUT_MAX_ROWS, 3)
    assert np.bincount(kept_y).tolist() == [300, 150, 50], "each class in its share"
    _, small_y = train.kept_holdout(x[:50], y[:50], seed=1)
    assert len(small_y) == 50, "a split under the cap is kept whole"


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
