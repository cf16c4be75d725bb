"""`make bench`: throughput and latency, measured side by side in one run on the local target.

Replicas of the benchmark bentos, each behind its own HAProxy. At the same concurrency, in interleaved rounds (so
drift in machine load hits every variant alike):
  noop          the floor: the production path (async, validation, contract check, batcher, response building)
                with the model call taken out, so batched ÷ noop is what the model costs
  naive         the model called once per request (no batching)
  batched       the production path
  direct_half   the production path, replica at half its CPU budget (changed in place, no restart) …
  haproxy_half  … and the same through HAProxy: the overhead of the balancer, with CPU left for it
  omp_unset     an OpenMP model (HistGradientBoosting) at half a core, thread variables removed from the replica …
  omp_set       … and the same with OMP_NUM_THREADS & co. set from the budget, as every replica gets them

Every ratio is judged with its spread across rounds (modelops/bench/noise.py): met, missed or inconclusive. After
the minimum rounds, rounds of just the variants behind an inconclusive verdict are added while the time budget
lasts. Goals are printed, never asserted: timings are the benchmark's business, not the test suite's.

Adding a variant is one line in VARIANTS; judging it against another is one line in RATIOS.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from modelops import bentos
from modelops.bench.noise import Estimate, Goal, compare, spread
from modelops.errors import UsageError
from modelops.gate import loadgen
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from stacks.config import PROJECT_ROOT, StackConfig


def _reference_model() -> None:
    if not bentos.has_reference_model():
        from bento import train

        train.save(seed=1)


def _hgb_model() -> None:
    import bentoml

    from bento import train_hgb

    try:
        bentoml.models.get(f"{train_hgb.MODEL_NAME}:latest")
    except bentoml.exceptions.NotFound:
        train_hgb.save(seed=1)


@dataclass(frozen=True)
class Deployment:
    """One replica of a benchmark bento, up for the whole run."""

    bentofile: str
    model: Callable[[], None]  # makes sure the model the bento packs is in the store
    limit_threads: bool = True  # False: OMP_NUM_THREADS & co. removed from the replica's environment
    group: str = "core"  # --no-omp leaves out the "omp" group


@dataclass(frozen=True)
class Variant:
    endpoint: str
    deployment: str = "bench"
    via_lb: bool = False  # through the deployment's HAProxy instead of straight to the replica
    cpu_share: float = 1.0  # the replica's CPU budget while measured, as a share of --cpu (set in place)
    users: int | None = None  # None: --users


@dataclass(frozen=True)
class Ratio:
    numerator: str  # variant names
    denominator: str
    goal: Goal | None = None  # None: shown with its spread, not judged
    label: str = ""


@dataclass(frozen=True)
class Figure:
    """One variant's figure judged on its own (a latency), with its spread across rounds."""

    variant: str
    field: str  # a LoadResult property: rps, p50_ms, p95_ms, p99_ms
    goal: Goal
    label: str = ""


DEPLOYMENTS = {
    "bench": Deployment("bentofile.bench.yaml", _reference_model),
    "omp_unset": Deployment("bentofile.bench_omp.yaml", _hgb_model, limit_threads=False, group="omp"),
    "omp_set": Deployment("bentofile.bench_omp.yaml", _hgb_model, group="omp"),
}
VARIANTS = {
    "noop": Variant("/noop"),
    "naive": Variant("/predict_naive"),
    "batched": Variant("/predict"),
    # The production path with every request written to the prediction log (bento/prediction_log.py).
    "logged": Variant("/predict_logged"),
    # Direct vs HAProxy is compared with the replica at half its budget: on 2 cores HAProxy and Locust share what
    # the replica leaves, and at the full budget the generator runs short of CPU once HAProxy takes its part, which
    # would be charged to HAProxy. At half a budget the replica is the bottleneck in both runs.
    "direct_half": Variant("/predict", cpu_share=0.5),
    "haproxy_half": Variant("/predict", via_lb=True, cpu_share=0.5),
    # 16 users: the load of the measurement that found the problem (33 vs 109 req/s at half a core).
    "omp_unset": Variant("/predict", deployment="omp_unset", cpu_share=0.5, users=16),
    "omp_set": Variant("/predict", deployment="omp_set", cpu_share=0.5, users=16),
}
RATIOS = {
    "batched_vs_noop": Ratio("batched", "noop", Goal.at_least(0.90), "batched / no-op floor"),
    "batched_vs_naive": Ratio("batched", "naive", None, "batched / naive"),
    "logged_vs_batched": Ratio("logged", "batched", Goal.at_least(0.97), "prediction log at 100 % / off"),
    "haproxy_vs_direct": Ratio("haproxy_half", "direct_half", Goal.at_least(0.97), "via HAProxy / direct (½ core)"),
    "omp_set_vs_unset": Ratio("omp_set", "omp_unset", None, "OpenMP model: threads set / unset (½ core)"),
}
FIGURES = {"batched_p95_ms": Figure("batched", "p95_ms", Goal.at_most(100.0), "batched p95, ms")}


@dataclass(frozen=True)
class BenchOptions:
    users: int = 64
    duration_s: float = 15.0
    warmup_s: float = 3.0
    rounds: int = 3  # at least this many rounds of every variant
    time_budget_min: float = 12.0  # rounds are added for inconclusive verdicts until this much time has passed
    cpu: float = 1.0  # CPU budget of the replica (cores), when budgets are available
    workers: int = 1
    omp: bool = True  # also the OpenMP threads variants

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.duration_s <= 0 or self.time_budget_min < 0 or self.users < 1 or self.cpu <= 0:
            raise UsageError(
                f"bench needs --rounds >= 1, --duration > 0, --time-budget-min >= 0, --users >= 1 and --cpu > 0; got "
                f"{self.rounds}, {self.duration_s:g}, {self.time_budget_min:g}, {self.users} and {self.cpu:g}"
            )


Results = dict[str, dict[int, loadgen.LoadResult]]  # variant -> round number -> what the round measured


def selected(options: BenchOptions) -> dict[str, Variant]:
    groups = {"core", "omp"} if options.omp else {"core"}
    return {name: v for name, v in VARIANTS.items() if DEPLOYMENTS[v.deployment].group in groups}


def judge_all(results: Results) -> dict[str, Estimate]:
    """Every ratio and figure whose variants were measured, with spread and verdict. A ratio comes from the rounds
    in which both variants ran (paired), so added rounds of a few variants pair with each other."""
    out: dict[str, Estimate] = {}
    for name, ratio in RATIOS.items():
        a, b = results.get(ratio.numerator, {}), results.get(ratio.denominator, {})
        both = sorted(set(a) & set(b))
        if both:
            out[name] = compare([a[r].rps for r in both], [b[r].rps for r in both], ratio.goal)
    for name, figure in FIGURES.items():
        runs = results.get(figure.variant, {})
        if runs:
            out[name] = spread([getattr(runs[r], figure.field) for r in sorted(runs)], figure.goal)
    return out


def failed_requests(results: Results, name: str) -> int:
    return sum(r.failures for v in involved(name) for r in results.get(v, {}).values())


def involved(name: str) -> set[str]:
    """The variants a ratio or figure is computed from."""
    return {RATIOS[name].numerator, RATIOS[name].denominator} if name in RATIOS else {FIGURES[name].variant}


def verdict(results: Results, name: str, estimate: Estimate) -> str | None:
    """The noise verdict, except that a failed request is a fact, not noise: a judged comparison whose variants
    failed any request is missed."""
    if estimate.verdict is not None and failed_requests(results, name):
        return "missed"
    return estimate.verdict


def pending(results: Results) -> set[str]:
    """The variants behind a verdict that more rounds could still settle."""
    names: set[str] = set()
    for name, estimate in judge_all(results).items():
        if verdict(results, name, estimate) == "inconclusive":
            names |= involved(name)
    return names


def run_bench(settings: StackConfig, options: BenchOptions, steps: Steps, out_dir: Path | None = None) -> dict:
    out_dir = out_dir or PROJECT_ROOT / "reports" / time.strftime("bench-%Y%m%d-%H%M%S")
    variants = selected(options)
    needed = {v.deployment for v in variants.values()}
    tags: dict[str, str] = {}
    with steps.step("building the benchmark bentos"):
        for name in needed:
            deployment = DEPLOYMENTS[name]
            deployment.model()
            if deployment.bentofile not in tags:
                tags[deployment.bentofile] = bentos.build(bentofile=deployment.bentofile, record=False)
    targets: dict[str, LocalTarget] = {}
    urls: dict[tuple[str, bool], str] = {}
    statuses: dict[str, dict] = {}
    results: Results = {name: {} for name in variants}
    rounds_run, stopped = 0, ""
    try:
        for name in sorted(needed):
            deployment, tag = DEPLOYMENTS[name], tags[DEPLOYMENTS[name].bentofile]
            # Started at the budget it is measured at, so its thread variables are those of that budget.
            share = max(v.cpu_share for v in variants.values() if v.deployment == name)
            scoped = settings.with_overrides(
                deploy={"cpu_per_replica": options.cpu * share / options.workers},
                local={"state_dir": str(PROJECT_ROOT / ".work" / "bench" / name)},
            )
            targets[name] = LocalTarget(scoped, limit_threads=deployment.limit_threads)
            with steps.step(f"deploying 1 replica of {tag} ({name})") as note:
                targets[name].progress = note
                status = targets[name].up(tag, replicas=1, workers=options.workers)
            urls[name, False], urls[name, True] = status.replicas[0].url, status.url
            statuses[name] = status.to_dict()

        def measure(name: str, round_no: int) -> loadgen.LoadResult:
            variant = variants[name]
            users = variant.users or options.users
            # In place: the cgroup quota only, so the replica's start-up environment (threads) stays as it was.
            targets[variant.deployment].resize(options.workers, options.cpu * variant.cpu_share, pool="live")
            earlier = [results[name][r] for r in sorted(results[name])]
            spec = loadgen.LoadSpec(users=users, spawn_rate=users, duration_s=options.duration_s,
                                    warmup_s=options.warmup_s, endpoint=variant.endpoint,
                                    processes=_generator(settings, users, earlier))  # fmt: skip
            with steps.step(f"round {round_no}: {name} ({users} users, {options.duration_s:g} s)"):
                url = urls[variant.deployment, variant.via_lb]
                return loadgen.run(url, spec, out_dir, prefix=f"{name}-{round_no}")

        rounds_run, stopped = measure_rounds(list(variants), measure, options, results)
        if stopped:
            steps.console.print(f"[yellow]{stopped}[/]")
    finally:
        with steps.step("stopping the benchmark deployments"):
            for target in targets.values():
                target.down()
    budgets = next(iter(targets.values())).budgets.reason if targets else ""
    summary = summarise(results, options, statuses, budgets, rounds_run)
    summary["time_budget_spent"] = stopped
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(summary, indent=2))
    summary["path"] = str(out_dir / "bench.json")
    return summary


def _generator(settings: StackConfig, users: int, earlier: list[loadgen.LoadResult]) -> int:
    """Locust processes for a variant's round: the gate's choice, from the variant's previous round (its req/s and
    the generator CPU a request cost); one process in the first round."""
    previous = earlier[-1] if earlier else None
    gate = settings.gate
    return loadgen.plan_processes(
        previous.rps if previous else None, users, previous, gate.max_generator_processes, gate.max_generator_load
    ).processes


def measure_rounds(
    variants: list[str],
    measure: Callable[[str, int], loadgen.LoadResult],
    options: BenchOptions,
    results: Results,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, str]:
    """Interleaved rounds into ``results``: every variant for ``options.rounds`` rounds, then rounds of just the
    variants behind an inconclusive verdict while another such round fits in the time budget.
    Returns (rounds run, why it stopped with verdicts still inconclusive, or "")."""
    started, budget_s = clock(), options.time_budget_min * 60
    todo, round_no = list(variants), 0
    while todo:
        round_no += 1
        round_started = clock()
        for name in todo:
            results.setdefault(name, {})[round_no] = measure(name, round_no)
        per_variant_s = (clock() - round_started) / len(todo)
        if round_no < options.rounds:
            continue
        todo = [name for name in variants if name in pending(results)]
        left = budget_s - (clock() - started)
        if todo and per_variant_s * len(todo) > left:
            return round_no, (
                f"inconclusive after {round_no} rounds: another round of {', '.join(todo)} would take "
                f"~{per_variant_s * len(todo):.0f} s, {max(left, 0):.0f} s of the time budget left"
            )
    return round_no, ""


def summarise(results: Results, options: BenchOptions, statuses: dict, budgets: str, rounds_run: int) -> dict:
    def median(runs: list[loadgen.LoadResult], field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs)

    variants = {}
    for name, by_round in results.items():
        runs = [by_round[r] for r in sorted(by_round)]
        if not runs:
            continue
        loads = [r.measured.generator_load for r in runs if r.measured.generator_load is not None]
        variants[name] = {
            "endpoint": VARIANTS[name].endpoint,
            "deployment": VARIANTS[name].deployment,
            "users": VARIANTS[name].users or options.users,
            "rps": median(runs, "rps"),
            "p50_ms": median(runs, "p50_ms"),
            "p95_ms": median(runs, "p95_ms"),
            "p99_ms": median(runs, "p99_ms"),
            "errors": sum(r.failures for r in runs),
            "requests": sum(r.requests for r in runs),
            "rounds": len(runs),
            "rounds_rps": [round(r.rps, 1) for r in runs],
            "generator_load": max(loads) if loads else None,  # the busiest Locust process, cores (1.0 = saturated)
            "cpu_warning": any(r.cpu_warning for r in runs),
        }
    comparisons = {}
    for name, estimate in judge_all(results).items():
        spec = RATIOS.get(name) or FIGURES[name]
        comparisons[name] = {
            **estimate.to_dict(),
            "label": spec.label,
            "kind": "ratio" if name in RATIOS else "figure",
            "failed_requests": failed_requests(results, name),
            "verdict": verdict(results, name, estimate),
        }
    return {
        "options": asdict(options),
        "rounds_run": rounds_run,
        "cpu_budgets": budgets,
        "variants": variants,
        "comparisons": comparisons,
        "bentos": {name: status["bento"] for name, status in statuses.items()},
    }
