"""The prediction cache: bounded, expiring, per model version, per row; in process (fake clock, fake model) and on
a real replica with the cache on (its /metrics counters, answers equal the model's own, a Zipf load with no failure).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bento.cache import (
    COUNTERS,
    ENTRIES,
    ENV_ENABLED,
    ENV_MAX_ENTRIES,
    ENV_TTL_S,
    EVICTIONS,
    EXPIRATIONS,
    HITS,
    METRIC_PREFIX,
    MISSES,
    CacheConfigError,
    CacheMetrics,
    PredictionCache,
    from_env,
)
from modelops import bentos
from modelops.acceleration import CLASS_TOLERANCE
from modelops.gate import loadgen
from modelops.targets.local import LocalTarget, procs
from tests.conftest import local_settings

FEATURES = 13


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Model:
    """A fake model answering each row with "<version>:<sum of the row>", counting the rows it was asked."""

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.rows_computed = 0

    async def __call__(self, rows: np.ndarray) -> list[str]:
        self.rows_computed += len(rows)
        return [f"{self.version}:{row.sum():g}" for row in rows]


def rows(*values: float) -> np.ndarray:
    """One row per value, every feature of the row equal to it."""
    return np.array([[v] * FEATURES for v in values], dtype=np.float64)


def run(cache: PredictionCache, version: str, batch: np.ndarray, model: Model) -> list:
    return asyncio.run(cache.predict(version, batch, model))


def test_rows_seen_before_are_answered_without_the_model() -> None:
    cache, model = PredictionCache(max_entries=10), Model()
    first = run(cache, "v1", rows(1, 2), model)
    again = run(cache, "v1", rows(1, 2), model)
    assert again == first == ["v1:13", "v1:26"]
    assert model.rows_computed == 2, "the second request must not reach the model"
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)


def test_overlapping_requests_send_only_the_new_rows_to_the_model_and_keep_row_order() -> None:
    cache, model = PredictionCache(max_entries=10), Model()
    run(cache, "v1", rows(2), model)
    assert run(cache, "v1", rows(1, 2, 3), model) == ["v1:13", "v1:26", "v1:39"]
    assert model.rows_computed == 3, "row 2 was cached: only rows 1 and 3 go to the model"


def test_the_cache_holds_at_most_max_entries_and_drops_the_least_recently_used() -> None:
    cache, model = PredictionCache(max_entries=3), Model()
    run(cache, "v1", rows(1, 2, 3), model)
    run(cache, "v1", rows(1), model)  # 1 is now the most recently used: 2 is the least
    run(cache, "v1", rows(4), model)
    assert len(cache) == 3 and cache.stats.evictions == 1
    computed = model.rows_computed
    run(cache, "v1", rows(1, 3, 4), model)
    assert model.rows_computed == computed, "1, 3 and 4 must still be cached"
    run(cache, "v1", rows(2), model)
    assert model.rows_computed == computed + 1, "2 was the least recently used: it must have been evicted"


def test_entries_expire_ttl_after_they_were_computed_even_when_hit_meanwhile() -> None:
    clock = Clock()
    cache, model = PredictionCache(max_entries=10, ttl_s=10.0, clock=clock), Model()
    run(cache, "v1", rows(1), model)
    clock.now += 9.9
    run(cache, "v1", rows(1), model)
    assert model.rows_computed == 1, "within the TTL the row is served from the cache"
    clock.now += 0.1
    run(cache, "v1", rows(1), model)
    assert model.rows_computed == 2, "at the TTL the entry is stale, also after a hit"
    assert cache.stats.expirations == 1 and cache.stats.misses == 2


def test_another_model_version_never_gets_this_versions_answer() -> None:
    cache, old, new = PredictionCache(max_entries=10), Model("v1"), Model("v2")
    assert run(cache, "wine:v1", rows(1), old) == ["v1:13"]
    assert run(cache, "wine:v2", rows(1), new) == ["v2:13"], "a new version must compute its own answer"
    assert new.rows_computed == 1
    assert run(cache, "wine:v1", rows(1), old) == ["v1:13"] and old.rows_computed == 1


def test_a_failed_prediction_is_not_cached_and_the_error_reaches_the_caller() -> None:
    cache = PredictionCache(max_entries=10)

    async def failing(batch: np.ndarray) -> list[str]:
        raise ValueError("the model cannot predict these rows")

    with pytest.raises(ValueError, match="cannot predict"):
        run(cache, "v1", rows(1), failing)  # type: ignore[arg-type]
    assert len(cache) == 0
    model = Model()
    assert run(cache, "v1", rows(1), model) == ["v1:13"] and model.rows_computed == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (rows(1.0), rows(1.0 + 1e-15)),  # one ulp-sized difference is another row
        (np.array([[0.0] * FEATURES]), np.array([[-0.0] + [0.0] * (FEATURES - 1)])),  # -0.0 is another row
        (np.ones((1, FEATURES)), np.ones((1, FEATURES + 1))),  # another shape
    ],
    ids=["tiny difference", "negative zero", "other feature count"],
)
def test_rows_that_differ_in_any_bit_or_in_shape_have_different_keys(a: np.ndarray, b: np.ndarray) -> None:
    assert PredictionCache.keys("v1", a) != PredictionCache.keys("v1", b)


def test_keys_depend_on_the_values_not_on_the_arrays_layout() -> None:
    data = rows(1, 2, 3)
    fortran = np.asfortranarray(data)
    as_float32_then_back = data.astype(np.float32).astype(np.float64)
    assert PredictionCache.keys("v", fortran) == PredictionCache.keys("v", data)
    assert PredictionCache.keys("v", as_float32_then_back) == PredictionCache.keys("v", data)


@pytest.mark.parametrize(("max_entries", "ttl_s"), [(0, 1.0), (1, 0.0), (1, -5.0)])
def test_a_cache_without_room_or_lifetime_is_refused(max_entries: int, ttl_s: float) -> None:
    with pytest.raises(ValueError, match=r"max_entries|ttl_s"):
        PredictionCache(max_entries=max_entries, ttl_s=ttl_s)


def registry_values(registry: CollectorRegistry) -> dict[str, float]:
    """The cache's samples in ``registry`` (without the counters' creation timestamps)."""
    samples = (s for metric in registry.collect() for s in metric.samples)
    return {s.name: s.value for s in samples if s.name.startswith(METRIC_PREFIX) and not s.name.endswith("_created")}


def test_counters_reach_prometheus_metrics() -> None:
    registry = CollectorRegistry()
    clock = Clock()
    cache = PredictionCache(max_entries=2, ttl_s=5.0, clock=clock, metrics=CacheMetrics(registry))
    model = Model()
    run(cache, "v1", rows(1, 2, 3), model)  # 3 misses, 1 eviction
    run(cache, "v1", rows(3), model)  # 1 hit
    clock.now += 5
    run(cache, "v1", rows(3), model)  # 1 expiration (and miss)
    assert registry_values(registry) == {
        f"{METRIC_PREFIX}_{HITS}_total": 1,
        f"{METRIC_PREFIX}_{MISSES}_total": 4,
        f"{METRIC_PREFIX}_{EVICTIONS}_total": 1,
        f"{METRIC_PREFIX}_{EXPIRATIONS}_total": 1,
        f"{METRIC_PREFIX}_{ENTRIES}": 2,
    }


def test_caches_sharing_metrics_add_up_their_entries() -> None:
    registry = CollectorRegistry()
    metrics = CacheMetrics(registry)
    first, second = PredictionCache(max_entries=2, metrics=metrics), PredictionCache(max_entries=5, metrics=metrics)
    run(first, "v1", rows(1, 2, 3), Model())  # holds 2 (one evicted)
    run(second, "v1", rows(1, 2, 3), Model())  # holds 3
    assert registry_values(registry)[f"{METRIC_PREFIX}_{ENTRIES}"] == 5
    assert registry_values(registry)[f"{METRIC_PREFIX}_{MISSES}_total"] == 6


def test_every_cache_of_a_process_reports_to_the_same_metrics() -> None:
    env = {ENV_ENABLED: "true"}
    first, second = from_env(env), from_env(env)  # the benchmark service builds two classifiers in one worker
    assert first is not None and second is not None and first.metrics is second.metrics is not None


def test_the_cache_is_off_unless_the_environment_turns_it_on() -> None:
    assert from_env({}) is None
    assert from_env({ENV_ENABLED: "false", ENV_MAX_ENTRIES: "5"}) is None


def test_the_environment_sets_the_bound_and_the_ttl() -> None:
    cache = from_env({ENV_ENABLED: "true", ENV_MAX_ENTRIES: "5", ENV_TTL_S: "2.5"}, metrics=lambda: None)
    assert cache is not None and (cache.max_entries, cache.ttl_s) == (5, 2.5)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({ENV_ENABLED: "on please"}, ENV_ENABLED),
        ({ENV_ENABLED: "true", ENV_MAX_ENTRIES: "many"}, ENV_MAX_ENTRIES),
        ({ENV_ENABLED: "true", ENV_MAX_ENTRIES: "0"}, ENV_MAX_ENTRIES),
        ({ENV_ENABLED: "true", ENV_TTL_S: "-1"}, ENV_TTL_S),
        ({ENV_ENABLED: "true", ENV_TTL_S: "inf"}, ENV_TTL_S),
    ],
)
def test_an_invalid_cache_environment_names_the_variable_and_the_setting(env: dict, named: str) -> None:
    with pytest.raises(CacheConfigError, match=named) as error:
        from_env(env, metrics=lambda: None)
    assert "modelops:cache" in str(error.value)


# ------------------------------------------------------------------------------------------- on a real replica
MAX_ENTRIES = 5000


@pytest.fixture(scope="module")
def cached_replica(tmp_path_factory: pytest.TempPathFactory, reference_bento: str) -> Iterator[str]:
    """One replica of the reference bento with the cache on (through the stack settings, as `modelops up` runs it)."""
    settings = local_settings(
        tmp_path_factory.mktemp("cached"), cache={"enabled": True, "max_entries": MAX_ENTRIES, "ttl_s": 600}
    )
    target = LocalTarget(settings)
    try:
        yield target.up(reference_bento, replicas=1, workers=1).replicas[0].url
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == []


def scrape(url: str) -> dict[str, float]:
    """The replica's cache metrics (counters and the entries gauge), by short name."""
    text = httpx.get(url + "/metrics", timeout=10).text
    values = dict.fromkeys([*COUNTERS, ENTRIES], 0.0)
    names = {f"{METRIC_PREFIX}_{c}_total": c for c in COUNTERS} | {f"{METRIC_PREFIX}_{ENTRIES}": ENTRIES}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                values[names[sample.name]] += sample.value
    return values


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(url + "/predict", json=body, timeout=30)


def test_cached_answers_equal_the_models_own_and_the_metrics_count_each_row(cached_replica, reference_bento) -> None:
    info = bentos.describe(reference_bento)
    model = bentoml.sklearn.load_model(info.models[0])
    classes = bentoml.models.get(info.models[0]).info.metadata["classes"]
    golden = np.asarray(info.golden["rows"])
    rng = np.random.default_rng(11)
    batch = golden[0] * rng.uniform(0.8, 1.2, size=(20, golden.shape[1]))
    overlapping = np.vstack([batch[:5], golden[0] * rng.uniform(0.8, 1.2, size=(3, golden.shape[1]))])

    before = scrape(cached_replica)
    answers = [post(cached_replica, {"rows": r.tolist()}) for r in (batch, batch, overlapping)]
    after = scrape(cached_replica)

    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    first, cached, mixed = (a.json() for a in answers)
    assert cached == first, f"{cached_replica}: a cached answer differs from the computed one"
    for served, sent in ((first, batch), (mixed, overlapping)):
        expected = model.predict_proba(sent)
        assert [p["label"] for p in served] == [classes[i] for i in expected.argmax(axis=1)]
        for got, want in zip(served, expected, strict=True):
            # Within the tolerance the build proved for the implementation it chose (ONNX Runtime computes in float32).
            assert [got["probabilities"][c] for c in classes] == pytest.approx(want.tolist(), abs=CLASS_TOLERANCE)
    delta = {k: after[k] - before[k] for k in (HITS, MISSES)}
    assert delta == {HITS: 20 + 5, MISSES: 20 + 3}, f"{cached_replica}/metrics: {after}"
    assert 0 < after[ENTRIES] <= MAX_ENTRIES


@pytest.mark.parametrize(
    "body",
    [
        {"rows": [[1.0] * (FEATURES - 1)]},  # 400: schema
        {"rows": [[1e39] + [1.0] * (FEATURES - 1)]},  # 422: beyond what the model computes in (float32)
        {"rows": [[1.0] * FEATURES, [-1e39] + [1.0] * (FEATURES - 1)]},  # 422, with a valid row beside
    ],
    ids=["wrong feature count", "beyond float32", "valid row beside a bad one"],
)
def test_bad_input_never_reaches_the_cache(cached_replica, body: dict) -> None:
    before = scrape(cached_replica)
    response = post(cached_replica, body)
    assert response.status_code in (400, 422), response.text
    after = scrape(cached_replica)
    assert after == before, f"{cached_replica}/metrics changed for a refused request: {before} -> {after}"


def test_a_zipf_load_through_the_cache_fails_no_request_and_hits(cached_replica, tmp_path: Path) -> None:
    before = scrape(cached_replica)
    # Single-row users and 4-row batch users (partial hits: some rows cached, the others computed in one call).
    spec = loadgen.LoadSpec(
        users=8, spawn_rate=8, duration_s=4, batch_rows=4, batch_weight=5, zipf_s=1.1, distinct_rows=10_000
    )
    result = loadgen.run(cached_replica, spec, tmp_path, prefix="zipf")
    after = scrape(cached_replica)
    meta = json.loads((tmp_path / "zipf.meta.json").read_text())
    assert meta["zipf"] == {"s": 1.1, "distinct_rows": 10_000, "seed": 6}, "the load must be the Zipf mix"
    assert result.requests >= 30, f"too few requests to judge (a busy machine?): {result.requests}"
    assert result.failures == 0, result.failure_messages
    assert {w.kind for w in result.windows} >= {"single", "batch"}
    assert after[HITS] - before[HITS] > 0, f"{cached_replica}/metrics: no cache hit under a Zipf load"
    assert after[MISSES] > before[MISSES]
