"""`make demo`: the main job on the local target, end to end, leaving nothing running.

One full model-update loop, for real on loopback:

1. train v1 → build → up (live, every replica logging its predictions);
2. normal client traffic (Locust, production) → drift check: no drift expected;
3. shifted client traffic (one feature moved, as after an upstream change) → drift check: drift expected; the true
   labels of those requests arrive as feedback, and the live version's accuracy on them is shown;
4. retrain on data collected after the shift → v2 with its lineage → the gate (performance suites *and* the quality
   suite: v2's answers on the recent logged traffic, against v1's and the feedback labels) → canary under client
   traffic → promoted or rejected/rolled back;
5. down. Reports (drift JSON/HTML, the gate's report, the prediction log) stay under reports/demo-<time>/.

Returns the gate's summary and the folder its report is in (the demo succeeded whatever the verdict).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from modelops import bentos
from modelops.gate import loadgen
from modelops.gate.run import history_file, run_gate
from modelops.gate.summary import Summary
from modelops.monitor import drift_report, traffic
from modelops.monitor.labels import LabelStore
from modelops.promotion import record_up
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from stacks.config import PROJECT_ROOT, StackConfig
from stacks.predictions import labels_db

# The demo's client traffic: requests per phase (several drift chunks' worth; the second check replays the first
# phase's rows too, as the monitor would have judged them), the rate Locust offers them at, and the shift (in
# training standard deviations of the feature).
PHASE_REQUESTS = 600
PHASE_RATE = 40.0
SHIFTED_FEATURE = "color_intensity"
SHIFT_STD = 1.5
# A short canary: enough steps to show them, each judged in intervals sized by the tests' power. At the clients'
# 30 req/s, 25 % is 7.5 req/s for the candidate: sized to catch a 10 % error ratio (90 requests a colour, 12 s) rather
# than the shipped 5 % (180, 24 s), and window_s leaves room for a busy machine.
CANARY = {"enabled": True, "steps": [25, 50, 100], "window_s": 30.0, "detect_error_ratio": 0.1}


def _model(steps: Steps, out: Console, seed: int, label: str) -> str:
    from bento import train

    with steps.step(f"training {label} (seed {seed})"):
        model = train.save(seed=seed)
    metrics = model.metrics
    out.print(f"  {label} model {model.tag}: held-out accuracy {metrics['accuracy']:.3f}, f1 {metrics['f1_macro']:.3f}")
    with steps.step(f"building the {label} bento"):
        tag = bentos.build()
    out.print(f"  {label} bento {tag}")
    return tag


def _send(target: LocalTarget, s: traffic.Scenario, work: Path, steps: Steps, out: Console) -> float:
    """Locust sends the scenario as production traffic to the live URL; returns when it began (epoch seconds)."""
    payloads, _ = traffic.write_scenario(s, work / "traffic")
    spec = loadgen.LoadSpec(users=8, spawn_rate=8, duration_s=PHASE_REQUESTS / PHASE_RATE, rate=PHASE_RATE,
                            payload_file=payloads, traffic="production")  # fmt: skip
    began = time.time()
    what = f"{s.kind} traffic: {PHASE_REQUESTS} requests at {PHASE_RATE:g} req/s"
    with steps.step(what + (f" ({s.feature} moved by {s.shift_std:g} std)" if s.feature else "")):
        result = loadgen.run(target.status().url, spec, work / "locust", prefix=f"traffic-{s.kind}")
    m = result.measured
    out.print(f"  {m.requests} requests, {m.failures} failed, p95 {m.p95_ms or 0:.0f} ms")
    return began


def _drift(target: LocalTarget, settings: StackConfig, work: Path, label: str, out: Console) -> str:
    report = drift_report.run_drift_check(target.prediction_log_dir, settings.monitor, drift_report.store_reference)
    _, html = drift_report.write_report(report, work / f"drift-{label}")
    colour = {"drift": "red", "no_drift": "green"}.get(report.status, "yellow")
    drifted = f" — drifted: {', '.join(report.drifted_features)}" if report.drifted_features else ""
    out.print(f"  drift check after {label} traffic: [{colour}]{report.status}[/] on {report.rows} rows{drifted}")
    out.print(f"    {report.reason}\n    report: {html}", highlight=False)
    return report.status


def _accuracy(store: LabelStore, since: float) -> tuple[int, float | None]:
    """The live version's accuracy on the labelled rows it predicted since ``since``."""
    hits = [o.correct for o in store.outcomes() if o.predicted_at >= since]
    return len(hits), (sum(hits) / len(hits) if hits else None)


@dataclass(frozen=True)
class DemoResult:
    summary: Summary
    reports: Path  # the folder the gate's run folder is in


def run_demo(settings: StackConfig, steps: Steps, out: Console) -> DemoResult:
    started = time.monotonic()
    work = PROJECT_ROOT / "reports" / time.strftime("demo-%Y%m%d-%H%M%S")
    feedback = work / "feedback.jsonl"
    # The demo's prediction log and labels live with its reports: every run starts from an empty log.
    settings = settings.with_overrides(
        monitor={"log_dir": str(work / "predictions"), "feedback_file": str(feedback),
                 "labels_db": str(work / "labels.sqlite")},
        canary=CANARY,
    )  # fmt: skip
    v1 = _model(steps, out, seed=1, label="v1")
    metadata, _ = drift_report.load_model(bentos.describe(v1).models[0])
    target = LocalTarget(settings)
    target.down()  # an interrupted demo's leftovers (the demo's own stack only: a deployment on `local` is not touched)
    summary: Summary | None = None
    try:
        with steps.step(f"deploying v1: {settings.deploy.replicas} replicas behind HAProxy") as note:
            target.progress = note
            status = target.up(v1, settings.deploy.replicas, settings.deploy.workers)
        record_up(history_file(settings), status.bento)
        out.print(f"  live: {status.url} serves {status.bento} ({len(status.replicas)} healthy replicas)")
        out.print(f"  prediction log: {target.prediction_log_dir}")

        normal = traffic.scenario(metadata, "normal", PHASE_REQUESTS, seed=1)
        _send(target, normal, work, steps, out)
        _drift(target, settings, work, "normal", out)

        shifted = traffic.scenario(metadata, "shifted", PHASE_REQUESTS, SHIFTED_FEATURE, SHIFT_STD, seed=2)
        shift_began = _send(target, shifted, work, steps, out)
        _drift(target, settings, work, "shifted", out)
        store = LabelStore(labels_db(settings))
        labelled = traffic.feedback_to_store(target.prediction_log_dir, shifted.labels, store, since=shift_began)
        n, accuracy = _accuracy(store, shift_began)
        shown = f"{accuracy:.1%}" if accuracy is not None else "n/a"
        out.print(f"  feedback: {labelled} labels arrived for the shifted requests; v1 was right on {shown} of {n}")

        data = traffic.shifted_training_csv(metadata, SHIFTED_FEATURE, SHIFT_STD, work / "shifted-wine.csv")
        from modelops.retrain import retrain

        with steps.step(f"retraining on data collected after the shift ({data.name})"):
            v2 = retrain(data, seed=2)
        lineage = v2.lineage
        out.print(f"  v2 {v2.model}: parent {lineage['parent']}, data sha256 {lineage['data_sha256'][:12]}…, "
                  f"held-out accuracy {lineage['metrics']['accuracy']:.3f}")  # fmt: skip
        out.print(f"  v2 bento {v2.bento}")

        gate_started = time.monotonic()
        clients = traffic.Clients(target.status().url, shifted)  # the canary judges real client traffic
        summary = run_gate(target, settings, v2.bento, steps, command="modelops demo", reports=work,
                           during_promotion=lambda: clients)  # fmt: skip
        out.print(f"  gate took {time.monotonic() - gate_started:.0f} s")
        if summary.verdict == "promote":
            out.print(f"  clients during the promotion: {clients.ok} answered, {clients.failed} failed")
        live = target.status()
        out.print(f"  live now: {live.bento} ({'v2, promoted' if live.bento == v2.bento else 'v1, v2 not promoted'})")
    finally:
        with steps.step("stopping the deployment"):
            target.down()
    out.print(f"demo took {time.monotonic() - started:.0f} s; everything it wrote: {work}")
    assert summary is not None  # run_gate returns one or raises
    return DemoResult(summary, work)
