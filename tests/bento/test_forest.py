"""The flattened forest (bento/forest.py) answers exactly what scikit-learn's RandomForestClassifier.predict_proba does:
on the reference model's golden rows, on random rows inside and far outside the training range, at any batch size."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from bento import train
from bento.forest import FLAT_MAX_ROWS, FlatForest, fast_predict_proba

TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def reference() -> tuple[RandomForestClassifier, dict]:
    model, metadata = train.train(seed=1)
    assert isinstance(model, RandomForestClassifier)
    return model, metadata


def test_golden_rows_give_sklearns_probabilities(reference: tuple[RandomForestClassifier, dict]) -> None:
    model, metadata = reference
    rows = np.asarray(metadata["golden"]["rows"])
    got = FlatForest(model).predict_proba(rows)
    np.testing.assert_allclose(got, model.predict_proba(rows), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got, np.asarray(metadata["golden"]["probabilities"]), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("n_rows", [1, 7, 256, 2000])
def test_random_rows_give_sklearns_probabilities(reference: tuple[RandomForestClassifier, dict], n_rows: int) -> None:
    model, metadata = reference
    rng = np.random.default_rng(n_rows)
    stats = metadata["reference_stats"]
    low = np.array([stats[name]["min"] for name in metadata["feature_names"]])
    high = np.array([stats[name]["max"] for name in metadata["feature_names"]])
    span = high - low
    rows = rng.uniform(low - span, high + span, size=(n_rows, len(low)))  # inside and well outside training range
    np.testing.assert_allclose(FlatForest(model).predict_proba(rows), model.predict_proba(rows), rtol=0, atol=TOLERANCE)


def test_rows_on_a_split_threshold_go_the_way_sklearn_sends_them(
    reference: tuple[RandomForestClassifier, dict],
) -> None:
    model, metadata = reference
    tree = model.estimators_[0].tree_
    split = int(np.flatnonzero(tree.children_left != -1)[0])
    rows = np.tile(np.asarray(metadata["golden"]["rows"][:1]), (3, 1))
    threshold = tree.threshold[split]
    rows[:, tree.feature[split]] = [threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, -np.inf)]
    np.testing.assert_allclose(FlatForest(model).predict_proba(rows), model.predict_proba(rows), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1e39] * 13], "infinity"),  # finite in float64, inf in the float32 the forest computes in
        ([[float("nan")] * 13], "NaN"),
        ([[1.0] * 12], "expects"),
    ],
)
def test_rows_the_forest_cannot_take_raise_value_error(
    reference: tuple[RandomForestClassifier, dict], rows: list, message: str
) -> None:
    model, _ = reference
    with pytest.raises(ValueError, match=message):
        FlatForest(model).predict_proba(np.asarray(rows))


def test_a_multi_output_forest_keeps_sklearns_predict_proba() -> None:
    x = np.arange(20.0).reshape(10, 2)
    two_outputs = np.stack([np.arange(10) % 2, np.arange(10) % 3], axis=1)
    multi = RandomForestClassifier(n_estimators=2, random_state=0).fit(x, two_outputs)
    assert fast_predict_proba(multi) == multi.predict_proba


@pytest.mark.parametrize("n_rows", [1, FLAT_MAX_ROWS, FLAT_MAX_ROWS + 1, 1500])
def test_the_served_predict_proba_equals_sklearns_on_both_sides_of_the_flat_limit(
    reference: tuple[RandomForestClassifier, dict], n_rows: int
) -> None:
    model, metadata = reference
    rows = np.resize(np.asarray(metadata["golden"]["rows"]), (n_rows, len(metadata["feature_names"])))
    served = fast_predict_proba(model)
    assert served != model.predict_proba
    np.testing.assert_allclose(served(rows), model.predict_proba(rows), rtol=0, atol=TOLERANCE)
