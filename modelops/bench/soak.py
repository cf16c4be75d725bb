"""`modelops bench --soak MINUTES`: production load for minutes, every replica's RSS and open file descriptors sampled
on a fixed period; the drift from the first sample (after warm-up) to the last is the result."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from modelops import bentos
from modelops.gate import loadgen
from modelops.monitor import synthetic
from modelops.targets.local import LocalTarget
from modelops.ui import Steps
from stacks.config import PROJECT_ROOT, StackConfig

SOAK_SAMPLE_S = 10.0
SOAK_GOALS = {"rss_drift": 0.05, "fd_drift": 0}


@dataclass(frozen=True)
class SoakSample:
    t: float  # seconds since the load started
    rss_bytes: dict[str, int]  # replica name -> RSS of its processes (server + workers)
    fds: dict[str, int]  # replica name -> open file descriptors of its processes


def replica_usage(target: LocalTarget) -> tuple[dict[str, int], dict[str, int]]:
    """RSS and open file descriptors of each live replica, summed over its processes."""
    from modelops.targets.local import procs

    rss: dict[str, int] = {}
    fds: dict[str, int] = {}
    state = target.load()
    for pool in state.pools.values() if state else []:
        for replica in pool.replicas:
            name = f"{pool.colour}-{replica.slot}"
            rss[name] = fds[name] = 0
            for process in procs.members(replica.proc):
                try:
                    rss[name] += process.memory_info().rss
                    fds[name] += process.num_fds()
                except psutil.Error:
                    continue
    return rss, fds


def run_soak(
    settings: StackConfig,
    minutes: float,
    steps: Steps,
    out_dir: Path | None = None,
    sample_every_s: float = SOAK_SAMPLE_S,
) -> dict:
    """Production load (the stack's replicas, the gate's users) for ``minutes``; every replica's RSS and open FDs
    sampled every ``sample_every_s`` seconds. Drift is measured from the first sample, taken once warm-up is over."""
    out_dir = out_dir or PROJECT_ROOT / "reports" / time.strftime("soak-%Y%m%d-%H%M%S")
    with steps.step("building the production bento"):
        if not bentos.has_reference_model():
            from bento import train

            train.save(seed=1)
        tag = bentos.build(record=False)
    settings = settings.with_overrides(local={"state_dir": str(PROJECT_ROOT / ".work" / "soak")})
    target = LocalTarget(settings)
    samples: list[SoakSample] = []
    stop = threading.Event()
    gate = settings.gate
    try:
        with steps.step(f"deploying {settings.deploy.replicas} replica(s) of {tag}") as note:
            target.progress = note
            status = target.up(tag, replicas=settings.deploy.replicas, workers=settings.deploy.workers)
        started = time.monotonic() + gate.warmup_s

        def sample() -> None:
            # First sample at the end of warm-up, then every sample_every_s.
            while not stop.wait(max(0.0, started + len(samples) * sample_every_s - time.monotonic())):
                rss, fds = replica_usage(target)
                samples.append(SoakSample(round(time.monotonic() - started, 1), rss, fds))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        spec = loadgen.LoadSpec(
            users=gate.users,
            spawn_rate=gate.spawn_rate,
            duration_s=minutes * 60,
            warmup_s=gate.warmup_s,
            rows_per_request=gate.rows_per_request,
        )
        with steps.step(f"soak: {gate.users} users for {minutes:g} min, sampling every {sample_every_s:g} s"):
            # marked with the deployment's secret: the replica keeps the load out of its prediction log
            load = synthetic.marking(loadgen.run, synthetic.read(target.dir))(status.url, spec, out_dir, prefix="soak")
        stop.set()
        sampler.join(timeout=30)
    finally:
        stop.set()
        with steps.step("stopping the soak deployment"):
            target.down()
    summary = summarise_soak(samples, load, minutes)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "soak.json").write_text(json.dumps(summary, indent=2))
    summary["path"] = str(out_dir / "soak.json")
    return summary


def summarise_soak(samples: list[SoakSample], load: loadgen.LoadResult, minutes: float) -> dict:
    replicas = {}
    for name in samples[0].rss_bytes if samples else []:
        rss = [s.rss_bytes.get(name, 0) for s in samples]
        fds = [s.fds.get(name, 0) for s in samples]
        drift = (rss[-1] - rss[0]) / rss[0] if rss[0] else 0.0
        replicas[name] = {
            "rss_mb_first": rss[0] / 2**20,
            "rss_mb_last": rss[-1] / 2**20,
            "rss_mb_max": max(rss) / 2**20,
            "rss_drift": drift,
            "fds_first": fds[0],
            "fds_last": fds[-1],
            "fds_max": max(fds),
            "fd_drift": fds[-1] - fds[0],
            "met": abs(drift) <= SOAK_GOALS["rss_drift"] and fds[-1] - fds[0] <= SOAK_GOALS["fd_drift"],
        }
    return {
        "minutes": minutes,
        "samples": len(samples),
        "requests": load.requests,
        "failures": load.failures,
        "rps": load.rps,
        "p95_ms": load.p95_ms,
        "replicas": replicas,
        "goals": SOAK_GOALS,
        "timeline": [s.__dict__ for s in samples],
    }
