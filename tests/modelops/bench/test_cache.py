"""The cache benchmark's arithmetic: counters read from /metrics text, hit ratios, the speed-up, the ideal ratio."""

from __future__ import annotations

import pytest
from rich.console import Console

from bento.cache import METRIC_PREFIX
from modelops.bench.cache import CacheBenchOptions, cache_counters, ideal_hit_ratio, render, summarise

METRICS = f"""# HELP {METRIC_PREFIX}_hits_total prediction cache hits (rows)
# TYPE {METRIC_PREFIX}_hits_total counter
{METRIC_PREFIX}_hits_total 750.0
# HELP {METRIC_PREFIX}_misses_total prediction cache misses (rows)
# TYPE {METRIC_PREFIX}_misses_total counter
{METRIC_PREFIX}_misses_total 250.0
# HELP bentoml_service_request_total x
# TYPE bentoml_service_request_total counter
bentoml_service_request_total{{endpoint="/predict"}} 1000.0
"""


def test_counters_are_read_from_the_replica_s_metrics_text() -> None:
    assert cache_counters("http://replica", get=lambda url: METRICS) == {"hits": 750.0, "misses": 250.0}
    assert cache_counters("http://replica", get=lambda url: "") == {"hits": 0.0, "misses": 0.0}, "cache off"


def a_round(rps: float, p95: float, hits: float = 0, misses: float = 0, failures: int = 0) -> dict:
    latencies = {"p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 2}
    counts = {"requests": 1000, "failures": failures, "hits": hits, "misses": misses}
    return {"rps": rps, **latencies, **counts, "generator_load": 0.5, "generator_bound": False}


def test_summary_gives_the_speed_up_per_level_and_the_hit_ratio_over_the_run() -> None:
    rounds = {
        8: {
            "cache_off": [a_round(100, 40), a_round(110, 44)],
            "cache_on": [a_round(300, 10, hits=600, misses=400), a_round(330, 12, hits=900, misses=100)],
        },
        64: {
            "cache_off": [a_round(200, 300), a_round(200, 300, failures=1)],
            "cache_on": [a_round(220, 270, hits=500, misses=0), a_round(220, 270, hits=500, misses=0)],
        },
    }
    summary = summarise(rounds, CacheBenchOptions(users=(8, 64), distinct_rows=100), "enforced", "wine:v1")
    light, heavy = summary["levels"]["8"], summary["levels"]["64"]
    assert light["speedup_rps"] == pytest.approx(315 / 105) and light["p95_ratio"] == pytest.approx(11 / 42)
    assert heavy["speedup_rps"] == pytest.approx(1.1)
    assert light["cache_on"]["rounds_hit_ratio"] == [0.6, 0.9] and light["cache_on"]["hit_ratio"] == 0.75
    assert light["cache_off"]["hit_ratio"] is None
    assert summary["hit_ratio"] == pytest.approx(2500 / 3000) and summary["lookups"] == 3000
    assert summary["failed_requests"] == 1
    assert 0 < summary["ideal_hit_ratio"] < 1
    console = Console(width=250, record=True)
    console.print(render(summary))
    text = " ".join(console.export_text().split())  # the caption wraps at the table's width
    assert "8 users 3.00x req/s" in text and "failed requests: 1" in text


@pytest.mark.parametrize(
    ("s", "rows", "lookups", "low", "high"),
    [
        (1.1, 10_000, 1, 0.0, 0.0),  # the first lookup always misses
        (1.1, 10, 10_000, 0.998, 1.0),  # few rows, many lookups: only the 10 first sightings miss
        (0.01, 10_000, 100, 0.0, 0.01),  # almost uniform over many rows: nearly every lookup is new
    ],
)
def test_ideal_hit_ratio_counts_only_first_sightings(s, rows, lookups, low, high) -> None:
    assert low - 1e-9 <= ideal_hit_ratio(s, rows, lookups) <= high + 1e-9
