"""`make demo`: the main job on the local target, end to end, leaving nothing running."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from modelops import bentos, loadgen
from modelops.errors import ExitStatus
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from stacks.config import PROJECT_ROOT, StackConfig

SMOKE = loadgen.LoadSpec(users=16, spawn_rate=16, duration_s=10, warmup_s=2)


def run_demo(settings: StackConfig, steps: Steps, out: Console, reports: Path | None = None) -> ExitStatus:
    from bento import train

    started = time.monotonic()
    reports = reports or PROJECT_ROOT / "reports" / time.strftime("demo-%Y%m%d-%H%M%S")
    with steps.step("training the reference model (seed 1)"):
        model = train.save(seed=1)
    out.print(f"  model {model.tag}: accuracy {model.metrics['accuracy']:.3f}, f1 {model.metrics['f1_macro']:.3f}")
    with steps.step("building the bento"):
        tag = bentos.build()
    out.print(f"  bento {tag}")
    target = LocalTarget(settings)
    try:
        with steps.step(f"deploying {settings.deploy.replicas} replicas behind HAProxy") as note:
            target.progress = note
            status = target.up(tag, settings.deploy.replicas, settings.deploy.workers)
        out.print(f"  load balancer {status.url}  ({len(status.replicas)} healthy replicas)")
        with steps.step(f"smoke load: {SMOKE.users} users for {SMOKE.duration_s:g} s through HAProxy"):
            result = loadgen.run(status.url, SMOKE, reports, prefix="smoke")
    finally:
        with steps.step("stopping the deployment"):
            target.down()
    out.print(
        f"[bold]smoke[/] {status.url}: {result.rps:.0f} req/s, p95 {result.p95_ms:.0f} ms, "
        f"{result.failures} errors in {result.requests} requests"
    )
    out.print(f"Locust report: {reports / 'smoke.html'}   (demo took {time.monotonic() - started:.0f} s)")
    return ExitStatus.OK if result.failures == 0 and result.requests > 0 else ExitStatus.SMOKE_FAILED
