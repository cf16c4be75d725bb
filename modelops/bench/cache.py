"""`modelops bench --cache`: the prediction cache off and on, under the same Zipf-distributed load.

Two deployments of the production bento, one replica each at the same CPU budget, identical but for
``modelops:cache.enabled``; both stay up and the variants run in interleaved rounds (so drift in machine load hits
both alike), Locust straight at the replica, at a light and at a heavy concurrency: a hit saves a model call, which
alone is most of a request's time, while under load the batcher already shares one call among many requests. Every
request is one row drawn from a fixed pool of distinct rows with Zipf popularity (loadtests/locustfile.py
``--zipf-s``); both variants of a step get the same sequence, each step a new one. The hit ratio is read from the
replica's own /metrics (``modelops_prediction_cache_*``, before and after each step), beside the ratio an unbounded
cache would reach on as many i.i.d. Zipf draws (every first sighting of a row is a miss). The cache stays warm from
one step to the next, as it would in service: the first step includes the cold start.

Figures are printed, never asserted; a round whose load generator was the busier side is marked (the cache makes the
replica cheap enough that on 2 cores Locust itself can become the limit).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from bento.cache import HITS, METRIC_PREFIX, MISSES
from modelops import bentos
from modelops.gate import loadgen
from modelops.monitor import synthetic
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from stacks.config import PROJECT_ROOT, StackConfig

VARIANTS = ("cache_off", "cache_on")


@dataclass(frozen=True)
class CacheBenchOptions:
    # Concurrency levels: the cache saves a model call per hit, which at low concurrency is most of a request's time
    # and at high concurrency is shared by the whole batch (the batcher amortises it), so both are measured.
    users: tuple[int, ...] = (8, 64)
    duration_s: float = 15.0
    warmup_s: float = 3.0
    rounds: int = 3
    cpu: float = 1.0  # CPU budget of each replica (cores), when budgets are available
    zipf_s: float = 1.1
    distinct_rows: int = 10_000
    max_entries: int = 10_000  # the cache's bound (per worker): at distinct_rows, only first sightings miss
    ttl_s: float = 600.0  # longer than the run: expiry is not what this measures


def cache_counters(replica_url: str, get: Callable[[str], str] | None = None) -> dict[str, float]:
    """The replica's cache counters (hits, misses) from its /metrics; zeros when the cache is off."""
    text = (get or _get_text)(replica_url.rstrip("/") + "/metrics")
    wanted = {f"{METRIC_PREFIX}_{name}_total": name for name in (HITS, MISSES)}
    counts = dict.fromkeys((HITS, MISSES), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                counts[wanted[sample.name]] += sample.value
    return counts


def _get_text(url: str) -> str:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return response.text


def ideal_hit_ratio(zipf_s: float, distinct_rows: int, lookups: int) -> float:
    """Hit ratio of an unbounded, never-expiring cache after ``lookups`` i.i.d. Zipf draws: every row is a miss the
    first time only, and the expected number of distinct rows seen is sum_i 1 - (1 - p_i) ** lookups."""
    if lookups <= 0:
        return 0.0
    weights = [1.0 / k**zipf_s for k in range(1, distinct_rows + 1)]
    total = sum(weights)
    distinct = sum(1.0 - (1.0 - w / total) ** lookups for w in weights)
    return 1.0 - distinct / lookups


def run_cache_bench(
    settings: StackConfig, options: CacheBenchOptions, steps: Steps, out_dir: Path | None = None
) -> dict:
    out_dir = out_dir or PROJECT_ROOT / "reports" / time.strftime("bench-cache-%Y%m%d-%H%M%S")
    with steps.step("building the production bento"):
        if not bentos.has_reference_model():
            from bento import train

            train.save(seed=1)
        tag = bentos.build(record=False)
    targets = {
        name: LocalTarget(
            settings.with_overrides(
                deploy={"cpu_per_replica": options.cpu},
                cache={"enabled": name == "cache_on", "max_entries": options.max_entries, "ttl_s": options.ttl_s},
                local={"state_dir": str(PROJECT_ROOT / ".work" / f"bench-{name}")},
            )
        )
        for name in VARIANTS
    }
    rounds: dict[int, dict[str, list[dict]]] = {users: {name: [] for name in VARIANTS} for users in options.users}
    try:
        urls = {}
        for name, target in targets.items():
            with steps.step(f"deploying 1 replica of {tag} ({name.replace('_', ' ')})") as note:
                target.progress = note
                urls[name] = target.up(tag, replicas=1, workers=1).replicas[0].url
        for round_no in range(1, options.rounds + 1):
            for level, users in enumerate(options.users):
                # Both variants of a step get the same sequence of rows; every step a new one (the cache stays
                # warm from step to step, and a repeated sequence would find every row it had already asked).
                spec = loadgen.LoadSpec(
                    users=users,
                    spawn_rate=users,
                    duration_s=options.duration_s,
                    warmup_s=options.warmup_s,
                    endpoint="/predict",
                    zipf_s=options.zipf_s,
                    distinct_rows=options.distinct_rows,
                    zipf_seed=round_no * 1000 + level,
                )
                for name in VARIANTS:
                    title = f"round {round_no}/{options.rounds}: {name}, {users} users, Zipf s={options.zipf_s:g}"
                    with steps.step(title):
                        before = cache_counters(urls[name])
                        # marked with the deployment's secret: the replicas keep the load out of their prediction log
                        run = synthetic.marking(loadgen.run, synthetic.read(targets[name].dir))
                        result = run(urls[name], spec, out_dir, prefix=f"{name}-{users}u-{round_no}")
                        after = cache_counters(urls[name])
                    rounds[users][name].append(_round(result, before, after, settings.gate.max_generator_load))
    finally:
        with steps.step("stopping the benchmark deployments"):
            for target in targets.values():
                target.down()
    summary = summarise(rounds, options, targets["cache_on"].budgets.reason, tag)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench-cache.json").write_text(json.dumps(summary, indent=2))
    summary["path"] = str(out_dir / "bench-cache.json")
    return summary


def _round(result: loadgen.LoadResult, before: dict[str, float], after: dict[str, float], max_load: float) -> dict:
    hits, misses = after[HITS] - before[HITS], after[MISSES] - before[MISSES]
    load = result.measured.generator_load
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p95_ms": result.p95_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "failures": result.failures,
        "hits": hits,
        "misses": misses,
        "generator_load": load,
        "generator_bound": load is not None and load > max_load,
    }


def summarise(rounds: dict[int, dict[str, list[dict]]], options: CacheBenchOptions, budgets: str, bento: str) -> dict:
    """Per concurrency level: medians over rounds per variant, the speed-up and the hit ratio; overall: the hit
    ratio of the whole run beside an unbounded cache's on as many lookups, and the failed requests."""
    levels = {}
    for users, variants in rounds.items():
        figures = {name: _variant(runs) for name, runs in variants.items()}
        on, off = figures["cache_on"], figures["cache_off"]
        levels[str(users)] = {
            **figures,
            "speedup_rps": on["rps"] / off["rps"] if off["rps"] else 0.0,
            "p95_ratio": on["p95_ms"] / off["p95_ms"] if off["p95_ms"] else 0.0,
        }
    on_runs = [r for variants in rounds.values() for r in variants["cache_on"]]
    hits = sum(r["hits"] for r in on_runs)
    lookups = int(hits + sum(r["misses"] for r in on_runs))
    return {
        "options": asdict(options),
        "cpu_budgets": budgets,
        "bento": bento,
        "levels": levels,
        "hit_ratio": _ratio(hits, lookups),
        "lookups": lookups,
        "ideal_hit_ratio": ideal_hit_ratio(options.zipf_s, options.distinct_rows, lookups) if lookups else None,
        "failed_requests": sum(
            r["failures"] for variants in rounds.values() for runs in variants.values() for r in runs
        ),
    }


def _variant(runs: list[dict]) -> dict:
    hits = sum(r["hits"] for r in runs)
    lookups = hits + sum(r["misses"] for r in runs)
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p95_ms": statistics.median(r["p95_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "failures": sum(r["failures"] for r in runs),
        "rounds_rps": [round(r["rps"], 1) for r in runs],
        "rounds_hit_ratio": [_ratio(r["hits"], r["hits"] + r["misses"]) for r in runs],
        "hit_ratio": _ratio(hits, lookups),
        "generator_bound": any(r["generator_bound"] for r in runs),
    }


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def render(summary: dict) -> Table:
    """The comparison as a table for the terminal (`modelops bench --cache`)."""
    options = summary["options"]
    table = Table(
        "users", "cache", "req/s", "p50 ms", "p95 ms", "p99 ms", "failed", "requests", "hit ratio", "rounds req/s",
        title=f"prediction cache off vs on: Zipf s={options['zipf_s']:g} over {options['distinct_rows']:,} rows, "
        f"{options['rounds']} x {options['duration_s']:g} s per step",
    )  # fmt: skip
    for users, level in summary["levels"].items():
        for name in VARIANTS:
            v = level[name]
            warn = " [yellow](generator-bound)[/]" if v["generator_bound"] else ""
            table.add_row(users, name.removeprefix("cache_") + warn, f"{v['rps']:.0f}", f"{v['p50_ms']:.0f}",
                          f"{v['p95_ms']:.0f}", f"{v['p99_ms']:.0f}", str(v["failures"]), str(v["requests"]),
                          _percent(v["hit_ratio"]), str(v["rounds_rps"]))  # fmt: skip
    speedups = ", ".join(
        f"{users} users {level['speedup_rps']:.2f}x req/s, p95 x{level['p95_ratio']:.2f}"
        for users, level in summary["levels"].items()
    )
    table.caption = (
        f"cache on / off: {speedups}; hit ratio {_percent(summary['hit_ratio'])} over the run (an unbounded cache "
        f"on as many Zipf draws: {_percent(summary['ideal_hit_ratio'])}); failed requests: "
        f"{summary['failed_requests']}; CPU budgets: {summary['cpu_budgets']}; results: {summary.get('path', '-')}"
    )
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
