"""`make demo`: the main job on the local target, end to end, leaving nothing running.

train v1 → build → up (live) → train v2 (another seed) → build → gate v2 beside v1 → promote or reject → verdict,
capacity plan, report → down. Returns the gate's summary (the demo succeeded whatever the verdict).
"""

from __future__ import annotations

import time

from rich.console import Console

from modelops import bentos
from modelops.gate.run import history_file, run_gate
from modelops.gate.summary import Summary
from modelops.promotion import record_up
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from stacks.config import StackConfig


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


def run_demo(settings: StackConfig, steps: Steps, out: Console) -> Summary:
    started = time.monotonic()
    v1 = _model(steps, out, seed=1, label="v1")
    target = LocalTarget(settings)
    summary: Summary | None = None
    try:
        with steps.step(f"deploying v1: {settings.deploy.replicas} replicas behind HAProxy") as note:
            target.progress = note
            status = target.up(v1, settings.deploy.replicas, settings.deploy.workers)
        record_up(history_file(settings), status.bento)
        out.print(f"  live: {status.url} serves {status.bento} ({len(status.replicas)} healthy replicas)")
        v2 = _model(steps, out, seed=2, label="v2")
        gate_started = time.monotonic()
        summary = run_gate(target, settings, v2, steps, command="modelops demo")
        out.print(f"  gate took {time.monotonic() - gate_started:.0f} s")
        live = target.status()
        out.print(f"  live now: {live.bento} ({'v2, promoted' if live.bento == v2 else 'v1, v2 rejected'})")
    finally:
        with steps.step("stopping the deployment"):
            target.down()
    out.print(f"demo took {time.monotonic() - started:.0f} s")
    assert summary is not None  # run_gate returns one or raises
    return summary
