"""`modelops bench --peer mlserver`: our replica beside the server a user would pick instead for a scikit-learn model.

MLServer with its scikit-learn runtime serves the very model file our bench bento serves (exported with joblib from
the BentoML store), from its own venv (.venv-peer, `make bench` builds it), under the same cgroup CPU budget as our
replica, loaded by the same Locust users for the same time, with the same rows (the model's golden rows, one per
request; MLServer asked for predict_proba, which is what our service computes). Configurations, interleaved in
rounds so that drift in the machine's load hits every one alike:
  ours                   one replica of the bench bento, its production /predict, direct (no HAProxy)
  mlserver_default       MLServer's defaults (1 parallel inference worker, no adaptive batching)
  mlserver_batching      adaptive batching (max_batch_size 256, max_batch_time 5 ms)
  mlserver_batching_pw0  the same, inference in the server process (parallel_workers 0): its best here
Printed: req/s, p95 and errors of each (medians over rounds), and ours / the best MLServer configuration (by req/s)
against the goal (>= 1.5x its req/s with 0 errors, <= 0.5x its p95). Goals are printed, never asserted.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelops import bentos
from modelops.errors import DeploymentError, UsageError
from modelops.gate import loadgen
from modelops.monitor import synthetic
from modelops.targets.local import LocalTarget, cgroups, procs
from modelops.ui import Steps
from modelops.waiting import wait_until
from stacks.config import PROJECT_ROOT, StackConfig
from stacks.threads import thread_env

PEER_VENV = PROJECT_ROOT / ".venv-peer"
MODEL_NAME = "wine"
OURS = "ours"
BATCHING = {"max_batch_size": 256, "max_batch_time": 0.005}
# name: (model-settings.json additions, settings.json additions)
MLSERVER_CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mlserver_default": ({}, {}),
    "mlserver_batching": (BATCHING, {}),
    "mlserver_batching_pw0": (BATCHING, {"parallel_workers": 0}),
}
PEER_GOALS = {"rps_ratio": 1.5, "p95_ratio": 0.5}
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class PeerOptions:
    venv: Path = PEER_VENV
    users: int = 64
    duration_s: float = 15.0
    warmup_s: float = 3.0
    rounds: int = 2
    cpu: float = 1.0  # CPU budget of our replica and of each MLServer (cores), when budgets are available
    configs: tuple[str, ...] = tuple(MLSERVER_CONFIGS)


def mlserver_binary(venv: Path) -> Path:
    binary = venv / "bin" / "mlserver"
    if not binary.exists():
        raise UsageError(
            f"MLServer is not installed in {venv} ({binary} is missing): run `make .venv-peer/.installed` "
            "(or `make bench`), or pass --peer-venv with a venv holding mlserver and mlserver-sklearn"
        )
    return binary


# ----------------------------------------------------------------------------------------- model and payloads
def v2_body(rows: list[list[float]]) -> dict:
    """A V2 inference request for ``rows``, asking MLServer's scikit-learn runtime for predict_proba."""
    return {
        "inputs": [
            {
                "name": "predict",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP64",
                "data": [value for row in rows for value in row],
            }
        ],
        "outputs": [{"name": "predict_proba"}],
    }


def write_payloads(rows: list[list[float]], folder: Path) -> tuple[Path, Path]:
    """(our bodies, MLServer's bodies): the same rows, one per request, as each protocol wants them."""
    folder.mkdir(parents=True, exist_ok=True)
    ours, theirs = folder / "payloads-ours.json", folder / "payloads-v2.json"
    ours.write_text(json.dumps([{"rows": [row]} for row in rows]))
    theirs.write_text(json.dumps([v2_body([row]) for row in rows]))
    return ours, theirs


def export_model(model_tag: str, repository: Path, model_settings: dict[str, Any]) -> Path:
    """The model from the BentoML store as ``repository/wine/model.joblib`` with an MLServer model-settings.json."""
    import bentoml
    import joblib

    folder = repository / MODEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(bentoml.sklearn.load_model(model_tag), folder / "model.joblib")
    settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
        **model_settings,
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return folder


@dataclass(frozen=True)
class Usage:
    """What a server used during one load run (warm-up included), read from its processes and its cgroup."""

    cpu_s: float  # CPU seconds (user + system) of the server's processes
    requests: int  # requests it answered in that time (warm-up included)
    throttled: float | None  # share of CPU periods in which it hit its budget (None without budgets)

    @property
    def cpu_ms_per_request(self) -> float | None:
        return 1000 * self.cpu_s / self.requests if self.requests else None


def _throttled(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[0] <= before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


# ------------------------------------------------------------------------------------------------ the server
@dataclass
class MLServer:
    """One MLServer process (and its inference workers) in a cgroup of its own, marked with the deployment."""

    name: str
    repository: Path
    binary: Path
    deployment: str
    budgets: cgroups.Budgets
    cpu: float | None
    server_settings: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    proc: procs.Proc | None = None
    cgroup: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.repository / "mlserver.log"

    def start(self) -> None:
        self.port = procs.free_port()
        settings = {
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": procs.free_port(),
            "metrics_port": procs.free_port(),
            **self.server_settings,
        }
        (self.repository / "settings.json").write_text(json.dumps(settings, indent=2))
        # Started unthrottled (imports and model loading are not what the budget is for), budgeted once ready.
        self.cgroup = f"{self.deployment}-{self.name}"
        procs_file = self.budgets.create(self.cgroup, None) if self.cpu else None
        argv = cgroups.join_command(procs_file, [str(self.binary), "start", str(self.repository)])
        # The same native thread pools as our replica's: sized to the budget, not to the machine.
        env = thread_env(self.cpu or 1.0)
        self.proc = procs.spawn(argv, deployment=self.deployment, log=self.log, env=env, cwd=self.repository)
        proc = self.proc

        def ready() -> bool:
            procs.reap()
            if not proc.alive():
                return True
            try:
                return httpx.get(f"{self.url}/v2/models/{MODEL_NAME}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(ready, timeout=READY_TIMEOUT_S, interval=0.25):
            raise DeploymentError(
                f"MLServer ({self.name}) was not ready within {READY_TIMEOUT_S:g} s:\n{procs.log_tail(self.log)}"
            )
        if not proc.alive():
            raise DeploymentError(f"MLServer ({self.name}) exited at start:\n{procs.log_tail(self.log)}")
        if procs_file is not None:
            self.budgets.limit(self.cgroup, self.cpu)

    def cpu_seconds(self) -> float:
        return procs.cpu_seconds(self.proc) if self.proc is not None else 0.0

    def throttling(self) -> tuple[int, int] | None:
        return self.budgets.throttling(self.cgroup) if self.cgroup and self.budgets.enabled else None

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop([self.proc], grace=10)
        if self.cgroup:
            self.budgets.remove(self.cgroup)


# ------------------------------------------------------------------------------------------------- the bench
def run_peer(settings: StackConfig, options: PeerOptions, steps: Steps, out_dir: Path | None = None) -> dict:
    unknown = [name for name in options.configs if name not in MLSERVER_CONFIGS]
    if unknown:
        raise UsageError(f"unknown MLServer configurations {unknown}: choose among {list(MLSERVER_CONFIGS)}")
    binary = mlserver_binary(options.venv)
    out_dir = out_dir or PROJECT_ROOT / "reports" / time.strftime("bench-peer-%Y%m%d-%H%M%S")
    with steps.step("building the benchmark bento"):
        if not bentos.has_reference_model():
            from bento import train

            train.save(seed=1)
        tag = bentos.build(bentofile="bentofile.bench.yaml", record=False)
        info = bentos.describe(tag)
    if not info.golden or not info.models:
        raise DeploymentError(f"bento {tag} declares no model with golden rows: retrain with `python bento/train.py`")
    ours_payload, v2_payload = write_payloads(info.golden["rows"], out_dir)
    settings = settings.with_overrides(
        deploy={"cpu_per_replica": options.cpu},
        local={"state_dir": str(PROJECT_ROOT / ".work" / "bench-peer")},
    )
    target = LocalTarget(settings)
    cpu = options.cpu if target.budgets.enabled else None
    servers: dict[str, MLServer] = {}
    results: dict[str, list[loadgen.LoadResult]] = {name: [] for name in (OURS, *options.configs)}
    usage: dict[str, list[Usage]] = {name: [] for name in results}
    try:
        with steps.step(f"deploying 1 replica of {tag}") as note:
            target.progress = note
            status = target.up(tag, replicas=1, workers=1)
        for name in options.configs:
            model_settings, server_settings = MLSERVER_CONFIGS[name]
            repository = out_dir / name
            with steps.step(f"starting MLServer: {name}"):
                export_model(info.models[0], repository, model_settings)
                servers[name] = MLServer(
                    name, repository, binary, target.deployment, target.budgets, cpu, dict(server_settings)
                )
                servers[name].start()
        targets = {OURS: (status.replicas[0].url, "/predict", ours_payload)}
        targets |= {
            name: (server.url, f"/v2/models/{MODEL_NAME}/infer", v2_payload) for name, server in servers.items()
        }
        probes: dict[str, tuple[Callable[[], float], Callable[[], tuple[int, int] | None]]] = {
            OURS: (lambda: target.cpu_seconds("live") or 0.0, lambda: target.cpu_throttling("live"))
        }
        probes |= {name: (server.cpu_seconds, server.throttling) for name, server in servers.items()}
        for round_no in range(1, options.rounds + 1):
            for name, (url, endpoint, payload) in targets.items():
                spec = loadgen.LoadSpec(
                    users=options.users,
                    spawn_rate=options.users,
                    duration_s=options.duration_s,
                    warmup_s=options.warmup_s,
                    endpoint=endpoint,
                    payload_file=payload,
                )
                title = f"round {round_no}/{options.rounds}: {name} ({options.users} users, {options.duration_s:g} s)"
                cpu_of, throttling_of = probes[name]
                with steps.step(title):
                    cpu_before, throttling_before = cpu_of(), throttling_of()
                    # marked with our deployment's secret: our replica keeps the load out of its prediction log
                    run = synthetic.marking(loadgen.run, synthetic.read(target.dir))
                    result = run(url, spec, out_dir, prefix=f"{name}-{round_no}")
                    used = Usage(
                        cpu_of() - cpu_before, _answered(result), _throttled(throttling_before, throttling_of())
                    )
                results[name].append(result)
                usage[name].append(used)
    finally:
        with steps.step("stopping MLServer and our replica"):
            for server in servers.values():
                server.stop()
            target.down()
    summary = summarise_peer(results, usage, options, target.budgets.reason, tag)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench-peer.json").write_text(json.dumps(summary, indent=2, default=str))
    summary["path"] = str(out_dir / "bench-peer.json")
    return summary


def _answered(result: loadgen.LoadResult) -> int:
    return sum(w.ok + w.failed for w in result.windows if w.kind in loadgen.PRODUCTION_KINDS)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarise_peer(
    results: dict[str, list[loadgen.LoadResult]],
    usage: dict[str, list[Usage]],
    options: PeerOptions,
    budgets: str,
    bento: str,
) -> dict:
    variants: dict[str, dict[str, Any]] = {
        name: {
            "rps": statistics.median(r.rps for r in runs),
            "p50_ms": statistics.median(r.p50_ms for r in runs),
            "p95_ms": statistics.median(r.p95_ms for r in runs),
            "p99_ms": statistics.median(r.p99_ms for r in runs),
            "errors": sum(r.failures for r in runs),
            "requests": sum(r.requests for r in runs),
            "rounds_rps": [round(r.rps, 1) for r in runs],
            "rounds_p95_ms": [r.p95_ms for r in runs],
            "generator_cpu": statistics.median(r.measured.generator_cpu or 0.0 for r in runs),
            # CPU per request: what the server costs whatever share of the machine it got (on a shared machine
            # req/s measures the contention too); 1000 / it is the req/s one full core would give.
            "cpu_ms_per_request": _median([u.cpu_ms_per_request for u in usage.get(name, [])]),
            "throttled": _median([u.throttled for u in usage.get(name, [])]),
        }
        for name, runs in results.items()
        if runs
    }
    peers = {name: v for name, v in variants.items() if name != OURS}
    ours = variants.get(OURS)
    best = max(peers, key=lambda name: peers[name]["rps"]) if peers else None
    ratios: dict[str, float | None] = {"rps_ratio": None, "p95_ratio": None, "cpu_efficiency_ratio": None}
    if ours and best:
        ratios["rps_ratio"] = ours["rps"] / peers[best]["rps"] if peers[best]["rps"] else None
        ratios["p95_ratio"] = ours["p95_ms"] / peers[best]["p95_ms"] if peers[best]["p95_ms"] else None
        ours_cpu, best_cpu = ours["cpu_ms_per_request"], peers[best]["cpu_ms_per_request"]
        ratios["cpu_efficiency_ratio"] = best_cpu / ours_cpu if ours_cpu and best_cpu else None
    rps_ratio, p95_ratio = ratios["rps_ratio"], ratios["p95_ratio"]
    met = {
        "rps_ratio": ours is not None
        and ours["errors"] == 0
        and rps_ratio is not None
        and rps_ratio >= PEER_GOALS["rps_ratio"],
        "p95_ratio": p95_ratio is not None and p95_ratio <= PEER_GOALS["p95_ratio"],
    }
    return {
        "options": {**options.__dict__, "venv": str(options.venv), "configs": list(options.configs)},
        "cpu_budgets": budgets,
        "bento": bento,
        "variants": variants,
        "best_peer": best,
        "ratios": ratios,
        "goals": PEER_GOALS,
        "goals_met": met,
    }


def report_lines(summary: dict) -> list[str]:
    """The verdict lines printed under the table (rich markup)."""
    mark = {True: "[green]met[/]", False: "[red]missed[/]"}
    best, r, goals, met = summary["best_peer"], summary["ratios"], summary["goals"], summary["goals_met"]
    if best is None or r["rps_ratio"] is None:
        return ["no MLServer configuration answered: no ratio"]
    p95 = f"{r['p95_ratio']:.2f}x" if r["p95_ratio"] is not None else "n/a"
    efficiency = f"{r['cpu_efficiency_ratio']:.2f}x" if r.get("cpu_efficiency_ratio") is not None else "n/a"
    return [
        f"best MLServer configuration (by req/s): {best}",
        f"ours / {best} req/s: {r['rps_ratio']:.2f}x  (goal >= {goals['rps_ratio']:.1f}x, 0 errors) "
        f"{mark[met['rps_ratio']]}",
        f"ours / {best} p95: {p95}  (goal <= {goals['p95_ratio']:.1f}x) {mark[met['p95_ratio']]}",
        f"requests per CPU-second, ours / {best}: {efficiency}  (whatever share of the machine each got)",
        f"CPU budgets: {summary['cpu_budgets']}",
    ]
