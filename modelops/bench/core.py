"""`make bench`: throughput and latency, measured side by side in one run on the local target.

One replica of the benchmark bento (bento/bench_service.py) behind HAProxy. At the same concurrency, in
interleaved rounds (so drift in machine load hits every variant alike):
  noop          the framework floor: same validation and response shape, no model
  naive         the model called once per request (no batching)
  batched       the production path (adaptive batching)
  direct_half   the production path, replica at half its CPU budget (changed in place, no restart) …
  haproxy_half  … and the same through HAProxy: the overhead of the balancer, with CPU left for it
Each variant's figures are the median over rounds. Goals are printed beside the ratios; they are not asserted:
timings are the benchmark's business, not the test suite's.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from modelops import bentos
from modelops.gate import loadgen
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from stacks.config import PROJECT_ROOT, StackConfig

VARIANTS = {  # name: (endpoint, through HAProxy?, replica CPU budget: "full" or "half")
    "noop": ("/noop", False, "full"),
    "naive": ("/predict_naive", False, "full"),
    "batched": ("/predict", False, "full"),
    # Direct vs HAProxy is compared with the replica at half its budget: on 2 cores HAProxy and Locust share what
    # the replica leaves, and at the full budget the generator runs short of CPU once HAProxy takes its part, which
    # would be charged to HAProxy. At half a budget the replica is the bottleneck in both runs.
    "direct_half": ("/predict", False, "half"),
    "haproxy_half": ("/predict", True, "half"),
}
GOALS = {"batched_vs_noop": 0.90, "batched_p95_ms": 100.0, "haproxy_overhead": 0.03}


@dataclass(frozen=True)
class BenchOptions:
    users: int = 64
    duration_s: float = 15.0
    warmup_s: float = 3.0
    rounds: int = 3
    cpu: float = 1.0  # CPU budget of the replica (cores), when budgets are available
    workers: int = 1


def run_bench(settings: StackConfig, options: BenchOptions, steps: Steps, out_dir: Path | None = None) -> dict:
    out_dir = out_dir or PROJECT_ROOT / "reports" / time.strftime("bench-%Y%m%d-%H%M%S")
    with steps.step("building the benchmark bento"):
        if not bentos.has_reference_model():
            from bento import train

            train.save(seed=1)
        tag = bentos.build(bentofile="bentofile.bench.yaml", record=False)
    settings = settings.with_overrides(
        deploy={"cpu_per_replica": options.cpu / options.workers},
        local={"state_dir": str(PROJECT_ROOT / ".work" / "bench")},
    )
    target = LocalTarget(settings)
    results: dict[str, list[loadgen.LoadResult]] = {name: [] for name in VARIANTS}
    try:
        with steps.step(f"deploying 1 replica of {tag}") as note:
            target.progress = note
            status = target.up(tag, replicas=1, workers=options.workers)
        urls = {False: status.replicas[0].url, True: status.url}
        for round_no in range(1, options.rounds + 1):
            for name, (endpoint, via_lb, budget) in VARIANTS.items():
                cpu = options.cpu if budget == "full" else options.cpu / 2
                target.resize(options.workers, cpu, pool="live")  # in place: the cgroup quota only
                spec = loadgen.LoadSpec(
                    users=options.users,
                    spawn_rate=options.users,
                    duration_s=options.duration_s,
                    warmup_s=options.warmup_s,
                    endpoint=endpoint,
                    processes=_generator(settings, options, results[name]),
                )
                title = f"round {round_no}/{options.rounds}: {name} ({options.users} users, {options.duration_s:g} s)"
                with steps.step(title):
                    results[name].append(loadgen.run(urls[via_lb], spec, out_dir, prefix=f"{name}-{round_no}"))
    finally:
        with steps.step("stopping the benchmark deployment"):
            target.down()
    summary = summarise(results, options, status.to_dict(), target.budgets.reason)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(summary, indent=2))
    summary["path"] = str(out_dir / "bench.json")
    return summary


def _generator(settings: StackConfig, options: BenchOptions, earlier: list[loadgen.LoadResult]) -> int:
    """Locust processes for a variant's round: the gate's choice, from the variant's previous round (its req/s and
    the generator CPU a request cost); one process in the first round."""
    previous = earlier[-1] if earlier else None
    gate = settings.gate
    return loadgen.plan_processes(
        previous.rps if previous else None, options.users, previous, gate.max_generator_processes,
        gate.max_generator_load,
    ).processes  # fmt: skip


def summarise(results: dict[str, list[loadgen.LoadResult]], options: BenchOptions, status: dict, budgets: str) -> dict:
    def median(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[name])

    rps = {name: median(name, "rps") for name in results}
    p95_ms = {name: median(name, "p95_ms") for name in results}
    variants = {
        name: {
            "rps": rps[name],
            "p50_ms": median(name, "p50_ms"),
            "p95_ms": p95_ms[name],
            "p99_ms": median(name, "p99_ms"),
            "errors": sum(r.failures for r in runs),
            "requests": sum(r.requests for r in runs),
            "cpu_warning": any(r.cpu_warning for r in runs),
            "rounds_rps": [round(r.rps, 1) for r in runs],
        }
        for name, runs in results.items()
    }
    ratios = {
        "batched_vs_noop": rps["batched"] / rps["noop"] if rps["noop"] else 0.0,
        "batched_vs_naive": rps["batched"] / rps["naive"] if rps["naive"] else 0.0,
        "haproxy_overhead": 1 - rps["haproxy_half"] / rps["direct_half"] if rps["direct_half"] else 0.0,
    }
    met = {
        "batched_vs_noop": ratios["batched_vs_noop"] >= GOALS["batched_vs_noop"] and variants["batched"]["errors"] == 0,
        "batched_p95_ms": p95_ms["batched"] <= GOALS["batched_p95_ms"],
        "haproxy_overhead": ratios["haproxy_overhead"] <= GOALS["haproxy_overhead"],
    }
    return {
        "options": options.__dict__,
        "cpu_budgets": budgets,
        "variants": variants,
        "ratios": ratios,
        "goals": GOALS,
        "goals_met": met,
        "bento": status["bento"],
    }
