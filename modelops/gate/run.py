"""The whole gate run: deploy the candidate beside the live version, measure it suite by suite, judge each suite,
decide, write the outputs, and promote — or tear the candidate down, the live version untouched.

One gate at a time per stack: the run holds the stack's operation lock from start to end (modelops/locking.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from modelops import bake, canary
from modelops.bentos import BentoInfo, describe
from modelops.errors import BentoNotFoundError
from modelops.gate import judge, loadgen
from modelops.gate.capacity import plan as capacity_plan
from modelops.gate.capacity import read_curve
from modelops.gate.endurance import Endurance
from modelops.gate.endurance_judge import judge_plan, judge_soak
from modelops.gate.labelled import model_facts
from modelops.gate.loadgen import LoadResult
from modelops.gate.quality_run import QualityInputs, labelled_production_rows, labelled_sets
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
from modelops.monitor import resources, synthetic
from modelops.monitor.concept import read_feedback
from modelops.monitor.quality import live_window
from modelops.promotion import HistoryFile, baseline_summary, reconcile
from modelops.stackdir import stack_dir
from modelops.targets.base import Target
from modelops.ui import Steps
from stacks.config import AUTOSCALE_SUITE, PROJECT_ROOT, StackConfig
from stacks.predictions import feedback_file, labels_db, prediction_log_dir


def history_file(settings: StackConfig) -> HistoryFile:
    """Where the stack's promotion history lives: beside the local target's state, else under .work/<stack>."""
    return HistoryFile(stack_dir(settings) / "history.json")


def required_suites(settings: StackConfig, has_baseline: bool, has_production_log: bool = False) -> list[str]:
    """The configured suites, plus regression when there is a live version to compare with (measured beside the
    candidate in this run; ``has_baseline``), plus quality whenever there
    is something to judge the candidate's answers on: labelled rows (a held-out set kept with a model,
    gate.quality_data, labelled production rows) or enough logged production traffic (``has_production_log``)."""
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


NOT_IN_STORE = "the live bento is not in this BentoML store: it cannot be measured beside the candidate (build it here)"


def in_store(bento: str) -> bool:
    """Whether this BentoML store holds ``bento`` (a live bento built on another machine may be missing)."""
    try:
        describe(bento)
    except BentoNotFoundError:
        return False
    return True


def has_production_log(settings: StackConfig, live_model: str | None) -> bool:
    if live_model is None or is_regressor(live_model):
        return False
    rows = live_window(prediction_log_dir(settings), live_model, settings.monitor.window)
    return len(rows) >= settings.gate.quality_min_rows


def quality_inputs(settings: StackConfig, candidate: BentoInfo, live_model: str | None) -> QualityInputs:
    """The quality suite's inputs. The live version is compared on the candidate's rows only when it takes the same
    features in the same order (else its answers would mean nothing: the candidate is judged alone)."""
    feedback = feedback_file(settings)
    cand = model_facts(candidate.models[0]) if candidate.models else None
    live = model_facts(live_model)
    if live is not None and cand is not None and live.feature_names != cand.feature_names:
        live = None
    return QualityInputs(log_dir=prediction_log_dir(settings), window=settings.monitor.window, feedback=feedback,
                         candidate=cand, live=live, labels_db=labels_db(settings))  # fmt: skip


def has_labelled_rows(settings: StackConfig, inputs: QualityInputs, live_model: str | None) -> bool:
    """Labelled rows exist to judge the candidate on (gate.quality_data is read here: a file that does not fit the
    candidate stops the gate before it deploys anything, with the fix)."""
    if labelled_sets(settings.gate, inputs):
        return True
    if live_model is None:
        return False
    if labelled_production_rows(inputs, live_model):
        return True
    if inputs.feedback is None or not inputs.feedback.exists():
        return False
    labels = read_feedback(inputs.feedback)
    logged = live_window(inputs.log_dir, live_model, inputs.window)
    return any((r.prediction_id or r.request_id, r.row) in labels for r in logged)


def is_regressor(model: str) -> bool:
    """The quality suite compares class labels: a regressor's values (bento/served.py) are not judged by it."""
    import bentoml

    from bento.served import REGRESSION, TASK

    try:
        return bentoml.models.get(model).info.metadata.get(TASK) == REGRESSION
    except (bentoml.exceptions.NotFound, ValueError):
        return False


def scaling_of(suites: dict[str, SuiteResult], settings: StackConfig) -> Scaling:
    scaling = Scaling()
    horizontal, vertical = suites.get("horizontal"), suites.get("vertical")
    if horizontal and horizontal.steps:
        counts = settings.gate.horizontal_replicas
        scaling.horizontal.replicas = counts
        scaling.horizontal.rps = [horizontal.measured.get(f"rps_{n}") or 0.0 for n in counts]
        scaling.horizontal.efficiency = [horizontal.measured.get(f"efficiency_{n}") for n in counts]
        scaling.horizontal.efficiency_interval = _intervals(horizontal, [f"efficiency_{n}" for n in counts])
        scaling.horizontal.exact = _exact(horizontal, settings, "replicas", counts)
    if vertical and vertical.steps:
        scaling.vertical.workers = settings.gate.vertical_workers
        scaling.vertical.rps = [vertical.measured.get(f"rps_{w}") or 0.0 for w in settings.gate.vertical_workers]
        scaling.vertical.ratio = vertical.measured.get("ratio")
        scaling.vertical.ratio_interval = (_intervals(vertical, ["ratio"]) or [[]])[0]
        scaling.vertical.exact = _exact(vertical, settings, "workers", settings.gate.vertical_workers)
    return scaling


def _intervals(suite: SuiteResult, keys: list[str]) -> list[list[float]]:
    found = [[suite.measured.get(f"{k}_low"), suite.measured.get(f"{k}_high")] for k in keys]
    return [[float(v) for v in pair if v is not None] for pair in found]


def _exact(suite: SuiteResult, settings: StackConfig, unit: str, values: list[int]) -> list[bool]:
    """Per configuration: did its curve find its capacity within the SLO (False: a lower bound)."""
    return [read_curve(f"{unit}={v}", suite.steps.get(f"{unit}={v}", []), settings.slo).exact for v in values]


def plan_of(suites: dict[str, SuiteResult], settings: StackConfig) -> CapacityPlan:
    first = settings.gate.horizontal_replicas[0]
    inputs = judge.capacity_inputs(suites, settings.slo, first)
    if inputs is None:
        return CapacityPlan(notes=["the horizontal suite did not pass: no curve to plan capacity from"])
    return capacity_plan(
        rps_per_replica_at_slo=inputs.per_replica_at_slo,
        efficiency=inputs.efficiency,
        target_rps=settings.gate.target_rps,
        cpu_budget=settings.deploy.cpu_per_replica * settings.deploy.workers,
        cpu_seconds_per_request=inputs.cpu_seconds_per_request,
        exact=inputs.exact,
        measured_at_users=inputs.measured_at_users,
    )


def measure_and_judge(
    suites: Suites,
    chosen: tuple[str, ...],
    settings: StackConfig,
    baseline: Summary | None,
    on_suite: Callable[[str, Callable[[], SuiteResult]], SuiteResult],
    live_model: str | None = None,
    quality: QualityInputs | None = None,
    live_bento: str | None = None,
) -> dict[str, SuiteResult]:
    """Run the chosen suites in order; a failed smoke stops the run (the candidate is broken).
    ``live_bento``: the live version, measured beside the candidate for regression (None: not in this store)."""
    gate, slo, limits = settings.gate, settings.slo, suites.limits
    budgets = suites.target.cpu_budgets()
    results: dict[str, SuiteResult] = {}
    history = judge.history_note(baseline, settings.model_dump(mode="json"), budgets.note)[0]
    # The plan and soak suites share one measurement: the plan's load, then the rest of the soak, same processes.
    endurance = Endurance(suites, lambda: plan_of(results, settings))
    steps: dict[str, Callable[[], SuiteResult]] = {
        "smoke": lambda: judge.judge_smoke(suites.smoke(), gate, limits),
        "quality": lambda: (
            judge.judge_quality(suites.quality(live_model, quality), gate)
            if quality is not None
            else SuiteResult(status="skipped", reason="no inputs for the quality suite")
        ),
        "slo": lambda: judge.judge_slo(suites.slo(), slo, gate, limits),
        "horizontal": lambda: judge.judge_horizontal(
            suites.horizontal(reference=live_bento if "regression" in chosen else None), gate, slo, budgets
        ),
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
            suites.sweeps.get("horizontal"), gate, slo, history, None if live_bento else NOT_IN_STORE
        ),
    }
    try:
        for name in SUITES:
            if name not in chosen:
                continue
            suites.take_retries()
            results[name] = judge.judge_retries(name, on_suite(name, steps[name]), suites.take_retries(), gate)
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
    # A promotion is final only after its bake: no new candidate on top of one still baking. A bake that passed and
    # only keeps the previous colour warm ends here (the leftover-candidate step below retires that colour).
    bake.require_settled(histories.path.parent)
    bake.stop(histories.path.parent, "a new gate began")
    live = target.status()
    history = reconcile(histories, live.bento)
    baseline_path = baseline_summary(history, live.bento)
    baseline = read_summary(baseline_path) if baseline_path else None
    live_model = live_model_of(live.bento)
    # The live version is the regression's reference, measured in this run; its stored summary is history. So
    # regression is required whenever there is a live version to compare with (or a stored baseline says there was).
    live_bento = live.bento if live.bento and in_store(live.bento) else None
    candidate = describe(candidate_tag)
    quality = quality_inputs(settings, candidate, live_model)
    judged = has_production_log(settings, live_model) or has_labelled_rows(settings, quality, live_model)
    required = required_suites(settings, baseline is not None or live_bento is not None, judged)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + candidate.tag.split(":")[-1][:8]
    run_dir = reports / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if live.candidate is not None:
        # A crashed gate or canary may have left it a share of live traffic: abort shifts that back first.
        with steps.step(f"removing a leftover candidate ({live.candidate.bento})"):
            target.abort()
    deploy = settings.deploy
    # The gate's loads carry the deployment's secret: replicas keep them out of the prediction log (synthetic.py).
    load_runner = synthetic.marking(load_runner, synthetic.for_stack(settings))
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

        results = measure_and_judge(measuring, chosen, settings, baseline, on_suite, live_model, quality, live_bento)
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
            target.abort()  # shift first: an interrupted canary may have left the candidate a share of live traffic
        raise
    finally:
        target.release_scaling()
    render_report(summary, run_dir)
    point_latest(reports, run_dir)
    return summary
