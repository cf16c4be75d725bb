"""The acceleration step: a compiled model is kept only when proven equivalent and faster; otherwise the original."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from bento.served import CLASSIFICATION, FLAT_FOREST, ONNXRUNTIME, ORIGINAL, REGRESSION
from modelops.acceleration import CLASS_TOLERANCE, Candidate, check_rows, choose, decide, prove


def test_forest_candidates_are_proven_on_the_check_rows_and_one_is_chosen() -> None:
    x, y = load_wine(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=20, random_state=1, n_jobs=1).fit(x, y)
    decision = decide(forest, CLASSIFICATION, x.shape[1], check_rows(x), 3)
    by_name = {c.name: c for c in decision.candidates}
    assert set(by_name) == {ORIGINAL, FLAT_FOREST, ONNXRUNTIME}
    assert by_name[FLAT_FOREST].max_difference <= 1e-12, "the flat forest is bit-exact"
    assert by_name[ONNXRUNTIME].labels_identical and by_name[ONNXRUNTIME].max_difference <= CLASS_TOLERANCE
    assert [c.status for c in decision.candidates].count("chosen") == 1
    assert decision.record()["chosen"] == decision.chosen
    assert (decision.onnx_bytes is not None) == (decision.chosen == ONNXRUNTIME)


def test_a_model_the_converter_cannot_take_keeps_the_original() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    # skl2onnx has no converter for an arbitrary Python function.
    model = make_pipeline(FunctionTransformer(np.log1p), DecisionTreeClassifier(random_state=0)).fit(x, y)
    decision = decide(model, CLASSIFICATION, x.shape[1], check_rows(x), 2)
    onnx = next(c for c in decision.candidates if c.name == ONNXRUNTIME)
    assert onnx.status == "failed" and onnx.reason
    assert decision.chosen == ORIGINAL and decision.onnx_bytes is None


def test_regressor_values_are_compared_relative_to_their_size() -> None:
    x = np.random.default_rng(0).normal(size=(300, 4))
    y = 1000 * x[:, 0] + x[:, 1]
    model = HistGradientBoostingRegressor(random_state=0).fit(x, y)
    decision = decide(model, REGRESSION, 4, check_rows(x), 0)
    onnx = next(c for c in decision.candidates if c.name == ONNXRUNTIME)
    assert onnx.status in ("chosen", "slower"), onnx.reason


def test_proof_fails_on_a_flipped_label_and_on_probabilities_beyond_the_tolerance() -> None:
    original = np.array([[0.6, 0.4], [0.2, 0.8]])
    assert prove(original, original + 1e-7, CLASSIFICATION)[0]
    flipped = np.array([[0.4, 0.6], [0.2, 0.8]])
    ok, _, identical, reason = prove(original, flipped, CLASSIFICATION)
    assert not ok and identical is False and "1 predicted labels differ" in reason
    ok, _, identical, reason = prove(original, original + np.array([[1e-3, -1e-3], [0, 0]]), CLASSIFICATION)
    assert not ok and identical and "probabilities differ" in reason
    assert not prove(np.array([100.0]), np.array([100.1]), REGRESSION)[0]
    assert prove(np.array([1e6, 0.5]), np.array([1e6 + 1, 0.5 + 1]), REGRESSION)[0]  # 1 in 1e6 of the scale


def test_a_slower_candidate_is_not_chosen_and_a_faster_one_is() -> None:
    slow = [
        Candidate(ORIGINAL, "proven", ms_per_call={"1": 1.0}),
        Candidate(ONNXRUNTIME, "proven", ms_per_call={"1": 2.0}),
    ]
    assert choose(slow).name == ORIGINAL and slow[1].status == "slower"
    fast = [
        Candidate(ORIGINAL, "proven", ms_per_call={"1": 2.0}),
        Candidate(ONNXRUNTIME, "proven", ms_per_call={"1": 1.0}),
    ]
    assert choose(fast).name == ONNXRUNTIME and fast[0].status == "slower"
    unproven = [Candidate(ORIGINAL, "proven", ms_per_call={"1": 2.0}), Candidate(ONNXRUNTIME, "not_equivalent")]
    assert choose(unproven).name == ORIGINAL
