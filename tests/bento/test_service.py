"""The served API, on real replicas: predictions match the model, bad input gets a 4xx that names the problem."""

from __future__ import annotations

import json

import bentoml
import httpx
import numpy as np
import pytest

from modelops import bentos
from modelops.acceleration import CLASS_TOLERANCE


@pytest.fixture(scope="module")
def urls(live_deployment) -> dict[str, str]:
    status = live_deployment.status()
    return {"lb": status.url, "replica": status.replicas[0].url}


@pytest.fixture(scope="module")
def api(urls) -> dict:
    """What the service declares about its input, read from its own OpenAPI document."""
    schema = httpx.get(urls["replica"] + "/docs.json").json()
    rows = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    rows = rows["properties"]["rows"]
    return {"features": rows["items"]["minItems"], "max_rows": rows["maxItems"], "example": rows["examples"][0]}


def post(url: str, body: bytes | str, content_type: str = "application/json", **kwargs) -> httpx.Response:
    return httpx.post(url + "/predict", content=body, headers={"content-type": content_type}, timeout=30, **kwargs)


def test_openapi_declares_feature_count_and_row_limit(api) -> None:
    assert api["features"] == 13, "the wine data has 13 features"
    assert api["max_rows"] >= 100
    assert all(len(row) == api["features"] for row in api["example"])


def test_prediction_through_haproxy_equals_in_process_prediction(urls, api, reference_bento) -> None:
    info = bentos.describe(reference_bento)
    model = bentoml.sklearn.load_model(info.models[0])
    classes = bentoml.models.get(info.models[0]).info.metadata["classes"]
    rng = np.random.default_rng(7)
    example = np.asarray(api["example"])
    rows = np.vstack([example, example[0] * rng.uniform(0.8, 1.2, size=(20, api["features"]))])
    response = post(urls["lb"], json.dumps({"rows": rows.tolist()}))
    assert response.status_code == 200, response.text
    served = response.json()
    expected = model.predict_proba(rows)
    assert [p["label"] for p in served] == [classes[i] for i in expected.argmax(axis=1)]
    for got, want in zip(served, expected, strict=True):
        # Within the tolerance the build proved for the implementation it chose (ONNX Runtime computes in float32).
        assert [got["probabilities"][c] for c in classes] == pytest.approx(want.tolist(), abs=CLASS_TOLERANCE)


def test_golden_rows_recorded_at_training_are_reproduced(urls, reference_bento) -> None:
    golden = bentos.describe(reference_bento).golden
    response = post(urls["lb"], json.dumps({"rows": golden["rows"]}))
    assert [p["label"] for p in response.json()] == golden["predicted"]


def _row(n: int, first: object = 1.0) -> str:
    """A JSON row of n values; a first value written "!literal" goes in verbatim (NaN, Infinity, 1e400)."""
    literal = first[1:] if isinstance(first, str) and first.startswith("!") else json.dumps(first)
    return "[" + ", ".join([literal] + ["1.0"] * (n - 1)) + "]"


BAD_INPUTS = {
    # name: (body builder taking the API facts, content type, expected status, words the error must contain)
    "malformed json": (lambda a: '{"rows": [[1, 2', "application/json", 400, "Invalid JSON"),
    "too few features": (lambda a: json.dumps({"rows": [[1.0] * (a["features"] - 1)]}), None, 400, "at least"),
    "too many features": (lambda a: json.dumps({"rows": [[1.0] * (a["features"] + 1)]}), None, 400, "at most"),
    "NaN": (lambda a: '{"rows": [' + _row(a["features"], "!NaN") + "]}", None, 400, "finite number"),
    "Infinity": (lambda a: '{"rows": [' + _row(a["features"], "!Infinity") + "]}", None, 400, "finite number"),
    "overflowing number": (lambda a: '{"rows": [' + _row(a["features"], "!1e400") + "]}", None, 400, "finite"),
    "string value": (lambda a: '{"rows": [' + _row(a["features"], "abc") + "]}", None, 400, "valid number"),
    "numeric string": (lambda a: '{"rows": [' + _row(a["features"], "1.5") + "]}", None, 400, "valid number"),
    "boolean value": (lambda a: '{"rows": [' + _row(a["features"], True) + "]}", None, 400, "valid number"),
    "null rows": (lambda a: '{"rows": null}', None, 400, "valid"),
    "empty list": (lambda a: '{"rows": []}', None, 400, "at least 1"),
    "missing rows": (lambda a: "{}", None, 400, "Field required"),
    "empty body": (lambda a: "", None, 400, "rows"),
    "not an object": (lambda a: "[1, 2, 3]", None, 400, "object"),
    "too many rows": (
        lambda a: json.dumps({"rows": [[1.0] * a["features"]] * (a["max_rows"] + 1)}),
        None,
        400,
        "at most",
    ),
    "wrong content type": (lambda a: json.dumps({"rows": [a["example"][0]]}), "text/plain", 415, "content type"),
    "form content type": (lambda a: "rows=1", "application/x-www-form-urlencoded", 415, "content type"),
    # BentoML's own serialisation (pickle: code execution on load) and multipart never reach its parsers.
    "bentoml pickle": (lambda a: "\x80\x04N.", "application/vnd.bentoml+pickle", 415, "content type"),
    "multipart": (
        lambda a: '--b\r\nContent-Disposition: form-data; name="rows"\r\n\r\n[[1]]\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
        415,
        "content type",
    ),
    # Finite in JSON (float64) but beyond float32, the type the forest computes in: the model would raise.
    "beyond float32": (lambda a: '{"rows": [' + _row(a["features"], "!1e39") + "]}", None, 422, "float32"),
    "beyond float32, negative": (lambda a: '{"rows": [' + _row(a["features"], "!-1e300") + "]}", None, 422, "row 0"),
}
BAD_INPUT_CASES = [pytest.param(via, case, id=f"{case} via {via}") for via in ("replica", "lb") for case in BAD_INPUTS]


@pytest.mark.parametrize(("via", "case"), BAD_INPUT_CASES)
def test_bad_input_gets_4xx_naming_the_problem_and_service_keeps_serving(urls, api, via, case) -> None:
    build, content_type, status, words = BAD_INPUTS[case]
    response = post(urls[via], build(api), content_type or "application/json")
    assert response.status_code == status, f"{case} via {urls[via]}: {response.status_code} {response.text[:300]}"
    error = response.json()
    assert isinstance(error, dict) and "error" in error, f"{case}: error is not {{'error': ...}}: {error}"
    assert words.lower() in json.dumps(error).lower(), f"{case}: error does not mention {words!r}: {error}"
    healthy = post(urls[via], json.dumps({"rows": api["example"]}))
    assert healthy.status_code == 200, f"{urls[via]} stopped serving after {case}"


def test_a_value_beyond_the_models_range_is_refused_naming_row_feature_and_bound(urls, api, reference_bento) -> None:
    contract = bentoml.models.get(bentos.describe(reference_bento).models[0]).info.metadata["input_contract"]
    rows = [list(api["example"][0]), list(api["example"][0])]
    rows[1][4] = 3.5e38
    response = post(urls["lb"], json.dumps({"rows": rows}))
    assert response.status_code == 422, response.text
    error = response.json()
    assert "row 1" in error["error"] and "index 4" in error["error"], error
    assert f"{contract['max_abs']:g}" in error["error"], f"the bound recorded at training is not named: {error}"
    assert error["detail"] == [
        {"row": 1, "feature": error["detail"][0]["feature"], "index": 4, "value": 3.5e38, "bound": contract["max_abs"],
         "dtype": "float32"}
    ]  # fmt: skip
    at_bound = [list(api["example"][0])]
    at_bound[0][4] = contract["max_abs"]
    assert post(urls["lb"], json.dumps({"rows": at_bound})).status_code == 200, "the bound itself is accepted"


def oversized(live_deployment) -> bytes:
    limit = live_deployment.settings.limits.max_body_bytes
    return b'{"rows": [' + b" " * (limit + 10) + b"]}"


def test_body_over_the_limit_is_refused_by_haproxy_with_413(urls, live_deployment) -> None:
    response = post(urls["lb"], oversized(live_deployment))
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["error"]


def test_body_over_the_limit_sent_straight_to_a_replica_gets_413(urls, live_deployment) -> None:
    response = post(urls["replica"], oversized(live_deployment))
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["error"]


def test_chunked_body_over_the_limit_without_length_gets_413_from_the_replica(urls, api, live_deployment) -> None:
    body = oversized(live_deployment)

    def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    response = httpx.post(urls["replica"] + "/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert post(urls["replica"], json.dumps({"rows": api["example"]})).status_code == 200


@pytest.mark.parametrize(("path", "needle"), [("/livez", ""), ("/readyz", ""), ("/metrics", "bentoml_service_request")])
def test_health_and_metrics_endpoints_answer(urls, path, needle) -> None:
    response = httpx.get(urls["replica"] + path)
    assert response.status_code == 200, path
    assert needle in response.text


# ------------------------------------------------------------------------------------------------ prediction log
def logged(live_deployment, request_id: str) -> list:
    from bento.prediction_log import read_window

    return [r for r in read_window(live_deployment.prediction_log_dir).rows if r.request_id == request_id]


def test_a_request_is_logged_with_its_id_model_version_rows_and_answer(live_deployment, urls, api) -> None:
    from modelops.waiting import wait_until

    rows = api["example"]
    response = httpx.post(urls["lb"] + "/predict", json={"rows": rows}, headers={"x-request-id": "spec-logged-1"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "spec-logged-1", "the id a client sent comes back"
    assert wait_until(lambda: len(logged(live_deployment, "spec-logged-1")) == len(rows), 10), "the request in the log"
    records = logged(live_deployment, "spec-logged-1")
    assert [r.features for r in records] == rows
    assert [r.prediction for r in records] == [p["label"] for p in response.json()]
    assert all(r.model_version.startswith("wine_classifier:") for r in records)


def test_synthetic_and_refused_requests_are_answered_but_never_logged(live_deployment, urls, api) -> None:
    from modelops.monitor import synthetic
    from modelops.waiting import wait_until

    replica = urls["replica"]  # one worker: its log is written in request order
    marked = {"x-request-id": "spec-synthetic", **synthetic.headers(synthetic.read(live_deployment.dir))}
    assert httpx.post(replica + "/predict", json={"rows": api["example"]}, headers=marked).status_code == 200
    refused = httpx.post(replica + "/predict", json={"rows": [[1e39] * 13]}, headers={"x-request-id": "spec-422"})
    assert refused.status_code == 422
    after = httpx.post(replica + "/predict", json={"rows": api["example"]}, headers={"x-request-id": "spec-after"})
    assert after.status_code == 200
    assert wait_until(lambda: bool(logged(live_deployment, "spec-after")), 10), "the request sent after them in the log"
    assert logged(live_deployment, "spec-synthetic") == []
    assert logged(live_deployment, "spec-422") == []


@pytest.mark.parametrize("path", ["lb", "replica"])
def test_a_synthetic_marker_without_the_deployments_secret_is_logged(live_deployment, urls, api, path) -> None:
    """Through HAProxy (which strips the forged header) and straight to a replica (which checks the secret)."""
    from modelops.monitor import synthetic
    from modelops.waiting import wait_until

    secret = synthetic.read(live_deployment.dir)
    assert secret, f"`up` made no synthetic secret in {live_deployment.dir}"
    forged = [f"spec-forged-{path}-{i}" for i in range(3)]
    for request_id, marker in zip(forged, ["gate", "locust", secret[:-1]], strict=True):
        headers = {"x-request-id": request_id, "x-modelops-synthetic": marker}
        assert httpx.post(urls[path] + "/predict", json={"rows": api["example"]}, headers=headers).status_code == 200
    genuine = {"x-request-id": f"spec-genuine-{path}", **synthetic.headers(secret)}
    assert httpx.post(urls[path] + "/predict", json={"rows": api["example"]}, headers=genuine).status_code == 200
    assert wait_until(lambda: all(logged(live_deployment, r) for r in forged), 10), "forged markers are logged"
    assert logged(live_deployment, f"spec-genuine-{path}") == [], "the secret keeps the load generators' traffic out"


def test_every_answer_names_its_unique_prediction_id_which_the_log_holds(live_deployment, urls, api) -> None:
    from bento.prediction_log import read_window
    from modelops.waiting import wait_until

    same = {"x-request-id": "spec-same-id"}  # two clients that chose the same id
    replies = [httpx.post(urls["lb"] + "/predict", json={"rows": api["example"]}, headers=same) for _ in range(2)]
    ids = [r.headers["x-prediction-id"] for r in replies]
    assert ids[0] != ids[1] and all(len(i) == 32 for i in ids)

    def rows() -> list:
        return [r for r in read_window(live_deployment.prediction_log_dir).rows if r.prediction_id in ids]

    assert wait_until(lambda: len(rows()) == 2 * len(api["example"]), 10)
    assert {r.request_id for r in rows()} == {"spec-same-id"}
    for row in rows():
        assert row.probabilities is not None and row.prediction == max(row.probabilities, key=row.probabilities.get)


def test_a_request_id_that_is_not_a_plain_token_is_replaced_by_a_fresh_one(urls, api) -> None:
    response = httpx.post(urls["lb"] + "/predict", json={"rows": api["example"]}, headers={"x-request-id": "../x y"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] != "../x y"
    assert len(response.headers["x-request-id"]) == 32


def test_a_replica_serves_the_model_its_bento_was_built_with_though_a_newer_one_is_stored(
    make_target, reference_bento, api
) -> None:
    from bento import train
    from modelops.waiting import wait_until

    newer = train.save(seed=3).tag  # newer than the reference bento's model: "latest" in the store now
    built_with = bentos.describe(reference_bento).models[0]
    assert newer != built_with
    target = make_target()
    url = target.up(reference_bento, replicas=1, workers=1).url
    reply = httpx.post(url + "/predict", json={"rows": api["example"]}, headers={"x-request-id": "spec-pinned"})
    assert reply.status_code == 200
    assert wait_until(lambda: bool(logged(target, "spec-pinned")), 10)
    assert {r.model_version for r in logged(target, "spec-pinned")} == {built_with}


def test_the_pinned_model_is_read_from_the_bento_beside_the_sources(tmp_path) -> None:
    from bento.pinning import pinned_model

    (tmp_path / "src").mkdir()
    (tmp_path / "bento.yaml").write_text(
        "services:\n- name: s\n  models:\n  - tag: other:aaa\n  - tag: wine_classifier:v1abc\n"
    )
    assert pinned_model("wine_classifier", tmp_path / "src" / "service.py") == "wine_classifier:v1abc"
    assert pinned_model("wine_classifier", tmp_path / "a" / "b" / "service.py") == "wine_classifier:latest"
