"""The `modelops` command line: parse, delegate, map the outcome to an ExitStatus. Logic lives elsewhere."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from modelops.errors import ExitStatus, ModelopsError, NotDeployedError, UsageError
from modelops.gate.summary import SUITES
from modelops.ui import Steps
from stacks.config import PROJECT_ROOT, ConfigError, StackConfig, load_stack_config
from stacks.predictions import prediction_log_dir

if TYPE_CHECKING:
    from modelops.targets.local import LocalTarget

app = typer.Typer(
    help="Take a BentoML model from prototype to production: build, deploy, load-test, promote.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StackOpt = Annotated[str, typer.Option("--stack", "-s", help="stack name: its settings are stacks/Pulumi.<stack>.yaml")]
BentoOpt = Annotated[
    str | None, typer.Option("--bento", "-b", help="bento tag (default: modelops:bento, else the last build)")
]


def handled(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one red line and the right exit status (no traceback)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(int(ExitStatus.USAGE)) from None
        except ModelopsError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(int(exc.exit_status)) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: run `modelops down` if something was left running")
            raise typer.Exit(130) from None

    return wrapper


def _settings(stack: str, **overrides: dict[str, Any]) -> StackConfig:
    settings = load_stack_config(stack)
    cleaned = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in overrides.items()}
    cleaned = {k: v for k, v in cleaned.items() if v}
    return settings.with_overrides(**cleaned) if cleaned else settings


@app.command()
@handled
def build(
    retrain: Annotated[bool, typer.Option("--retrain", help="train the reference model again first")] = False,
    seed: Annotated[int, typer.Option(help="training seed (with --retrain, or when no model exists yet)")] = 1,
) -> None:
    """Train the reference model if needed, then build its bento. Prints the bento tag."""
    from bento import train
    from modelops import bentos

    steps = Steps(err)
    if retrain or not bentos.has_reference_model():
        with steps.step(f"training the reference model (seed {seed})"):
            result = train.save(seed=seed)
        err.print(f"  model {result.tag}: " + ", ".join(f"{k} {v:.3g}" for k, v in result.metrics.items()))
    with steps.step("building the bento"):
        tag = bentos.build()
    out.print(tag)


@app.command()
@handled
def up(
    stack: StackOpt = "local",
    replicas: Annotated[int | None, typer.Option(help="replicas (default: modelops:deploy.replicas)")] = None,
    workers: Annotated[int | None, typer.Option(help="workers per replica (default: modelops:deploy.workers)")] = None,
    bento: BentoOpt = None,
    monitoring: Annotated[
        bool, typer.Option("--monitoring", help="also start Prometheus (rules from the stack settings); down stops it")
    ] = False,
    autoscale: Annotated[
        bool,
        typer.Option(
            "--autoscale",
            help="keep the live pool on modelops:autoscale between deploy.min_replicas and max_replicas (a supervisor "
            "process; down stops it). Default: modelops:autoscale.enabled",
        ),
    ] = False,
) -> None:
    """Deploy a bento: N replicas behind the load balancer. Waits until every replica is healthy."""
    from modelops import bentos
    from modelops.gate.run import history_file
    from modelops.locking import stack_lock
    from modelops.promotion import record_up
    from modelops.targets import open_target

    settings = _settings(stack, deploy={"replicas": replicas, "workers": workers},
                         autoscale={"enabled": True if autoscale else None})  # fmt: skip
    if autoscale and settings.target != "local":
        scaler = "the HPA" if settings.target == "kind" else "the ASG's target tracking policy"
        raise UsageError(
            f"on {settings.target}, {scaler} scales the pools from modelops:deploy.min_replicas/max_replicas and "
            f"modelops:autoscale (`pulumi up -s {stack}` applies them): --autoscale is for the local target"
        )
    tag = bentos.resolve_default(bento, settings.bento)
    with Steps(err).step(f"deploying {tag} ({settings.deploy.replicas} replicas)") as note:
        target = open_target(settings, progress=note)
        histories = history_file(settings)
        with stack_lock(histories.path.parent, "modelops up"):
            status = target.up(tag, settings.deploy.replicas, settings.deploy.workers)
            record_up(histories, status.bento)
    if settings.autoscale.enabled and settings.target == "local":
        local = cast("LocalTarget", target)  # the local target (checked above)
        with Steps(err).step("starting the autoscaler of the live pool"):
            local.start_autoscaler("live")
        status = local.status()
    _print_status(status.to_dict())
    if monitoring:
        from modelops.monitor import service

        if settings.target != "local":
            raise UsageError("--monitoring starts Prometheus on this machine for the local target only: on kind/aws "
                             "scrape the pods or instances with your cluster's or account's Prometheus")  # fmt: skip
        local = cast("LocalTarget", target)  # the local target (checked above): open_target made a LocalTarget
        with Steps(err).step("starting Prometheus"):
            url = service.start(histories.path.parent, status, settings, deployment=local.deployment)
        out.print(f"Prometheus: [cyan]{url}[/] (rules: {histories.path.parent / 'monitoring' / 'rules.yml'})")


@app.command()
@handled
def status(
    stack: StackOpt = "local",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show the deployment: load balancer URL, live bento, replicas and their health."""
    from modelops.targets import open_target

    data = open_target(_settings(stack)).status().to_dict()
    if as_json:
        out.print_json(json.dumps(data))
    else:
        _print_status(data)


@app.command()
@handled
def down(stack: StackOpt = "local") -> None:
    """Stop everything the stack's deployment runs. Safe to run twice, and after a crashed `up`."""
    from modelops.gate.run import history_file
    from modelops.monitor import service
    from modelops.targets import open_target

    settings = _settings(stack)
    target = open_target(settings)
    prometheus = service.stop(history_file(settings).path.parent)
    stopped = target.down()
    if prometheus and stopped is not None:
        stopped.insert(0, prometheus)
    if stopped is None:  # kind/aws: both pools scaled to zero; the infrastructure stays until `pulumi destroy`
        out.print(f"both pools scaled to 0; `pulumi destroy -s {stack}` removes the infrastructure")
    else:
        out.print("stopped: " + "; ".join(stopped) if stopped else "nothing was running")


@app.command()
@handled
def config(stack: StackOpt = "local") -> None:
    """Validate and print the stack's settings (every default filled in)."""
    out.print_json(load_stack_config(stack).model_dump_json())


@app.command()
@handled
def render(
    stack: StackOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="directory to write the rendered resources into")],
) -> None:
    """Run the stack's Pulumi program under mocks and write every resource: Kubernetes objects as YAML, AWS
    resources' inputs as JSON. Needs no Pulumi engine, cloud or cluster."""
    from modelops.render import render_stack

    written = render_stack(stack, out_dir)
    out.print(f"wrote {len(written)} files to {out_dir}")


@app.command()
@handled
def gate(
    stack: StackOpt = "local",
    candidate: Annotated[
        str | None, typer.Option("--candidate", "-c", help="bento tag to prove (default: the last build)")
    ] = None,
    suites: Annotated[
        str, typer.Option(help="comma-separated suites to run, in this order: " + ", ".join(SUITES))
    ] = ",".join(SUITES),
    promote: Annotated[bool, typer.Option(help="promote when every suite passes")] = True,
    outputs: Annotated[
        Path | None,
        typer.Option(
            help="kind/aws: file of `pulumi stack output --json -s STACK` (default: $MODELOPS_OUTPUTS, "
            "else asks the Pulumi CLI)"
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="load the candidate pool at this URL instead of the stack's pool_urls output (needed on "
            "aws without modelops:aws.test_cidrs)"
        ),
    ] = None,
    canary: Annotated[
        str | None,
        typer.Option(
            help="on: promote through the canary (modelops:canary steps, rolled back on a live breach, exit 40); "
            "off: one-step blue/green switch (default: modelops:canary.enabled)"
        ),
    ] = None,
    generator: Annotated[
        str,
        typer.Option(
            help="local: Locust processes on this machine; cluster (kind): a Locust master Job and workers next "
            "to the service (modelops:kind.load_generator), results copied back"
        ),
    ] = "local",
) -> None:
    """Prove a candidate beside the live version: smoke, slo, failover, robustness, vertical, horizontal, autoscale,
    plan, soak, regression. Promotes it only when every required suite (modelops:gate.required_suites, plus
    regression when the live version came through the gate, plus autoscale when modelops:autoscale.enabled) passed:
    blue/green switch, zero failed requests. Exits with a code per failed gate; 20 when the evidence is incomplete
    or was distorted (a partial run, a saturated load generator)."""
    from modelops import bentos
    from modelops.gate.run import run_gate
    from modelops.targets import open_gate_target

    chosen = tuple(s.strip() for s in suites.split(",") if s.strip())
    if not chosen:
        raise UsageError(f"no suite selected (--suites {suites!r}): choose from {', '.join(SUITES)}")
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        raise UsageError(f"unknown suite(s) {', '.join(unknown)}: choose from {', '.join(SUITES)}")
    if canary not in (None, "on", "off"):
        raise UsageError(f"--canary must be on or off, got {canary!r}")
    settings = _settings(stack, canary={"enabled": None if canary is None else canary == "on"})
    runner = _load_runner(settings, generator, outputs)
    tag = bentos.resolve_default(candidate, "")
    steps = Steps(err)
    if generator == "cluster":
        from modelops.targets import open_target

        # Loads from inside the cluster reach the pool by its Service name: no host port (pool_urls) needed.
        target = open_target(settings, outputs_file=outputs, candidate_url=url)
    else:
        target = open_gate_target(settings, outputs_file=outputs, candidate_url=url)
    command = "modelops gate --stack " + stack + " --candidate " + tag
    summary = run_gate(
        target, settings, tag, steps, suites=chosen, promote=promote, command=command, load_runner=runner
    )
    _print_verdict(summary)
    raise typer.Exit(summary.exit_status)


def _load_runner(settings: StackConfig, generator: str, outputs: Path | None):
    """What runs the gate's loads: loadgen.run here, or the cluster's Locust (modelops/gate/cluster.py)."""
    from modelops.gate import loadgen

    if generator == "local":
        return loadgen.run
    if generator != "cluster":
        raise UsageError(f"--generator must be local or cluster, got {generator!r}")
    from modelops.gate.cluster import open_cluster_generator, require_cluster_generator
    from modelops.targets import stack_outputs

    require_cluster_generator(settings)
    kubeconfig = os.path.expanduser(settings.kind.kubeconfig) if settings.kind.kubeconfig else None
    return open_cluster_generator(settings, stack_outputs(settings, outputs), kubeconfig).run


@app.command()
@handled
def rollback(stack: StackOpt = "local") -> None:
    """Bring the previously live version back (deployed beside, then switched: zero failed requests)."""
    from modelops.gate.run import history_file
    from modelops.locking import stack_lock
    from modelops.promotion import rollback as do_rollback
    from modelops.targets import open_target

    settings = _settings(stack)
    with Steps(err).step("rolling back") as note:
        target = open_target(settings, progress=note)
        histories = history_file(settings)
        with stack_lock(histories.path.parent, f"modelops rollback --stack {stack}"):
            status = do_rollback(target, histories, note)
    out.print(f"live again: {status.bento} at {status.url}")


@app.command()
@handled
def history(
    stack: StackOpt = "local",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """What went live when, and from which gate summary."""
    from modelops.gate.run import history_file
    from modelops.locking import StackBusyError, stack_lock
    from modelops.promotion import reconcile
    from modelops.targets import open_target

    settings = _settings(stack)
    target = open_target(settings)
    try:
        live = target.status().bento
    except NotDeployedError:
        live = None
    histories = history_file(settings)
    try:
        with stack_lock(histories.path.parent, f"modelops history --stack {stack}"):
            records = reconcile(histories, live)
    except StackBusyError as busy:
        # A gate or rollback is running: its pending entry is in progress, not a crash's leftover. Show, don't settle.
        err.print(f"[yellow]note:[/] {busy}; pending entries are shown as they are")
        records = histories.load()
    from modelops.retrain import lineage_of

    lineages = {bento: lineage_of(bento) for bento in {e.bento for e in records.entries}}
    if as_json:
        out.print_json(json.dumps({**records.model_dump(mode="json"), "lineage": lineages}))
        return
    table = Table("#", "when", "action", "bento", "previous", "state", "model ← parent, data", "note", "summary")
    for e in records.entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
        lineage = lineages.get(e.bento) or {}
        model = lineage.get("model", "")
        if lineage.get("data_sha256"):
            model += f" ← {lineage.get('parent') or 'none'}, data {lineage['data_sha256'][:12]}"
        table.add_row(str(e.id), when, e.action, e.bento, e.previous or "", e.state, model, e.note, e.summary or "")
    out.print(table)
    out.print(f"live now: {live or 'nothing (not up)'}")


@app.command()
@handled
def retrain(
    data: Annotated[
        Path | None, typer.Option(help="CSV with the model's feature columns and a 'class' column (default: built-in)")
    ] = None,
    seed: Annotated[int, typer.Option(help="training seed")] = 1,
) -> None:
    """Train a new model version (lineage: data hash, parent version, metrics) and build its bento. Prints the bento
    tag: prove it with `modelops gate --candidate TAG`."""
    from modelops.retrain import retrain as do_retrain

    with Steps(err).step(f"retraining on {data or 'the built-in data set'} (seed {seed}) and building its bento"):
        result = do_retrain(data, seed)
    lineage = result.lineage
    err.print(f"  model {result.model} (parent {lineage['parent'] or 'none'}), data sha256 "
              f"{lineage['data_sha256'][:16]}…, {lineage['rows']} rows: "
              + ", ".join(f"{k} {v:.3g}" for k, v in lineage["metrics"].items()))  # fmt: skip
    out.print(result.bento)


@app.command()
@handled
def demo(stack: StackOpt = "local") -> None:
    """The main job on the local target, end to end (what `make demo` runs)."""
    from modelops.demo import run_demo

    result = run_demo(_settings(stack), Steps(err), out)
    summary = result.summary
    _print_verdict(summary, result.reports)
    # The demo worked when it printed a verdict: promote, reject and inconclusive are all outcomes of a working
    # pipeline (`modelops gate` keeps the verdict's exit code). Anything broken raised before this line.
    out.print(f"demo finished: the gate's verdict was {summary.verdict} (gate exit status {summary.exit_status})")


@app.command()
@handled
def bench(
    stack: StackOpt = "local",
    users: Annotated[int, typer.Option(help="concurrent Locust users")] = 64,
    duration: Annotated[float, typer.Option(help="measured seconds per variant and round")] = 15.0,
    rounds: Annotated[int, typer.Option(help="interleaved rounds of every variant, at least")] = 3,
    time_budget_min: Annotated[
        float,
        typer.Option(help="minutes of measuring after which no round is added for an inconclusive comparison"),
    ] = 12.0,
    cpu: Annotated[float, typer.Option(help="CPU budget of the replica, cores (where cgroups allow)")] = 1.0,
    omp: Annotated[
        bool, typer.Option("--omp/--no-omp", help="also an OpenMP model at half a core, threads unset vs set")
    ] = True,
    soak: Annotated[
        float,
        typer.Option(help="instead: MINUTES of production load, replica RSS and open FDs sampled every 10 s"),
    ] = 0.0,
    cache: Annotated[
        bool, typer.Option("--cache", help="instead: the prediction cache off vs on under a Zipf load (s = 1.1)")
    ] = False,
    peer: Annotated[
        str | None,
        typer.Option(help="instead: our replica vs this peer server (mlserver), same model, budget and load"),
    ] = None,
    peer_venv: Annotated[Path, typer.Option(help="venv holding the peer (make .venv-peer/.installed)")] = Path(
        ".venv-peer"
    ),
) -> None:
    """Benchmark (not a test): batched vs naive vs no-op predict paths, one replica direct vs via HAProxy, an OpenMP
    model with threads unset vs set; every ratio with its spread across rounds and met / missed / inconclusive."""
    from modelops.bench import BenchOptions, run_bench, run_soak
    from modelops.bench.tables import comparisons_table, omp_table, variants_table

    if soak > 0:
        _print_soak(run_soak(_settings(stack), soak, Steps(err)))
        return
    if peer is not None:
        _bench_peer(_settings(stack), peer, peer_venv, users, duration, rounds, cpu)
        return
    if cache:
        from modelops.bench import cache as cache_bench

        levels = (users // 8, users) if users >= 16 else (users,)  # light load (latency) and the bench's own
        cached = cache_bench.CacheBenchOptions(users=levels, duration_s=duration, rounds=rounds, cpu=cpu)
        out.print(cache_bench.render(cache_bench.run_cache_bench(_settings(stack), cached, Steps(err))))
        return

    options = BenchOptions(users=users, duration_s=duration, rounds=rounds, time_budget_min=time_budget_min,
                           cpu=cpu, omp=omp)  # fmt: skip
    summary = run_bench(_settings(stack), options, Steps(err))
    out.print(variants_table(summary))
    out.print(comparisons_table(summary))
    if (threads := omp_table(summary)) is not None:
        out.print(threads)
    if summary["time_budget_spent"]:
        out.print(f"[yellow]{summary['time_budget_spent']}[/]: raise --time-budget-min or run on a quieter machine")
    out.print(f"CPU budgets: {summary['cpu_budgets']}")
    out.print(f"results: {summary['path']}")


@app.command()
@handled
def monitor(
    stack: StackOpt = "local",
    once: Annotated[bool, typer.Option("--once", help="one sample, then exit (for scripts)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="with --once: machine-readable output")] = False,
    interval: Annotated[float, typer.Option(help="seconds each sample covers (the refresh period)")] = 2.0,
) -> None:
    """Live view of the deployment: req/s, p50/p95/p99 and 5xx per colour and replica, firing alerts, anomalies,
    the latest drift check. Ctrl-C stops it."""
    from rich.live import Live

    from modelops.gate.run import history_file
    from modelops.monitor import live, service
    from modelops.targets import open_target

    if interval <= 0:
        raise UsageError(f"--interval must be positive, got {interval}")
    if as_json and not once:
        raise UsageError("--json needs --once (the live view is for a terminal)")
    settings = _settings(stack)
    target = open_target(settings)
    state_dir = history_file(settings).path.parent
    reports = PROJECT_ROOT / "reports"
    if once:
        snapshot = live.sample(target, interval, service.running_prometheus(state_dir), reports)
        if as_json:
            out.print_json(json.dumps(snapshot.to_dict()))
        else:
            out.print(live.render(snapshot))
        return
    history = live.P95History(settings.monitor.anomaly_window, settings.monitor.anomaly_threshold)
    with Live(console=out, auto_refresh=False) as view:
        while True:
            snapshot = live.sample(target, interval, service.running_prometheus(state_dir), reports)
            if snapshot.prometheus is None:
                snapshot.anomaly = history.add(snapshot)
            view.update(live.render(snapshot), refresh=True)


@app.command()
@handled
def traffic(
    stack: StackOpt = "local",
    scenario: Annotated[
        str, typer.Option(help="normal, or shifted (one feature moved, as after an upstream change)")
    ] = "normal",
    requests: Annotated[int, typer.Option(help="requests to send (one row each)")] = 600,
    rate: Annotated[float, typer.Option(help="requests per second Locust offers")] = 40.0,
    feature: Annotated[str, typer.Option(help="shifted: the feature to move")] = "color_intensity",
    shift: Annotated[float, typer.Option(help="shifted: by this many training standard deviations")] = 1.5,
    feedback: Annotated[
        bool, typer.Option("--feedback", help="then append the true labels of the logged requests to the feedback file")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed of the drawn rows")] = 0,
) -> None:
    """Send client traffic of the reference wine model to the live deployment with Locust, logged as production
    traffic (held-out rows, optionally shifted) — for `modelops drift`, the gate's quality suite and the demo."""
    from modelops.bentos import describe
    from modelops.gate import loadgen
    from modelops.monitor import drift_report
    from modelops.monitor import traffic as scenarios
    from modelops.targets import open_target
    from stacks.predictions import feedback_file

    if scenario not in ("normal", "shifted"):
        raise UsageError(f"--scenario must be normal or shifted, got {scenario!r}")
    if requests < 1 or rate <= 0:
        raise UsageError("--requests must be at least 1 and --rate above 0")
    settings = _settings(stack)
    status = open_target(settings).status()
    metadata, _ = drift_report.load_model(describe(status.bento).models[0])
    s = scenarios.scenario(metadata, scenario, requests, feature, shift, seed=seed)  # type: ignore[arg-type]
    work = PROJECT_ROOT / "reports" / "traffic" / time.strftime("%Y%m%d-%H%M%S")
    payloads, _ = scenarios.write_scenario(s, work)
    spec = loadgen.LoadSpec(users=8, spawn_rate=8, duration_s=requests / rate, rate=rate, payload_file=payloads,
                            traffic="production")  # fmt: skip
    began = time.time()
    with Steps(err).step(f"{scenario} traffic to {status.url}: {requests} requests at {rate:g} req/s"):
        result = loadgen.run(status.url, spec, work, prefix=scenario)
    m = result.measured
    out.print(f"{m.requests} requests, {m.failures} failed, p95 {m.p95_ms or 0:.0f} ms; payloads and labels: {work}")
    if feedback:
        path = feedback_file(settings)
        count = scenarios.feedback_from_log(prediction_log_dir(settings), s.labels, path, since=began)
        out.print(f"{count} labelled rows appended to {path}")


@app.command()
@handled
def drift(
    stack: StackOpt = "local",
    window: Annotated[
        int | None, typer.Option(help="logged rows to compare, newest last (default: modelops:monitor.window)")
    ] = None,
    log: Annotated[
        Path | None, typer.Option(help="prediction log directory (default: modelops:monitor.log_dir)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="reference model tag (default: the model that wrote the newest rows)")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="report directory (default: reports/drift/<time>)")
    ] = None,
    calibrate: Annotated[
        bool, typer.Option("--calibrate", help="measure false-alarm rate and detection delay instead of checking")
    ] = False,
    windows: Annotated[int, typer.Option(help="--calibrate: windows of normal traffic")] = 100,
    trials: Annotated[int, typer.Option(help="--calibrate: shifted streams timed")] = 20,
    feature: Annotated[str, typer.Option(help="--calibrate: the feature to shift")] = "alcohol",
    shift: Annotated[float, typer.Option(help="--calibrate: shift, in training standard deviations")] = 1.0,
    jitter: Annotated[float, typer.Option(help="--calibrate: noise on resampled rows, in held-out stds")] = 0.3,
) -> None:
    """Compare the last logged inputs and predictions with the training reference: per-feature PSI + KS test,
    predicted class shares. Writes drift.json + drift.html; exits 30 on drift, 20 when too few rows."""
    from modelops.monitor import drift_report

    settings = _settings(stack)
    monitor = settings.monitor.model_copy(update={"window": window}) if window else settings.monitor
    if window is not None and window < 1:
        raise UsageError(f"--window must be at least 1, got {window}")
    if calibrate:
        _calibrate(monitor, model or "wine_classifier:latest", windows, trials, feature, shift, jitter)
        return
    log_dir = log or prediction_log_dir(settings)
    loader = (lambda _version: drift_report.store_reference(model)) if model else drift_report.store_reference
    report = drift_report.run_drift_check(log_dir, monitor, loader, window=window)
    target = out_dir or PROJECT_ROOT / "reports" / "drift" / time.strftime("%Y%m%d-%H%M%S")
    json_path, html_path = drift_report.write_report(report, target)
    colour = {"drift": "red", "no_drift": "green"}.get(report.status, "yellow")
    status = drift_report.exit_status(report)
    out.print(f"[bold {colour}]{report.status}[/] (exit {int(status)}) — {report.reason}")
    if report.features:
        table = Table("feature", "PSI", "KS p", "window mean", "training mean", "drifted")
        for f in report.features:
            table.add_row(f.feature, f"{f.psi:.3f}", f"{f.ks_pvalue:.2g}", f"{f.window_mean:.4g}",
                          f"{f.reference_mean:.4g}", "[red]yes[/]" if f.drifted else "no")  # fmt: skip
        out.print(table)
    if report.predictions is not None:
        p = report.predictions
        shares = ", ".join(
            f"{c} {p.window_shares[c]:.0%} (ref {p.reference_shares[c]:.0%})" for c in p.reference_shares
        )
        out.print(f"predictions: PSI {p.psi:.3f}, chi-square p {p.chi2_pvalue:.2g} — {shares}")
    out.print(f"report: {json_path}  {html_path}")
    raise typer.Exit(int(status))


def _calibrate(monitor, model: str, windows: int, trials: int, feature: str, shift: float, jitter: float) -> None:
    from modelops.monitor.calibrate import calibrate, heldout_rows
    from modelops.monitor.drift import reference_from_metadata
    from modelops.monitor.drift_report import load_model

    if windows < 1 or trials < 1:
        raise UsageError(f"--windows and --trials must be at least 1, got {windows} and {trials}")
    metadata, predict = load_model(model)
    with Steps(err).step(f"calibrating: {windows} normal windows of {monitor.window} rows, {trials} shifted streams"):
        result = calibrate(
            reference_from_metadata(metadata, predict), predict, heldout_rows(metadata), monitor,
            windows=windows, trials=trials, feature=feature, shift_std=shift, jitter=jitter,
        )  # fmt: skip
    out.print(
        f"false-alarm rate: {result.false_alarm_rate:.1%} ({result.false_alarms} of {result.windows} windows of "
        f"{result.window} normal rows, jitter {result.jitter:g})"
    )
    median = f"{result.median_delay:g}" if result.median_delay is not None else "n/a"
    out.print(
        f"detection delay ({result.feature} +{result.shift_std:g} sd): median {median} requests, max "
        f"{result.max_delay}, missed {result.missed} of {len(result.delays)} (checked every {result.step} requests, "
        f"up to {result.max_requests})"
    )
    out.print_json(json.dumps(result.to_dict()))


def _bench_peer(
    settings: StackConfig, peer: str, venv: Path, users: int, duration: float, rounds: int, cpu: float
) -> None:
    from modelops.bench.peer import PeerOptions, report_lines, run_peer

    if peer != "mlserver":
        raise UsageError(f"unknown peer {peer!r}: the one peer measured is mlserver (--peer mlserver)")
    options = PeerOptions(venv=venv.resolve(), users=users, duration_s=duration, rounds=rounds, cpu=cpu)
    summary = run_peer(settings, options, Steps(err))
    table = Table("server", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "requests", "rounds req/s",
                  "CPU ms/req", "throttled")  # fmt: skip
    for name, v in summary["variants"].items():
        cpu_ms = f"{v['cpu_ms_per_request']:.2f}" if v["cpu_ms_per_request"] is not None else "n/a"
        throttled = f"{v['throttled']:.0%}" if v["throttled"] is not None else "n/a"
        table.add_row(name, f"{v['rps']:.0f}", f"{v['p50_ms']:.0f}", f"{v['p95_ms']:.0f}", f"{v['p99_ms']:.0f}",
                      str(v["errors"]), str(v["requests"]), str(v["rounds_rps"]), cpu_ms, throttled)  # fmt: skip
    out.print(table)
    for line in report_lines(summary):
        out.print(line)
    out.print(f"results: {summary['path']}")


def _print_soak(summary: dict) -> None:
    out.print(f"soak: {summary['minutes']:g} min, {summary['requests']} requests, {summary['failures']} failed, "
              f"{summary['rps']:.0f} req/s, p95 {summary['p95_ms']:.0f} ms, {summary['samples']} samples")  # fmt: skip
    table = Table("replica", "RSS MB first", "last", "max", "drift", "FDs first", "last", "max", "goal")
    mark = {True: "[green]met[/]", False: "[red]missed[/]"}
    for name, r in summary["replicas"].items():
        table.add_row(name, f"{r['rss_mb_first']:.1f}", f"{r['rss_mb_last']:.1f}", f"{r['rss_mb_max']:.1f}",
                      f"{r['rss_drift']:+.1%}", str(r["fds_first"]), str(r["fds_last"]), str(r["fds_max"]),
                      mark[r["met"]])  # fmt: skip
    out.print(table)
    out.print(f"goal: RSS within ±{summary['goals']['rss_drift']:.0%}, FDs flat. results: {summary['path']}")


def _print_verdict(summary, reports: Path = PROJECT_ROOT / "reports") -> None:
    colour = {"promote": "green", "reject": "red"}.get(summary.verdict, "yellow")
    out.print(f"[bold {colour}]verdict: {summary.verdict}[/] (exit {summary.exit_status}) — {summary.reason}")
    plan = summary.capacity_plan
    if plan.rps_per_replica_at_slo:
        out.print(
            f"capacity plan: {plan.rps_per_replica_at_slo:.0f} req/s per replica at the SLO; for {plan.target_rps:g} "
            f"req/s run {plan.recommended_min_replicas}..{plan.recommended_max_replicas} replicas; ASG target "
            f"{plan.asg_target_requests_per_target_per_minute:g} req/target/min; HPA CPU target "
            f"{plan.hpa_target_cpu_utilization if plan.hpa_target_cpu_utilization is not None else 'n/a'}%"
        )
    for note in plan.notes:
        out.print(f"  note: {note}")
    out.print(f"report: {reports / summary.run_id / 'report.html'}")


def _print_status(data: dict) -> None:
    out.print(f"[bold]{data['target']}[/] load balancer: [cyan]{data['url']}[/]   live: {data['live']} {data['bento']}")
    if data.get("admin_url"):
        out.print(f"HAProxy stats: {data['admin_url']}")
    table = Table("pool", "bento", "weight", "replica", "url", "pid", "healthy")
    for colour, pool in data["pools"].items():
        for replica in pool["replicas"]:
            healthy = "[green]yes[/]" if replica["healthy"] else "[red]no[/]"
            table.add_row(colour, pool["bento"], f"{pool['weight']}%", replica["name"], replica["url"],
                          str(replica["pid"] or ""), healthy)  # fmt: skip
    out.print(table)
    for pool, scaler in (data.get("autoscale") or {}).items():
        state = "[green]running[/]" if scaler.get("running") else "[red]stopped[/]"
        held = " [yellow](held by the gate)[/]" if scaler.get("held") else ""
        value = scaler.get("value")
        seen = f"{value:.3g}" if isinstance(value, int | float) else "n/a"
        out.print(
            f"autoscaler ({pool} pool, {scaler['colour']}): {state}{held}  desired {scaler['desired']} / actual "
            f"{scaler['actual']}  (bounds {scaler['min_replicas']}-{scaler['max_replicas']}; "
            f"{scaler['metric_label']}: {seen}, target {scaler['target']:g}; {scaler['rps']:.1f} req/s)"
        )
        decisions = scaler.get("decisions") or []
        if decisions:
            table = Table("when", "from", "to", "why", title="last scaling decisions")
            for d in decisions[-10:]:
                when = time.strftime("%H:%M:%S", time.localtime(d["time"]))
                table.add_row(when, str(d["from"]), str(d["to"]), d["reason"])
            out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
