"""Request bodies built from a service's OpenAPI alone: no knowledge of the reference model."""

from __future__ import annotations

import pytest

from loadtests.payloads import (
    PayloadError,
    Zipf,
    batch_of,
    batch_size,
    body_with_rows,
    find_endpoint,
    make_payloads,
    row_pool,
)

ROWS = {"type": "array", "minItems": 1, "maxItems": 50,
        "items": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number"}}}  # fmt: skip


def openapi(rows_schema: dict, extra_paths: dict | None = None) -> dict:
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}}
    ok = {"200": {"content": {"application/json": {"schema": {"type": "array", "items": {}}}}}}
    paths = {"/predict": {"post": {"requestBody": body, "responses": ok}}, "/readyz": {"get": {}}}
    components = {"schemas": {"In": {"type": "object", "required": ["rows"], "properties": {"rows": rows_schema}}}}
    return {"paths": {**paths, **(extra_paths or {})}, "components": components}


def test_payloads_respect_feature_count_and_requested_rows() -> None:
    doc = openapi(ROWS)
    endpoint = find_endpoint(doc)
    bodies = make_payloads(doc, endpoint, rows=5, count=3)
    assert endpoint.path == "/predict" and endpoint.response_is_list
    assert all(len(b["rows"]) == 5 and all(len(r) == 3 for r in b["rows"]) for b in bodies)
    assert batch_size(doc, endpoint, rows=500) == 50, "clamped to the schema's maxItems"


def test_declared_examples_are_used_with_small_variations() -> None:
    doc = openapi({**ROWS, "examples": [[[10.0, 20.0, 30.0]]]})
    rows = make_payloads(doc, find_endpoint(doc), rows=2, count=1)[0]["rows"]
    assert all(abs(v - e) <= 0.02 * e for row in rows for v, e in zip(row, [10.0, 20.0, 30.0], strict=True))


def test_golden_rows_go_in_unaltered() -> None:
    doc = openapi({**ROWS, "examples": [[[10.0, 20.0, 30.0]]]})
    golden = [[1.5, 2.5, 3.5], [4.0, 5.0, 6.0]]
    assert body_with_rows(doc, find_endpoint(doc), golden) == {"rows": golden}


def test_several_endpoints_without_predict_need_a_choice() -> None:
    doc = openapi(ROWS)
    doc["paths"]["/score"] = doc["paths"].pop("/predict")
    doc["paths"]["/explain"] = doc["paths"]["/score"]
    with pytest.raises(PayloadError, match="choose one with --endpoint"):
        find_endpoint(doc)
    assert find_endpoint(doc, "/explain").path == "/explain"


LIMIT = 4096


def test_hostile_bodies_cover_every_kind_and_respect_the_size_limit_edges() -> None:
    import json

    from loadtests.payloads import EXTREME_VALUES, hostile_bodies

    doc = openapi({**ROWS, "examples": [[[10.0, 20.0, 30.0]]]})
    bodies = {b.kind: b for b in hostile_bodies(doc, find_endpoint(doc), max_body_bytes=LIMIT)}
    for name, value in EXTREME_VALUES.items():
        rows = json.loads(bodies[f"extreme {name}"].content)["rows"]
        assert rows == [[value, value, value]], f"extreme {name}: every number replaced, shape kept"
    assert len(json.loads(bodies["max rows"].content)["rows"]) == 50, "the schema's maxItems"
    assert len(bodies["just under the size limit"].content) == LIMIT
    assert len(json.loads(bodies["just under the size limit"].content)["rows"]) == 50, "padding keeps it valid JSON"
    assert len(bodies["just over the size limit"].content) == LIMIT + 1
    assert bodies["deeply nested"].content.count(b"[") >= 1000
    types = {b.content_type.split(";")[0] for b in bodies.values()}
    assert {"text/plain", "multipart/form-data", "application/vnd.bentoml+pickle"} <= types


def test_a_zipf_pool_holds_distinct_rows_cycling_through_the_examples() -> None:
    examples = [[10.0, 20.0, 30.0], [-1.0, -2.0, -3.0]]
    doc = openapi({**ROWS, "examples": [examples]})
    pool = row_pool(doc, find_endpoint(doc), count=1000, seed=5)
    assert len(pool) == 1000 and len({tuple(r) for r in pool}) == 1000
    assert all(len(r) == 3 for r in pool)
    near = [min(range(2), key=lambda i, r=r: abs(r[0] - examples[i][0])) for r in pool]
    assert near.count(0) == near.count(1) == 500, "rows alternate between the declared examples"
    assert pool == row_pool(doc, find_endpoint(doc), count=1000, seed=5), "the pool is seeded"


def test_a_pool_of_synthesised_rows_that_collide_is_filled_with_more_draws() -> None:
    # One float in [0, 1] at 6 decimals per row (a schema with no examples nor bounds): 20,000 draws repeat ~200.
    doc = openapi({"type": "array", "items": {"type": "array", "minItems": 1, "items": {"type": "number"}}})
    pool = row_pool(doc, find_endpoint(doc), count=20_000, seed=5)
    assert len(pool) == 20_000 and len({tuple(r) for r in pool}) == 20_000


def test_a_pool_larger_than_the_schema_allows_distinct_rows_is_refused() -> None:
    doc = openapi({**ROWS, "items": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "boolean"}}})
    with pytest.raises(PayloadError, match="distinct rows"):
        row_pool(doc, find_endpoint(doc), count=10)


def test_zipf_draws_follow_their_popularity_and_repeat_with_the_seed() -> None:
    zipf = Zipf(10_000, 1.1, seed=6)
    draws = [zipf() for _ in range(50_000)]
    assert sum(zipf.probability(i) for i in range(10_000)) == pytest.approx(1.0)
    top10 = sum(zipf.probability(i) for i in range(10))
    assert sum(d < 10 for d in draws) / len(draws) == pytest.approx(top10, abs=0.01)
    assert draws.count(0) > draws.count(1) > draws.count(9) > 0, "rank 1 is the most popular"
    assert all(0 <= d < 10_000 for d in draws)
    again = Zipf(10_000, 1.1, seed=6)
    assert [again() for _ in range(1000)] == draws[:1000]


@pytest.mark.parametrize(
    ("n", "s", "words"), [(0, 1.1, "--distinct-rows"), (10, 0.0, "--zipf-s"), (10, -1, "--zipf-s")]
)
def test_a_zipf_without_rows_or_skew_is_refused(n: int, s: float, words: str) -> None:
    with pytest.raises(PayloadError, match=words):
        Zipf(n, s)


def test_the_batch_of_a_body_is_its_first_array() -> None:
    assert batch_of({"model": "x", "rows": [[1.0]], "other": [2]}) == [[1.0]]
    with pytest.raises(PayloadError, match="no array"):
        batch_of({"x": 1})
