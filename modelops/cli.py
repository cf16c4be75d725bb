"""The `modelops` command line: parse, delegate, map the outcome to an ExitStatus. Logic lives elsewhere."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer
from rich.console import Console
from rich.table import Table

from modelops.errors import ExitStatus, ModelopsError, NotDeployedError, UsageError
from modelops.gate.summary import FAILED_STATUS, SUITES
from modelops.ui import Steps
from stacks.config import DEMO_STACK, PROJECT_ROOT, ConfigError, StackConfig, load_stack_config
from stacks.predictions import prediction_log_dir

if TYPE_CHECKING:
    from modelops.targets.local import LocalTarget


def _exit_codes(*statuses: ExitStatus) -> str:
    """Exit statuses by their names in ExitStatus (docs/gate.md explains each): every one for `modelops --help`, a
    command's own in its help."""
    chosen = sorted(set(statuses or ExitStatus))
    named = (f"{status.value} {status.name.lower().replace('_', ' ')}" for status in chosen)
    return "Exit codes: " + "; ".join(named)


# The codes each command can end with, named in its --help (the names and numbers come from ExitStatus).
COMMON_CODES = (ExitStatus.OK, ExitStatus.ERROR, ExitStatus.USAGE)
LOCKED_CODES = (*COMMON_CODES, ExitStatus.STACK_BUSY)  # commands that take the stack's operation lock
COMMAND_CODES: dict[str, tuple[ExitStatus, ...]] = {
    "up": LOCKED_CODES,
    "down": LOCKED_CODES,
    # A failed suite's own code (FAILED_STATUS: the first failure in suite order decides), inconclusive, and the
    # canary's rollback after a promotion.
    "gate": (*LOCKED_CODES, *FAILED_STATUS.values(), ExitStatus.INCONCLUSIVE, ExitStatus.CANARY_ROLLED_BACK),
    "rollback": LOCKED_CODES,
    "bake": (*COMMON_CODES, ExitStatus.BAKE_ROLLED_BACK),
    "abort": LOCKED_CODES,
    "retrain": (*COMMON_CODES, ExitStatus.QUALITY_FAILED),  # worse than its parent: refused
    "drift": (*COMMON_CODES, ExitStatus.INCONCLUSIVE, ExitStatus.DRIFT_DETECTED),  # inconclusive: too few rows
}


app = typer.Typer(
    help="Take a BentoML model from prototype to production: build, deploy, load-test, promote.",
    epilog=_exit_codes(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StackOpt = Annotated[
    str,
    typer.Option(
        "--stack", "-s", envvar="MODELOPS_STACK", help="stack name: its settings are stacks/Pulumi.<stack>.yaml"
    ),
]
BentoOpt = Annotated[
    str | None, typer.Option("--bento", "-b", help="bento tag (default: modelops:bento, else the last build)")
]
# Options with a fixed set of values are Literal types: typer makes each a choice that `--help` lists and that refuses
# a wrong value naming the choices (exit 2). Spelled here rather than imported from the modules that use them
# (monitor/traffic.py's Kind …): those load numpy and httpx, which every `modelops --help` would then wait for.
# tests/modelops/test_cli.py checks that both agree.
Generator = Literal["local", "cluster"]
Scenario = Literal["normal", "shifted"]
Peer = Literal["mlserver"]
YesOpt = Annotated[
    bool,
    typer.Option("--yes", "-y", help="kind/aws: go ahead without asking (needed when stdin is not a terminal)"),
]


def _version(shown: bool) -> None:
    if shown:
        import importlib.metadata
        import platform

        versions = {name: importlib.metadata.version(name) for name in ("modelops", "bentoml", "locust", "pulumi")}
        out.print(" ".join(f"{name} {v}" for name, v in versions.items()) + f" (Python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the versions and exit")
    ] = False,
) -> None:
    """Take a BentoML model from prototype to production: build, deploy, load-test, promote."""


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
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME:TAG of a model saved with bentoml.sklearn, bentoml.xgboost or bentoml.lightgbm: serve it with "
            "the platform's template (default: the reference wine model)",
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="CSV whose header names the features (+ optional label column): drift reference and golden"),
    ] = None,
    label_column: Annotated[str, typer.Option(help="the label column of --reference, if it has one")] = "label",
    model_store: Annotated[
        Path | None,
        typer.Option(
            help="a BentoML store (a BENTOML_HOME, e.g. ~/bentoml) to import --model from [env: MODELOPS_MODEL_STORE]"
        ),
    ] = None,
    accelerate: Annotated[
        bool, typer.Option(help="compile tree ensembles (ONNX Runtime), prove and measure; keep the fastest")
    ] = True,
    profile_only: Annotated[
        bool,
        typer.Option(
            help="with --model: record its profile and --reference (for drift with a bento of your own); no bento"
        ),
    ] = False,
) -> None:
    """Build a bento: the reference model (trained if needed), or with --model any saved tabular model through the
    platform's service template. Prints the bento tag."""
    from bento import train
    from modelops import bentos, modelbuild

    steps = Steps(err)
    if model:
        with steps.step(f"building the template bento for {model}"):
            built = modelbuild.build_model(
                model,
                reference=reference,
                label_column=label_column,
                store=modelbuild.user_store(model_store),
                accelerate=accelerate,
                say=lambda line: err.print(f"  {line}"),
                profile_only=profile_only,
            )
        out.print(built.bento or built.model)
        return
    if retrain or not bentos.has_reference_model():
        with steps.step(f"training the reference model (seed {seed})"):
            result = train.save(seed=seed)
        err.print(f"  model {result.tag}: " + ", ".join(f"{k} {v:.3g}" for k, v in result.metrics.items()))
    with steps.step("building the bento"):
        # The reference model is one user of the template: the same profile and acceleration step as --model.
        reference_model = f"{bentos.REFERENCE_MODEL}:latest"
        tag = str(modelbuild.build_model(reference_model, say=lambda line: err.print(f"  {line}"), force=False).bento)
    out.print(tag)


@app.command(epilog=_exit_codes(*COMMAND_CODES["up"]))
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
    """Deploy a bento: N replicas behind the load balancer. Waits until every replica is healthy. Without --bento:
    the version the promotion history says is live (a gate proved it), else modelops:bento, else the last build.
    On a local stack whose HAProxy died, restarts it from the recorded state (the replicas keep serving)."""
    from modelops import bentos
    from modelops.gate.run import history_file
    from modelops.locking import stack_lock
    from modelops.promotion import live_version, record_up, serving
    from modelops.targets import open_target

    settings = _settings(stack, deploy={"replicas": replicas, "workers": workers},
                         autoscale={"enabled": True if autoscale else None})  # fmt: skip
    if autoscale and settings.target != "local":
        scaler = "the HPA" if settings.target == "kind" else "the ASG's target tracking policy"
        raise UsageError(
            f"on {settings.target}, {scaler} scales the pools from modelops:deploy.min_replicas/max_replicas and "
            f"modelops:autoscale (`pulumi up -s {stack}` applies them): --autoscale is for the local target"
        )
    histories = history_file(settings)
    # Never the last build by default when a version is recorded live: an unproven build must not ship by accident.
    recorded = None if bento else live_version(histories)
    tag = recorded or bentos.resolve_default(bento, settings.bento)
    if recorded:
        err.print(f"no --bento: deploying {tag}, the version the promotion history records as live")
    with Steps(err).step(f"deploying {tag} ({settings.deploy.replicas} replicas)") as note:
        target = open_target(settings, progress=note)
        with stack_lock(histories.path.parent, "modelops up"):
            new_deployment = not serving(target)
            status = target.up(tag, settings.deploy.replicas, settings.deploy.workers)
            record_up(histories, status.bento, new_deployment=new_deployment)
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
        with Steps(err).step("starting the drift monitor, Alertmanager and Prometheus"):
            url = service.start(histories.path.parent, status, settings, deployment=local.deployment,
                                log_dir=prediction_log_dir(settings))  # fmt: skip
        out.print(f"Prometheus: [cyan]{url}[/] (rules: {histories.path.parent / 'monitoring' / 'rules.yml'})")
        _print_monitoring(histories.path.parent, settings)


@app.command()
@handled
def status(
    stack: StackOpt = "local",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show the deployment: load balancer URL, live bento, replicas and their health."""
    from modelops.bake import read_status
    from modelops.gate.run import history_file
    from modelops.targets import open_target

    settings = _settings(stack)
    data = open_target(settings).status().to_dict()
    data["bake"] = read_status(history_file(settings).path.parent)
    if as_json:
        out.print_json(json.dumps(data))
    else:
        _print_status(data)


@app.command(epilog=_exit_codes(*COMMAND_CODES["down"]))
@handled
def down(stack: StackOpt = "local", yes: YesOpt = False) -> None:
    """Stop everything the stack's deployment runs. Safe to run twice, and after a crashed `up`. On kind/aws it
    asks first (--yes: don't)."""
    from modelops import bake
    from modelops.confirm import confirm_change
    from modelops.gate.run import history_file
    from modelops.locking import stack_lock
    from modelops.monitor import service
    from modelops.targets import open_target

    settings = _settings(stack)
    target = open_target(settings)
    confirm_change(settings, "scale both pools to 0 replicas (clients get errors until `modelops up`)", yes=yes)
    state_dir = history_file(settings).path.parent
    # Under the stack's lock: a gate, rollback or abort half way through is not cut off (down says who holds it).
    with stack_lock(state_dir, f"modelops down --stack {stack}"):
        watcher = bake.stop(state_dir, "`modelops down`")  # first: it would roll back what stops next
        prometheus = service.stop(state_dir)
        stopped = target.down()
    for first in (prometheus, watcher):
        if first and stopped is not None:
            stopped.insert(0, first)
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


@app.command(epilog=_exit_codes(*COMMAND_CODES["gate"]))
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
        bool | None,
        typer.Option(
            "--canary/--no-canary",
            help="promote through the canary (modelops:canary steps, rolled back on a live breach, exit 40), or in "
            "one blue/green switch (default: modelops:canary.enabled)",
            show_default=False,
        ),
    ] = None,
    generator: Annotated[
        Generator,
        typer.Option(
            help="local: Locust processes on this machine; cluster (kind): a Locust master Job and workers next "
            "to the service (modelops:kind.load_generator), results copied back"
        ),
    ] = "local",
    yes: YesOpt = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="the summary (summary.json) on stdout; the verdict lines go to stderr")
    ] = False,
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
    settings = _settings(stack, canary={"enabled": canary})
    runner = _load_runner(settings, generator, outputs)
    tag = bentos.resolve_default(candidate, "")
    steps = Steps(err)
    if generator == "cluster":
        from modelops.targets import open_target

        # Loads from inside the cluster reach the pool by its Service name: no host port (pool_urls) needed.
        target = open_target(settings, outputs_file=outputs, candidate_url=url)
    else:
        target = open_gate_target(settings, outputs_file=outputs, candidate_url=url)
    if promote:  # asked once the inputs are known good, before the gate's minutes of load
        from modelops.confirm import confirm_change

        confirm_change(settings, f"promote {tag} to live traffic if it passes", yes=yes,
                       alternative="or --no-promote to prove it without promoting")  # fmt: skip
    command = "modelops gate --stack " + stack + " --candidate " + tag
    summary = run_gate(
        target, settings, tag, steps, suites=chosen, promote=promote, command=command, load_runner=runner
    )
    if as_json:
        out.print_json(summary.model_dump_json())
    _print_verdict(summary, shown=err if as_json else out)
    raise typer.Exit(summary.exit_status)


def _load_runner(settings: StackConfig, generator: Generator, outputs: Path | None):
    """What runs the gate's loads: loadgen.run here, or the cluster's Locust (modelops/gate/cluster.py)."""
    from modelops.gate import loadgen

    if generator == "local":
        return loadgen.run
    from modelops.gate.cluster import open_cluster_generator, require_cluster_generator
    from modelops.targets import stack_outputs

    require_cluster_generator(settings)
    kubeconfig = os.path.expanduser(settings.kind.kubeconfig) if settings.kind.kubeconfig else None
    return open_cluster_generator(settings, stack_outputs(settings, outputs), kubeconfig).run


@app.command(epilog=_exit_codes(*COMMAND_CODES["rollback"]))
@handled
def rollback(stack: StackOpt = "local", yes: YesOpt = False) -> None:
    """Bring the previously live version back (deployed beside, then switched: zero failed requests; within the
    rollback window after a promotion its pool is still up, so it is a switch). Only to a version live earlier in
    this deployment whose request schema matches the live one's: otherwise it refuses, naming both. On kind/aws it
    asks first (--yes: don't)."""
    from modelops import bake
    from modelops.confirm import confirm_change
    from modelops.gate.run import history_file
    from modelops.locking import stack_lock
    from modelops.promotion import rollback as do_rollback
    from modelops.targets import open_target

    settings = _settings(stack)
    confirm_change(settings, "switch live traffic back to the previously live version", yes=yes)
    with Steps(err).step("rolling back") as note:
        target = open_target(settings, progress=note)
        histories = history_file(settings)
        with stack_lock(histories.path.parent, f"modelops rollback --stack {stack}"):
            # A bake still watching the version rolled away from must not roll back or retire anything after us.
            bake.stop(histories.path.parent, "rolled back by hand (`modelops rollback`)")
            status = do_rollback(target, histories, note)
    out.print(f"live again: {status.bento} at {status.url}")


@app.command(name="bake", epilog=_exit_codes(*COMMAND_CODES["bake"]))
@handled
def bake_command(
    stack: StackOpt = "local",
    wait: Annotated[
        bool, typer.Option("--wait", help="block until the bake is settled; exit 41 if it rolled back")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The bake after the last promotion: the new live version watched on client traffic (SLO, errors, memory
    trend), rolled back automatically on a breach. Exits 41 when it rolled back, 1 when it failed or could not roll
    back, else 0."""
    from modelops import bake
    from modelops.gate.run import history_file
    from modelops.waiting import wait_until

    state_dir = history_file(_settings(stack)).path.parent
    first = bake.read_status(state_dir)
    if first is None:
        raise UsageError(f"no bake has run on stack {stack!r}: a promotion (`modelops gate`) starts one")
    data: dict = first

    def settled() -> bool:
        data.update(bake.read_status(state_dir) or {})
        return data.get("state") in bake.SETTLED or not data["running"]

    if wait:
        wait_until(settled, timeout=float(data["bake_s"]) + 3600, interval=1.0)
    if as_json:
        out.print_json(json.dumps(data))
    else:
        _print_bake(data)
    state = data.get("state")
    if state == bake.ROLLED_BACK:
        raise typer.Exit(int(ExitStatus.BAKE_ROLLED_BACK))
    if state in (bake.ROLLBACK_FAILED, bake.FAILED) or (wait and state == bake.BAKING):
        raise typer.Exit(int(ExitStatus.ERROR))


def _print_bake(data: dict) -> None:
    state = data.get("state", "?")
    colour = {"passed": "green", "rolled_back": "red", "rollback_failed": "red", "failed": "red"}.get(state, "yellow")
    since = time.strftime("%H:%M:%S", time.localtime(float(data.get("started", 0))))
    running = "watcher running" if data.get("running") else "watcher not running"
    out.print(f"bake of {data.get('bento')}: [bold {colour}]{state}[/] (since {since}, {data.get('bake_s', 0):g} s; "
              f"{running}){' — ' + data['reason'] if data.get('reason') else ''}")  # fmt: skip
    windows = data.get("windows") or []
    if windows:
        last = windows[-1]
        out.print(f"  {len(windows)} window(s) judged so far, {data.get('streak', 0)} breached in a row; last: "
                  f"{last['requests']} requests, p95 {last['p95_ms']} ms, RSS {last['rss_mb']} MB"
                  f"{' — ' + '; '.join(last['breaches']) if last['breaches'] else ''}")  # fmt: skip
    if data.get("previous") and not data.get("previous_retired"):
        until = time.strftime("%H:%M:%S", time.localtime(float(data.get("window_until", 0))))
        out.print(f"  rollback window: {data['previous']} kept warm until {until} (`modelops rollback` is a switch)")


@app.command(epilog=_exit_codes(*COMMAND_CODES["abort"]))
@handled
def abort(stack: StackOpt = "local", yes: YesOpt = False) -> None:
    """Take the candidate out: its share of live traffic to 0 first, then drained and removed, with a history entry;
    the live version untouched. Recovers from a gate or canary that crashed or was killed half way. On kind/aws it
    asks first (--yes: don't)."""
    from modelops.confirm import confirm_change
    from modelops.gate.run import history_file
    from modelops.locking import stack_lock
    from modelops.promotion import abort as do_abort
    from modelops.targets import open_target

    settings = _settings(stack)
    confirm_change(settings, "take the candidate out (its share of live traffic to 0, its pool removed)", yes=yes)
    with Steps(err).step("aborting the candidate") as note:
        target = open_target(settings, progress=note)
        histories = history_file(settings)
        with stack_lock(histories.path.parent, f"modelops abort --stack {stack}"):
            aborted = do_abort(target, histories, note)
            live = target.status()
    if aborted is None:
        out.print(f"nothing to abort: no candidate pool; live: {live.bento} at {live.url}")
    else:
        out.print(f"aborted {aborted}; live: {live.bento} at {live.url}")


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


@app.command(epilog=_exit_codes(*COMMAND_CODES["retrain"]))
@handled
def retrain(
    data: Annotated[
        Path | None, typer.Option(help="CSV with the model's feature columns and a 'class' column (default: built-in)")
    ] = None,
    seed: Annotated[int, typer.Option(help="training seed")] = 1,
    force: Annotated[
        bool, typer.Option("--force", help="store and build a model worse than its parent on labelled rows (warned)")
    ] = False,
) -> None:
    """Train a new model version (lineage: data hash, parent version, metrics) and build its bento. Prints the bento
    tag: prove it with `modelops gate --candidate TAG`. A model worse than its parent on held-out rows is refused
    (exit 17, nothing stored) unless --force."""
    from modelops.retrain import retrain as do_retrain

    warnings: list[str] = []
    with Steps(err).step(f"retraining on {data or 'the built-in data set'} (seed {seed}) and building its bento"):
        result = do_retrain(data, seed, force=force, warn=warnings.append)
    for warning in warnings:
        err.print(f"[bold red]WARNING[/]: {warning}", highlight=False)
    if result.parent_check is not None and not result.parent_check.flagged:
        err.print("  against its parent: " + "; ".join(result.parent_check.findings), highlight=False)
    lineage = result.lineage
    err.print(f"  model {result.model} (parent {lineage['parent'] or 'none'}), data sha256 "
              f"{lineage['data_sha256'][:16]}…, {lineage['rows']} rows: "
              + ", ".join(f"{k} {v:.3g}" for k, v in lineage["metrics"].items()))  # fmt: skip
    out.print(result.bento)


@app.command()
@handled
def demo() -> None:
    """The main job on the local target, end to end (what `make demo` runs), on a stack of its own (`demo`: the local
    stack's settings, its own deployment and history), so a deployment you have up on `local` is never touched.
    `modelops down --stack demo` stops what an interrupted demo left running."""
    from modelops.demo import run_demo

    result = run_demo(_settings(DEMO_STACK), Steps(err), out)
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
        Peer | None,
        typer.Option(help="instead: our replica vs this peer server, same model, budget and load"),
    ] = None,
    peer_venv: Annotated[Path, typer.Option(help="venv holding the peer (make .venv-peer/.installed)")] = Path(
        ".venv-peer"
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="the results (the file `results:` names) on stdout instead of tables")
    ] = False,
) -> None:
    """Benchmark (not a test): batched vs naive vs no-op predict paths, one replica direct vs via HAProxy, an OpenMP
    model with threads unset vs set; every ratio with its spread across rounds and met / missed / inconclusive."""
    from modelops.bench import BenchOptions, run_bench, run_soak

    show: Callable[[dict], None]
    if soak > 0:
        show, summary = _print_soak, run_soak(_settings(stack), soak, Steps(err))
    elif peer is not None:
        show, summary = _print_peer, _bench_peer(_settings(stack), peer_venv, users, duration, rounds, cpu)
    elif cache:
        from modelops.bench import cache as cache_bench

        levels = (users // 8, users) if users >= 16 else (users,)  # light load (latency) and the bench's own
        cached = cache_bench.CacheBenchOptions(users=levels, duration_s=duration, rounds=rounds, cpu=cpu)
        show, summary = _print_cache, cache_bench.run_cache_bench(_settings(stack), cached, Steps(err))
    else:
        options = BenchOptions(users=users, duration_s=duration, rounds=rounds, time_budget_min=time_budget_min,
                               cpu=cpu, omp=omp)  # fmt: skip
        show, summary = _print_bench, run_bench(_settings(stack), options, Steps(err))
    if as_json:
        out.print_json(json.dumps(summary))
        err.print(f"results: {summary['path']}")
    else:
        show(summary)


def _print_cache(summary: dict) -> None:
    from modelops.bench import cache as cache_bench

    out.print(cache_bench.render(summary))


def _print_bench(summary: dict) -> None:
    from modelops.bench.tables import comparisons_table, omp_table, variants_table

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
    calibrate: Annotated[
        bool, typer.Option("--calibrate", help="count AnomalyFlagged's false alarms over simulated normal days")
    ] = False,
    rate: Annotated[float, typer.Option(help="--calibrate: simulated requests per second")] = 10.0,
    days: Annotated[float, typer.Option(help="--calibrate: simulated days")] = 1.0,
    seed: Annotated[int, typer.Option(help="--calibrate: random seed")] = 0,
) -> None:
    """Live view of the deployment: req/s, p50/p95/p99 and 5xx per colour and replica, firing alerts, anomalies,
    the latest drift check. Ctrl-C stops it. --calibrate measures the anomaly rule instead (no deployment needed)."""
    if calibrate:
        from modelops.monitor.anomaly_day import run_and_print

        run_and_print(out, _settings(stack), rate, days, seed, as_json)
        return
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
def alerts(
    stack: StackOpt = "local",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """What fires now, from the deployment's Alertmanager (`modelops up --monitoring` starts it): name, severity,
    since when, the receiver it was routed to, its summary."""
    from modelops.gate.run import history_file
    from modelops.monitor import alertmanager, service

    settings = _settings(stack)
    url = service.running_alertmanager(history_file(settings).path.parent)
    if url is None:
        raise NotDeployedError(
            f"no Alertmanager runs for stack {stack!r}: start the deployment with "
            f"`modelops up --stack {stack} --monitoring` (kind/aws: query your own Alertmanager)"
        )
    found = alertmanager.alerts(url)
    if as_json:
        out.print_json(json.dumps({"alertmanager": url, "alerts": [a.to_dict() for a in found]}))
        return
    if not found:
        out.print(f"nothing fires (Alertmanager at {url})")
        return
    table = Table("alert", "severity", "since", "state", "receiver", "labels", "summary", title=f"firing at {url}")
    for a in found:
        labels = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k not in ("job", "instance"))
        style = "red" if a.severity == "page" else "yellow"
        table.add_row(f"[{style}]{a.name}[/]", a.severity, a.since, a.state, ", ".join(a.receivers), labels, a.summary)
    out.print(table)


@app.command()
@handled
def traffic(
    stack: StackOpt = "local",
    scenario: Annotated[
        Scenario, typer.Option(help="normal, or shifted (one feature moved, as after an upstream change)")
    ] = "normal",
    requests: Annotated[int, typer.Option(help="requests to send (one row each)")] = 600,
    rate: Annotated[float, typer.Option(help="requests per second Locust offers")] = 40.0,
    feature: Annotated[str, typer.Option(help="shifted: the feature to move")] = "color_intensity",
    shift: Annotated[float, typer.Option(help="shifted: by this many training standard deviations")] = 1.5,
    feedback: Annotated[
        bool, typer.Option("--feedback", help="then store the true labels of the logged requests (the label store)")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed of the drawn rows")] = 0,
) -> None:
    """Send client traffic of the reference wine model to the live deployment with Locust, logged as production
    traffic (held-out rows, optionally shifted) — for `modelops drift`, the gate's quality suite and the demo."""
    from modelops.bentos import describe
    from modelops.gate import loadgen
    from modelops.monitor import drift_report
    from modelops.monitor import traffic as scenarios
    from modelops.monitor.labels import LabelStore
    from modelops.targets import open_target
    from stacks.predictions import labels_db

    if requests < 1 or rate <= 0:
        raise UsageError("--requests must be at least 1 and --rate above 0")
    settings = _settings(stack)
    status = open_target(settings).status()
    metadata, _ = drift_report.load_model(describe(status.bento).models[0])
    s = scenarios.scenario(metadata, scenario, requests, feature, shift, seed=seed)
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
        store = LabelStore(labels_db(settings))
        count = scenarios.feedback_to_store(prediction_log_dir(settings), s.labels, store, since=began)
        out.print(f"{count} labelled rows stored in {store.path}")


labels_app = typer.Typer(help="Ground-truth labels of logged predictions (the stack's label store).")
app.add_typer(labels_app, name="labels")


@labels_app.command("add")
@handled
def labels_add(
    file: Annotated[Path, typer.Argument(help='JSONL: {"prediction_id": "<X-Prediction-Id>", "row": 0, "label": …}')],
    stack: StackOpt = "local",
) -> None:
    """Store labels (by prediction id, or by a client's request id when only one logged request used it), joined
    to their logged predictions: `modelops quality` and the gate's quality suite read them."""
    from bento.prediction_log import read_window
    from modelops.monitor.labels import LabelError, LabelStore, add_file
    from stacks.predictions import labels_db

    settings = _settings(stack)
    if not file.is_file():
        raise UsageError(f"{file} is not a file: give a JSONL file of labels")
    try:
        result = add_file(LabelStore(labels_db(settings)), file, read_window(prediction_log_dir(settings)).rows)
    except LabelError as exc:
        raise UsageError(str(exc)) from None
    out.print(
        f"{result.stored} labels stored in {labels_db(settings)} ({result.joined} joined to logged predictions); "
        f"{result.unmatched} by an unknown request id, {result.ambiguous} by a request id several requests used "
        "(refused: send the X-Prediction-Id instead)"
    )


@app.command()
@handled
def quality(
    stack: StackOpt = "local",
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    prom: Annotated[Path | None, typer.Option(help="also write the gauges in Prometheus' text format here")] = None,
) -> None:
    """Accuracy of each model version: estimated from its predicted probabilities (CBPE, no labels needed) beside
    the accuracy realised on the newest labelled rows, and ADWIN's concept-drift verdict on labelled outcomes."""
    from modelops.monitor import concept
    from stacks.predictions import labels_db

    settings = _settings(stack)
    statuses = concept.status_for_stack(prediction_log_dir(settings), labels_db(settings), settings.monitor)
    if prom is not None:
        prom.parent.mkdir(parents=True, exist_ok=True)
        prom.write_text(concept.prometheus_text(statuses))
    if as_json:
        out.print_json(json.dumps([s.to_dict() for s in statuses]))
        return
    shown = lambda e: f"{e.value:.1%} [{e.low:.1%}-{e.high:.1%}] on {e.n}" if e else "n/a"  # noqa: E731
    table = Table("model version", "estimated (CBPE)", "realised (labelled)", "CBPE on those rows", "ADWIN")
    for s in statuses:
        adwin = "[red]accuracy dropped[/]" if s.drift_detected else "steady"
        adwin += f" ({s.adwin_accuracy:.1%})" if s.adwin_accuracy is not None else ""
        calibrated = "" if s.calibrated else " (uncalibrated)"
        table.add_row(s.model_version, shown(s.estimated) + calibrated, shown(s.realised),
                      shown(s.estimated_on_labelled), adwin)  # fmt: skip
    out.print(table if statuses else "no logged or labelled predictions yet")


@app.command(epilog=_exit_codes(*COMMAND_CODES["drift"]))
@handled
def drift(
    stack: StackOpt = "local",
    window: Annotated[
        int | None,
        typer.Option(help="newest logged rows the descriptive figures cover (default: modelops:monitor.window)"),
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
        bool, typer.Option("--calibrate", help="measure the detector's false alarms and delays instead of checking")
    ] = False,
    jitter: Annotated[float, typer.Option(help="--calibrate: noise on resampled rows, in held-out stds")] = 0.3,
    rate: Annotated[float, typer.Option(help="--calibrate: rows per second of simulated traffic")] = 10.0,
    days: Annotated[float, typer.Option(help="--calibrate: simulated days of normal traffic")] = 1.0,
    seed: Annotated[int, typer.Option(help="--calibrate: random seed of the simulated traffic")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="the report (drift.json; with --calibrate the result) on stdout, alone")
    ] = False,
) -> None:
    """The drift monitor's detector, on demand: replays it (CUSUM per feature, class share and PCA reconstruction
    error over chunks of the prediction log, thresholds from modelops:monitor.drift) over the newest model's logged
    rows, so it says what the monitor says; rows of an interval not closed yet are judged as one more look now.
    Writes drift.json + drift.html (CUSUM over chunks, histograms, class shares); exits 30 on drift, 20 when fewer
    rows than a chunk. --calibrate measures the detector instead: false alarms over simulated days of normal
    traffic, delays to find 0.5/1/2-sd shifts of 1 and 3 features."""
    from modelops.monitor import drift_report

    settings = _settings(stack)
    if window is not None and window < 1:
        raise UsageError(f"--window must be at least 1, got {window}")
    if calibrate:
        from modelops.monitor.drift_calibration import run_and_print

        drift_settings = settings.monitor.drift
        run_and_print(out, err, drift_settings, model or "wine_classifier:latest", rate, days, jitter, seed, as_json)
        return
    log_dir = log or prediction_log_dir(settings)
    loader = (lambda _version: drift_report.store_reference(model)) if model else drift_report.store_reference
    report = drift_report.run_drift_check(log_dir, settings.monitor, loader, window=window)
    target = out_dir or PROJECT_ROOT / "reports" / "drift" / time.strftime("%Y%m%d-%H%M%S")
    json_path, html_path = drift_report.write_report(report, target)
    status = drift_report.exit_status(report)
    if as_json:
        out.print_json(report.model_dump_json())
    shown = err if as_json else out  # with --json, stdout carries the report alone
    for line in drift_report.summary_lines(report, status):
        shown.print(line)
    shown.print(f"report: {json_path}  {html_path}")
    raise typer.Exit(int(status))


def _bench_peer(settings: StackConfig, venv: Path, users: int, duration: float, rounds: int, cpu: float) -> dict:
    from modelops.bench.peer import PeerOptions, run_peer

    options = PeerOptions(venv=venv.resolve(), users=users, duration_s=duration, rounds=rounds, cpu=cpu)
    return run_peer(settings, options, Steps(err))


def _print_peer(summary: dict) -> None:
    from rich.table import Column

    from modelops.bench.peer import report_lines

    table = Table(Column("server/call", no_wrap=True), "good req/s", "rounds (min-max)", "p95 ms", "errors",
                  "CPU ms/req", "throttled")  # fmt: skip
    for name, v in summary["variants"].items():
        cpu_ms = f"{v['cpu_ms_per_request']:.2f}" if v["cpu_ms_per_request"] is not None else "n/a"
        throttled = f"{v['throttled']:.0%}" if v["throttled"] is not None else "n/a"
        spread = f"{min(v['rounds_rps']):.0f}-{max(v['rounds_rps']):.0f}"
        table.add_row(name, f"{v['rps']:.0f}", spread, f"{v['p95_ms']:.0f}", str(v["errors"]), cpu_ms, throttled)
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


def _print_verdict(summary, reports: Path = PROJECT_ROOT / "reports", shown: Console = out) -> None:
    colour = {"promote": "green", "reject": "red"}.get(summary.verdict, "yellow")
    shown.print(f"[bold {colour}]verdict: {summary.verdict}[/] (exit {summary.exit_status}) — {summary.reason}")
    plan = summary.capacity_plan
    if plan.rps_per_replica_at_slo:
        shown.print(
            f"capacity plan: {plan.rps_per_replica_at_slo:.0f} req/s per replica at the SLO; for {plan.target_rps:g} "
            f"req/s run {plan.recommended_min_replicas}..{plan.recommended_max_replicas} replicas; ASG target "
            f"{plan.asg_target_requests_per_target_per_minute:g} req/target/min; HPA CPU target "
            f"{plan.hpa_target_cpu_utilization if plan.hpa_target_cpu_utilization is not None else 'n/a'}%"
        )
    for note in plan.notes:
        shown.print(f"  note: {note}")
    shown.print(f"report: {reports / summary.run_id / 'report.html'}")


def _print_monitoring(state_dir: Path, settings: StackConfig) -> None:
    from modelops.monitor import service

    found = service.urls(state_dir)
    out.print(f"Alertmanager: [cyan]{found['alertmanager']}[/]   drift monitor: [cyan]{found['monitor']}[/]/metrics")
    webhook = settings.monitor.alert_webhook
    if webhook:
        out.print(f"alerts are posted to {webhook} (pages and tickets); `modelops alerts` lists what fires")
    else:
        err.print(
            "[yellow]no alert webhook: alerts are kept by Alertmanager and listed by `modelops alerts`, nobody is "
            f"notified[/] (set modelops:monitor.alert_webhook in stacks/Pulumi.{settings.stack}.yaml)"
        )


def _print_status(data: dict) -> None:
    _print_pools(data)
    if data.get("bake"):
        _print_bake(data["bake"])


def _print_pools(data: dict) -> None:
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
