"""The whole gate run: deploy the candidate beside the live version, measure it suite by suite, judge each suite,
decide, write the outputs, and promote — or tear the candidate down, the live version untouched.

One gate at a time per stack: the run holds the stack's operation lock from start to end (modelops/locking.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from modelops import canary
from modelops.bentos import describe
from modelops.errors import BentoNotFoundError
from modelops.gate import judge, loadgen
from modelops.gate.capacity import plan as capacity_plan
from modelops.gate.endurance import Endurance
from modelops.gate.endurance_judge import judge_plan, judge_soak
from modelops.gate.loadgen import LoadResult
from modelops.gate.report import render as render_report
from modelops.gate.suites import Suites
from modelops.gate.summary import (
    BASELINE_SUITE,
    QUALITY_SUITE,
    SUITES,
    CapacityPlan,
    Scaling,
    SuiteResult,
    Summary,
    decide,
    point_latest,
)
from modelops.gate.summary import read as read_summary
from modelops.gate.summary import write as write_summary
from modelops.locking import stack_lock
from modelops.monitor import resources
from modelops.monitor.quality import live_window
from modelops.promotion import HistoryFile, baseline_summary, reconcile
from modelops.stackdir import stack_dir
from modelops.targets.base import Target
from modelops.ui import Steps
from stacks.config import AUTOSCALE_SUITE, PROJECT_ROOT, StackConfig
from stacks.predictions import prediction_log_dir


def history_file(settings: StackConfig) -> HistoryFile:
    """Where the stack's promotion history lives: beside the local target's state, else under .work/<stack>."""
    return HistoryFile(stack_dir(settings) / "history.json")


def required_suites(settings: StackConfig, has_baseline: bool, has_production_log: bool = False) -> list[str]:
    """The configured suites, plus regression when the live version has a gate baseline, plus quality when it has
    enough logged production traffic to judge the candidate's answers on."""
    required = list(settings.gate.required_suites)
    if has_baseline and BASELINE_SUITE not in required:
        required.append(BASELINE_SUITE)
    if has_production_log and QUALITY_SUITE not in required:
        required.append(QUALITY_SUITE)
    if settings.autoscale.enabled and AUTOSCALE_SUITE not in required:
        required.append(AUTOSCALE_SUITE)
    return [name for name in SUITES if name in required]


def live_model_of(bento: str) -> str | None:
    """The model version a live bento serves (what its replicas write into the prediction log)."""
    try:
        models = describe(bento).models
    except BentoNotFoundError:  # a live bento this store lacks (built on another machine)
        return None
    return models[0] if models else None


def has_production_log(settings: StackConfig, live_model: str | None) -> bool:
    if live_model is None:
        return False
    rows = live_window(prediction_log_dir(settings), live_model, settings.monitor.window)
    return len(rows) >= settings.gate.quality_min_rows


def scaling_of(suites: dict[str, SuiteResult], settings: StackConfig) -> Scaling:
    scaling = Scaling()
    horizontal, vertical = suites.get("horizontal"), suites.get("vertical")
    if horizontal and horizontal.steps:
        counts = settings.gate.horizontal_replicas
        scaling.horizontal.replicas = counts
        scaling.horizontal.rps = [horizontal.measured.get(f"rps_{n}") or 0.0 for n in counts]
        scaling.horizontal.efficiency = [horizontal.measured.get(f"efficiency_{n}") or 0.0 for n in counts]
    if vertical and vertical.steps:
        scaling.vertical.workers = settings.gate.vertical_workers
        scaling.vertical.rps = [vertical.measured.get(f"rps_{w}") or 0.0 for w in settings.gate.vertical_workers]
        scaling.vertical.ratio = vertical.measured.get("ratio")
    return scaling


def plan_of(suites: dict[str, SuiteResult], settings: StackConfig) -> CapacityPlan:
    first = settings.gate.horizontal_replicas[0]
    inputs = judge.capacity_inputs(suites, settings.slo.p95_ms, first)
    if inputs is None:
        return CapacityPlan(notes=["the horizontal suite did not pass: no curve to plan capacity from"])
    return capacity_plan(
        rps_per_replica_at_slo=inputs.per_replica_at_slo,
        efficiency=inputs.efficiency,
        target_rps=settings.gate.target_rps,
        cpu_budget=settings.deploy.cpu_per_replica * settings.deploy.workers,
        cpu_seconds_per_request=inputs.cpu_seconds_per_request,
    )


def measure_and_judge(
    suites: Suites,
    chosen: tuple[str, ...],
    settings: StackConfig,
    baseline: Summary | None,
    on_suite: Callable[[str, Callable[[], SuiteResult]], SuiteResult],
    live_model: str | None = None,
) -> dict[str, SuiteResult]:
    """Run the chosen suites in order; a failed smoke stops the run (the candidate is broken)."""
    gate, slo, limits = settings.gate, settings.slo, suites.limits
    budgets = suites.target.cpu_budgets()
    results: dict[str, SuiteResult] = {}
    # The plan and soak suites share one measurement: the plan's load, then the rest of the soak, same processes.
    endurance = Endurance(suites, lambda: plan_of(results, settings))
    steps: dict[str, Callable[[], SuiteResult]] = {
        "smoke": lambda: judge.judge_smoke(suites.smoke(), gate, limits),
        "quality": lambda: (
            judge.judge_quality(suites.quality(live_model), gate)
            if live_model
            else SuiteResult(status="skipped", reason="the live version's model is not in this BentoML store")
        ),
        "slo": lambda: judge.judge_slo(suites.slo(), slo, gate, limits),
        "horizontal": lambda: judge.judge_horizontal(suites.horizontal(), gate, slo, budgets),
        "vertical": lambda: judge.judge_vertical(suites.vertical(), gate, slo, budgets),
        "failover": lambda: judge.judge_failover(suites.failover(), gate, limits),
        "robustness": lambda: judge.judge_robustness(suites.robustness(), gate, settings.deploy.memory_mb),
        "autoscale": lambda: judge.judge_autoscale(suites.autoscale(), gate, limits),
        "plan": lambda: judge_plan(endurance.plan(), slo, gate, limits),
        "soak": lambda: (
            judge_soak(endurance.soak(), slo, gate, limits, settings.deploy.memory_mb, settings.limits.max_body_bytes)
            if "plan" not in results or results["plan"].status != "fail"
            else SuiteResult(status="skipped", reason="the plan suite failed: no soak at a load the pool cannot carry")
        ),
        "regression": lambda: judge.judge_regression(
            results, settings.model_dump(mode="json"), budgets.note, baseline, gate
        ),
    }
    try:
        for name in SUITES:
            if name not in chosen:
                continue
            results[name] = on_suite(name, steps[name])
            if name == "smoke" and results[name].status == "fail":
                break
    finally:
        endurance.close()
    return results


def run_gate(
    target: Target,
    settings: StackConfig,
    candidate_tag: str,
    steps: Steps,
    suites: tuple[str, ...] = SUITES,
    promote: bool = True,
    reports: Path | None = None,
    command: str = "modelops gate",
    generator_cgroup: Path | None = None,
    during_promotion: Callable[[], AbstractContextManager[object]] = nullcontext,
    load_runner: Callable[..., LoadResult] = loadgen.run,
) -> Summary:
    """Deploy the candidate beside the live version, run the suites on it, decide, write the outputs, and promote
    (or tear the candidate down). Returns the summary; its exit_status is the process's.
    ``generator_cgroup``: run the load generator inside this cgroup (its cgroup.procs file), e.g. a CPU budget.
    ``during_promotion``: entered around the promotion only, e.g. client traffic for the canary to judge (the demo;
    in production the clients are real).
    ``load_runner``: what runs each load (loadgen.run, or ClusterGenerator.run from modelops/gate/cluster.py)."""
    histories = history_file(settings)
    with stack_lock(histories.path.parent, command):
        return _run(target, settings, candidate_tag, steps, suites, promote, reports or PROJECT_ROOT / "reports",
                    histories, generator_cgroup, during_promotion, load_runner)  # fmt: skip


def _run(
    target: Target,
    settings: StackConfig,
    candidate_tag: str,
    steps: Steps,
    chosen: tuple[str, ...],
    promote: bool,
    reports: Path,
    histories: HistoryFile,
    generator_cgroup: Path | None,
    during_promotion: Callable[[], AbstractContextManager[object]],
    load_runner: Callable[..., LoadResult],
) -> Summary:
    started = time.time()
    target.release_scaling()  # settle anything a crashed gate left held
    live = target.status()
    history = reconcile(histories, live.bento)
    baseline_path = baseline_summary(history, live.bento)
    baseline = read_summary(baseline_path) if baseline_path else None
    live_model = live_model_of(live.bento)
    required = required_suites(settings, baseline is not None, has_production_log(settings, live_model))
    candidate = describe(candidate_tag)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + candidate.tag.split(":")[-1][:8]
    run_dir = reports / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if live.candidate is not None:
        with steps.step(f"removing a leftover candidate ({live.candidate.bento})"):
            target.remove_candidate()
    deploy = settings.deploy
    measuring = Suites(target=target, settings=settings, candidate=candidate, run_dir=run_dir,
                       generator_cgroup=generator_cgroup, runner=load_runner)  # fmt: skip
    try:
        with steps.step(f"deploying candidate {candidate.tag} beside live {live.bento}") as note:
            target.progress = note
            target.deploy_candidate(candidate.tag, deploy.replicas, deploy.workers)
        target.hold_scaling()

        def on_suite(name: str, suite: Callable[[], SuiteResult]) -> SuiteResult:
            with steps.step(f"suite {name}") as note:
                measuring.note = note
                # Memory and open files of every candidate replica process, through every suite.
                with resources.Sampler(resources.pool_processes(target, "candidate")) as sampler:
                    result = suite()
                result.resources = resources.summarise(sampler.samples)
            colour = {"pass": "green", "fail": "red"}.get(result.status, "yellow")
            steps.console.print(f"    [{colour}]{result.status}[/]: {result.reason}", highlight=False)
            return result

        results = measure_and_judge(measuring, chosen, settings, baseline, on_suite, live_model)
        verdict, exit_status, reason = decide(results, required)
        summary = Summary(
            run_id=run_id, verdict=verdict, exit_status=int(exit_status), reason=reason, candidate=candidate.tag,
            baseline=live.bento, baseline_summary=str(baseline_path) if baseline_path else None, target=target.name,
            stack=settings.stack, started=started, finished=time.time(), suites=results,
            scaling=scaling_of(results, settings), capacity_plan=plan_of(results, settings),
            settings=settings.model_dump(mode="json"), cpu_budgets=target.cpu_budgets().note,
            required_suites=required,
        )  # fmt: skip
        summary_path = write_summary(run_dir, summary)
        if verdict == "promote" and promote:
            with steps.step("restoring the candidate to its deploy shape"):
                measuring.to_shape(deploy.replicas)
            target.release_scaling()
            promoting = f"promoting {candidate.tag}: switching traffic, draining {live.bento}"
            with steps.step(promoting) as note, during_promotion():
                outcome = canary.promote(target, histories, candidate.tag, str(summary_path), settings, note)
            summary.promoted = outcome.promoted
            if not outcome.promoted:  # the canary's live analysis breached: rolled back, live untouched
                summary.exit_status, summary.reason = int(outcome.exit_status), outcome.reason
            summary_path = write_summary(run_dir, summary)
        else:
            with steps.step("removing the candidate (live version untouched)"):
                target.remove_candidate()
    except BaseException:
        status = target.status()
        if status.candidate is not None and status.candidate.bento == candidate.tag and status.bento != candidate.tag:
            target.remove_candidate()
        raise
    finally:
        target.release_scaling()
    render_report(summary, run_dir)
    point_latest(reports, run_dir)
    return summary
