"""`modelops build --model`: a user's saved model served by the template — classification and regression, three
frameworks' worth of models, a real replica each: its predictions are the model's own, its contract is enforced,
its production requests are logged; models the template cannot serve are refused with what is missing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import bentoml
import httpx
import lightgbm
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bento.prediction_log import read_window
from bento.served import CLASSIFICATION, REGRESSION
from modelops import modelbuild
from modelops.acceleration import CLASS_TOLERANCE, REGRESSION_RTOL
from modelops.errors import BentoNotFoundError, UsageError
from modelops.waiting import wait_until


def write_csv(path: Path, names: list[str], x: np.ndarray, y: np.ndarray | None = None) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names + (["label"] if y is not None else []))
        for i, row in enumerate(x):
            writer.writerow([*row.tolist(), *([str(y[i])] if y is not None else [])])
    return path


def saved(name: str, data, fit, save=bentoml.sklearn.save_model, tmp: Path | None = None, label=True):
    """(tag, held-out rows, reference CSV): ``fit`` trained on a split of ``data``, saved, its test rows written."""
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, random_state=0)
    model = fit(x_train, y_train)
    tag = str(save(name, model).tag)
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    reference = write_csv(tmp / f"{name}.csv", names, x_test, y_test if label else None) if tmp else None
    return tag, x_test, reference, model


MODELS = {
    # name: (data, fit, save function, task)
    "cancer_gb": (load_breast_cancer, lambda x, y: GradientBoostingClassifier(random_state=0).fit(x, y),
                  bentoml.sklearn.save_model, CLASSIFICATION),
    "iris_lgbm": (load_iris, lambda x, y: lightgbm.LGBMClassifier(n_estimators=30, verbose=-1).fit(x, y),
                  bentoml.lightgbm.save_model, CLASSIFICATION),
    "diabetes_hgb": (load_diabetes, lambda x, y: HistGradientBoostingRegressor(random_state=0).fit(x, y),
                     bentoml.sklearn.save_model, REGRESSION),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MODELS))
def test_saved_model_is_served_by_the_template_with_contract_and_log(name, tmp_path, make_target) -> None:
    load, fit, save, task = MODELS[name]
    tag, x_test, reference, model = saved(name, load(), fit, save, tmp_path)
    built = modelbuild.build_model(tag, reference=reference, record=False)
    assert built.bento.startswith(f"{name}_service:"), built.bento
    assert built.metadata["task"] == task
    labels = bentoml.bentos.get(built.bento).info.labels
    assert labels["modelops.accelerator"] == built.metadata["acceleration"]["chosen"], labels
    target = make_target()
    url = target.up(built.bento, replicas=1, workers=1).replicas[0].url
    rows = x_test[:40]
    response = httpx.post(f"{url}/predict", json={"rows": rows.tolist()}, headers={"x-request-id": "r1"}, timeout=30)
    assert response.status_code == 200, response.text
    served = response.json()
    if task == CLASSIFICATION:
        own = model.predict_proba(rows)
        classes = built.metadata["classes"]
        assert [p["label"] for p in served] == [classes[i] for i in own.argmax(axis=1)]
        got = np.asarray([[p["probabilities"][c] for c in classes] for p in served])
        assert np.abs(got - own).max() <= CLASS_TOLERANCE
    else:
        own = model.predict(rows)
        got = np.asarray([p["value"] for p in served])
        assert np.abs(got - own).max() / max(1.0, np.abs(own).max()) <= REGRESSION_RTOL
    # The contract: values beyond what the served model computes in (float32 for trees and compiled models) get a
    # 422 naming the feature; a model that computes in float64 takes every finite JSON number.
    bound = built.metadata["input_contract"]["max_abs"]
    huge = rows[:1].copy()
    huge[0, 0] = bound * 10 if bound < 1e300 else 1e300
    answer = httpx.post(f"{url}/predict", json={"rows": huge.tolist()}, timeout=30)
    if bound < 1e300:
        assert answer.status_code == 422 and "outside the range" in answer.json()["error"], answer.text
    else:
        assert answer.status_code == 200, answer.text
    assert httpx.post(f"{url}/predict", json={"rows": [[1.0, 2.0]]}, timeout=30).status_code == 400
    # The production request is in the prediction log, under the model that answered it.
    assert wait_until(lambda: read_window(target.prediction_log_dir).rows, timeout=10, interval=0.2)
    logged = read_window(target.prediction_log_dir).rows
    assert {r.request_id for r in logged} == {"r1"} and len(logged) == len(rows)
    assert {r.model_version for r in logged} == {built.model}


def test_model_without_predict_is_refused_naming_it() -> None:
    tag = str(bentoml.sklearn.save_model("scaler", StandardScaler().fit([[0.0], [1.0]])).tag)
    with pytest.raises(modelbuild.ModelRefusedError, match="no predict method"):
        modelbuild.build_model(tag, record=False)


def test_model_of_another_framework_is_refused_naming_the_ones_served() -> None:
    tag = str(bentoml.picklable_model.save_model("pickled", {"not": "a model"}).tag)
    with pytest.raises(modelbuild.ModelRefusedError, match=r"bentoml\.sklearn, bentoml\.xgboost, bentoml\.lightgbm"):
        modelbuild.build_model(tag, record=False)


def test_classifier_without_probabilities_is_refused_naming_the_fix() -> None:
    data = load_iris()
    tag = str(bentoml.sklearn.save_model("iris_svc", SVC().fit(data.data, data.target)).tag)
    with pytest.raises(modelbuild.ModelRefusedError, match=r"no predict_proba.*probability=True"):
        modelbuild.build_model(tag, record=False)


def test_reference_without_the_model_features_is_refused_naming_them(tmp_path) -> None:
    data = load_iris()
    model = GradientBoostingClassifier(n_estimators=5).fit(data.data, data.target)
    tag = str(bentoml.sklearn.save_model("iris_gb", model, metadata={"feature_names": ["a", "b", "c", "d"]}).tag)
    reference = write_csv(tmp_path / "ref.csv", ["a", "b", "c", "e"], data.data)
    with pytest.raises(modelbuild.ModelRefusedError, match="lacks the feature column"):
        modelbuild.build_model(tag, reference=reference, record=False)
    ok = write_csv(tmp_path / "ok.csv", ["a", "b", "c", "d"], data.data)
    assert modelbuild.build_model(tag, reference=ok, record=False, accelerate=False).metadata["feature_names"] == [
        "a", "b", "c", "d"
    ]  # fmt: skip


def _save_in(store: Path, name: str) -> str:
    code = (
        "import bentoml; from sklearn.datasets import load_iris; from sklearn.tree import DecisionTreeClassifier;"
        "d = load_iris(); model = DecisionTreeClassifier().fit(d.data, d.target);"
        f"print(bentoml.sklearn.save_model({name!r}, model).tag)"
    )
    env = {**os.environ, "BENTOML_HOME": str(store)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_model_in_another_store_is_named_in_the_error_and_imported_on_request(tmp_path) -> None:
    store = tmp_path / "bentoml"
    tag = _save_in(store, "elsewhere")
    with pytest.raises(BentoNotFoundError, match=rf"--model-store {store}"):
        modelbuild.locate(tag, default_store=store)
    assert str(modelbuild.locate(tag, store=store).tag) == tag  # imported with bentoml's export/import


def test_reference_with_non_numbers_is_refused_with_the_line(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(UsageError, match="line 3"):
        modelbuild.read_reference(bad)


def test_build_records_profile_in_the_model_metadata(tmp_path) -> None:
    data = load_iris()
    fit = lambda x, y: GradientBoostingClassifier(n_estimators=5).fit(x, y)  # noqa: E731
    tag, _, reference, _ = saved("iris_profile", data, fit, tmp=tmp_path)
    modelbuild.build_model(tag, reference=reference, record=False)
    stored = bentoml.models.get(tag)
    metadata = stored.info.metadata
    assert set(metadata["reference_stats"]) == set(metadata["feature_names"])
    assert metadata["reference_file"] == modelbuild.REFERENCE_FILE
    assert (Path(stored.path) / modelbuild.REFERENCE_FILE).read_text() == reference.read_text()
    assert len(metadata["golden"]["rows"]) == modelbuild.GOLDEN_ROWS
    assert json.dumps(metadata["acceleration"])  # recorded, JSON-like


def test_a_labelled_reference_becomes_the_held_out_set_and_the_golden_truth(tmp_path) -> None:
    """The gate's quality suite judges candidates on it, and smoke scores golden answers against its labels."""
    data = load_iris()
    fit = lambda x, y: GradientBoostingClassifier(n_estimators=3, max_depth=1, random_state=0).fit(x, y)  # noqa: E731
    tag, x_test, reference, model = saved("iris_truth", data, fit, tmp=tmp_path)
    metadata = modelbuild.build_model(tag, reference=reference, record=False).metadata
    _, _, _, y_test = train_test_split(data.data, data.target, random_state=0)
    holdout = metadata["holdout"]
    assert holdout["labels"] == [str(y) for y in y_test] and holdout["of_rows"] == len(y_test)
    assert holdout["right"] == int((model.predict(x_test) == y_test).sum()) < len(y_test), "a weak model errs"
    golden = metadata["golden"]
    n = modelbuild.GOLDEN_ROWS
    assert golden["labels"] == [str(y) for y in y_test[:n]], "golden labels are the reference's truth"
    assert golden["predicted"] == [str(p) for p in model.predict(x_test[:n])], "beside the model's own answers"


def test_a_reference_label_that_is_not_a_class_is_refused_naming_it(tmp_path) -> None:
    data = load_iris()
    fit = lambda x, y: GradientBoostingClassifier(n_estimators=2).fit(x, y)  # noqa: E731
    tag, _, reference, _ = saved("iris_badlabel", data, fit, tmp=tmp_path)
    text = reference.read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + ",setosa"
    reference.write_text("\n".join(text) + "\n")
    with pytest.raises(modelbuild.ModelRefusedError, match="'setosa', which are not among the model's classes"):
        modelbuild.build_model(tag, reference=reference, record=False)


def test_the_quality_suite_is_not_required_for_a_regressor_and_is_for_a_classifier(tmp_path) -> None:
    from modelops.gate.run import is_regressor

    regressor, _, reference, _ = saved("diabetes_q", load_diabetes(), MODELS["diabetes_hgb"][1], tmp=tmp_path)
    classifier, _, _, _ = saved("iris_q", load_iris(), MODELS["cancer_gb"][1])
    for tag in (regressor, classifier):
        modelbuild.build_model(tag, reference=reference if tag == regressor else None, profile_only=True)
    assert is_regressor(regressor) and not is_regressor(classifier)
