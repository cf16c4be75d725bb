"""`modelops bench --peer mlserver`: the peer table, fair — the same model behind three servers, each with the
plain model call and with the compiled one, so the serving path's gain and the compile's gain show apart.

Servers (one replica each, the same cgroup CPU budget, the same Locust users for the same time, the same rows — the
model's golden rows, one per request — interleaved in rounds so that drift in the machine's load hits every one
alike; only good answers count):
  ours                   the bench bento's production path: /predict_plain (the framework's own predict_proba) and
                         /predict (the implementation the build proved and chose, bento/served.py)
  bentoml                the service a user would write from BentoML's docs (bento/idiomatic_service.py): adaptive
                         batching, defaults: /predict (predict_proba) and /predict_onnx (the compiled model)
  mlserver_*             MLServer 1.7 from its own venv (.venv-peer), three configurations, each serving two models:
                         "wine" (its scikit-learn runtime on the model file our bento serves: plain) and "wine-onnx"
                         (a custom MLServer runtime over the same ONNX file ONNX Runtime runs for us: compiled)
    mlserver_default       MLServer's defaults (1 parallel inference worker, no adaptive batching)
    mlserver_batching      adaptive batching (max_batch_size 256, max_batch_time 5 ms)
    mlserver_batching_pw0  the same, inference in the server process (parallel_workers 0)
Variants are named server/call (ours/plain, mlserver_batching/compiled …). The compiled rows run only when the build
chose ONNX Runtime for the model (its metadata says so). Printed: req/s (good answers), p95, errors and CPU per
request of each (medians over rounds); per call, ours / the best peer with the same call against the goal (>= 2x
its req/s with 0 errors, <= 0.5x its p95); per server, compiled / plain. Goals are printed, never asserted.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

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
ONNX_MODEL_NAME = "wine-onnx"  # the compiled model, in the same MLServer repository
OURS, BENTOML = "ours", "bentoml"
PLAIN, COMPILED = "plain", "compiled"  # the model call: the framework's own, or the compiled one
CALLS = (PLAIN, COMPILED)
BATCHING = {"max_batch_size": 256, "max_batch_time": 0.005}
# name: (model-settings.json additions, settings.json additions)
MLSERVER_CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mlserver_default": ({}, {}),
    "mlserver_batching": (BATCHING, {}),
    "mlserver_batching_pw0": (BATCHING, {"parallel_workers": 0}),
}
PEER_GOALS = {"rps_ratio": 2.0, "p95_ratio": 0.5}  # ours / the best peer with the same model call (issue 18)
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


def variant(server: str, call: str) -> str:
    return f"{server}/{call}"


def split(name: str) -> tuple[str, str]:
    server, _, call = name.partition("/")
    return server, call or PLAIN


# MLServer's way to serve a model it has no runtime for: a custom runtime (an MLModel subclass) beside the model's
# model-settings.json. This one runs the ONNX file our build proved, as bento/accelerate.py does (one thread).
ONNX_RUNTIME = """
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, sess_options=options)
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[1].name  # the probabilities (the first output is the label)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        (probabilities,) = self.session.run([self.output], {self.input: rows})
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("predict_proba", probabilities)]
        )
"""


def export_model(model_tag: str, repository: Path, model_settings: dict[str, Any], onnx: Path | None = None) -> Path:
    """The model from the BentoML store as ``repository/wine/model.joblib`` with an MLServer model-settings.json;
    with ``onnx`` (the compiled model) also ``repository/wine-onnx`` served by a custom runtime over it."""
    import bentoml
    import joblib

    if onnx is not None:
        compiled = repository / ONNX_MODEL_NAME
        compiled.mkdir(parents=True, exist_ok=True)
        (compiled / "model.onnx").write_bytes(onnx.read_bytes())
        (compiled / "onnx_runtime.py").write_text(ONNX_RUNTIME)
        settings = {"name": ONNX_MODEL_NAME, "implementation": "onnx_runtime.OnnxRuntime",
                    "parameters": {"uri": str(compiled / "model.onnx")}, **model_settings}  # fmt: skip
        (compiled / "model-settings.json").write_text(json.dumps(settings, indent=2))
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
            models = [MODEL_NAME] + ([ONNX_MODEL_NAME] if (self.repository / ONNX_MODEL_NAME).is_dir() else [])
            try:
                return all(httpx.get(f"{self.url}/v2/models/{m}/ready", timeout=2).status_code == 200 for m in models)
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
    with steps.step("building the benchmark bentos (ours, and the idiomatic BentoML service)"):
        if not bentos.has_reference_model():
            from bento import train

            train.save(seed=1)
        tag = bentos.build(bentofile="bentofile.bench.yaml", record=False)
        idiomatic = bentos.build(bentofile="bentofile.idiomatic.yaml", record=False)
        info = bentos.describe(tag)
    if not info.golden or not info.models:
        raise DeploymentError(f"bento {tag} declares no model with golden rows: retrain with `python bento/train.py`")
    onnx = compiled_model(info.models[0])
    calls = CALLS if onnx is not None else (PLAIN,)
    ours_payload, v2_payload = write_payloads(info.golden["rows"], out_dir)
    onnx_payload = out_dir / "payloads-v2-onnx.json"
    onnx_payload.write_text(v2_payload.read_text())
    work = PROJECT_ROOT / ".work"
    settings = settings.with_overrides(deploy={"cpu_per_replica": options.cpu})
    target = LocalTarget(settings.with_overrides(local={"state_dir": str(work / "bench-peer")}))
    users_service = LocalTarget(settings.with_overrides(local={"state_dir": str(work / "bench-peer-bentoml")}))
    cpu = options.cpu if target.budgets.enabled else None
    servers: dict[str, MLServer] = {}
    results: dict[str, list[loadgen.LoadResult]] = {}
    usage: dict[str, list[Usage]] = {}
    try:
        with steps.step(f"deploying 1 replica of {tag} and 1 of {idiomatic}") as note:
            target.progress = note
            status = target.up(tag, replicas=1, workers=1)
            idiomatic_status = users_service.up(idiomatic, replicas=1, workers=1)
        for name in options.configs:
            model_settings, server_settings = MLSERVER_CONFIGS[name]
            repository = out_dir / name
            with steps.step(f"starting MLServer: {name}"):
                export_model(info.models[0], repository, model_settings, onnx)
                servers[name] = MLServer(
                    name, repository, binary, target.deployment, target.budgets, cpu, dict(server_settings)
                )
                servers[name].start()
        endpoints = {OURS: {PLAIN: "/predict_plain", COMPILED: "/predict"},
                     BENTOML: {PLAIN: "/predict", COMPILED: "/predict_onnx"}}  # fmt: skip
        targets: dict[str, tuple[str, str, Path]] = {}
        probes: dict[str, tuple[Callable[[], float], Callable[[], tuple[int, int] | None]]] = {}
        replicas = {OURS: (target, status.replicas[0].url), BENTOML: (users_service, idiomatic_status.replicas[0].url)}
        for server, (pool, url) in replicas.items():
            for call in calls:
                targets[variant(server, call)] = (url, endpoints[server][call], ours_payload)
                probes[variant(server, call)] = pool_probes(pool)
        for name, mlserver in servers.items():
            for call in calls:
                model, payload = (MODEL_NAME, v2_payload) if call == PLAIN else (ONNX_MODEL_NAME, onnx_payload)
                targets[variant(name, call)] = (mlserver.url, f"/v2/models/{model}/infer", payload)
                probes[variant(name, call)] = (mlserver.cpu_seconds, mlserver.throttling)
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
                    result = run(url, spec, out_dir, prefix=f"{name.replace('/', '-')}-{round_no}")
                    used = Usage(
                        cpu_of() - cpu_before, _answered(result), _throttled(throttling_before, throttling_of())
                    )
                results.setdefault(name, []).append(result)
                usage.setdefault(name, []).append(used)
    finally:
        with steps.step("stopping MLServer and the replicas"):
            for mlserver in servers.values():
                mlserver.stop()
            target.down()
            users_service.down()
    summary = summarise_peer(results, usage, options, target.budgets.reason, tag)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench-peer.json").write_text(json.dumps(summary, indent=2, default=str))
    summary["path"] = str(out_dir / "bench-peer.json")
    return summary


def pool_probes(pool: LocalTarget) -> tuple[Callable[[], float], Callable[[], tuple[int, int] | None]]:
    """(CPU seconds, cgroup throttling counters) of a target's live pool."""
    return (lambda: pool.cpu_seconds("live") or 0.0), (lambda: pool.cpu_throttling("live"))


def compiled_model(model_tag: str) -> Path | None:
    """The ONNX file of the model when its build chose ONNX Runtime (bento/served.py), else None."""
    import bentoml

    from bento.served import ACCELERATED_FILE, ACCELERATION, ONNXRUNTIME

    model = bentoml.models.get(model_tag)
    decision = cast("dict[str, Any]", model.info.metadata.get(ACCELERATION) or {})  # bentoml types metadata loosely
    chosen = decision.get("chosen")
    path = Path(model.path) / ACCELERATED_FILE
    return path if chosen == ONNXRUNTIME and path.is_file() else None


def _answered(result: loadgen.LoadResult) -> int:
    return sum(w.ok + w.failed for w in result.windows if w.kind in loadgen.PRODUCTION_KINDS)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _figures(runs: list[loadgen.LoadResult], used: list[Usage]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r.rps for r in runs),  # good answers per second
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
        "cpu_ms_per_request": _median([u.cpu_ms_per_request for u in used]),
        "throttled": _median([u.throttled for u in used]),
    }


def summarise_peer(
    results: dict[str, list[loadgen.LoadResult]],
    usage: dict[str, list[Usage]],
    options: PeerOptions,
    budgets: str,
    bento: str,
) -> dict:
    """Per variant (server/call) its figures; per call, ours against the best peer with the same call; per server,
    the compiled call against the plain one."""
    variants = {name: _figures(runs, usage.get(name, [])) for name, runs in results.items() if runs}
    calls: dict[str, dict[str, Any]] = {}
    for call in CALLS:
        ours = variants.get(variant(OURS, call))
        peers = {name: v for name, v in variants.items() if split(name)[1] == call and split(name)[0] != OURS}
        if ours is None or not peers:
            continue
        best = max(peers, key=lambda name: peers[name]["rps"])
        theirs = peers[best]
        rps_ratio = ours["rps"] / theirs["rps"] if theirs["rps"] else None
        p95_ratio = ours["p95_ms"] / theirs["p95_ms"] if theirs["p95_ms"] else None
        ours_cpu, best_cpu = ours["cpu_ms_per_request"], theirs["cpu_ms_per_request"]
        calls[call] = {
            "best_peer": best,
            "ratios": {
                "rps_ratio": rps_ratio,
                "p95_ratio": p95_ratio,
                "cpu_efficiency_ratio": best_cpu / ours_cpu if ours_cpu and best_cpu else None,
            },
            "goals_met": {
                "rps_ratio": ours["errors"] == 0 and rps_ratio is not None and rps_ratio >= PEER_GOALS["rps_ratio"],
                "p95_ratio": p95_ratio is not None and p95_ratio <= PEER_GOALS["p95_ratio"],
            },
        }
    compile_gain = {}
    for server in sorted({split(name)[0] for name in variants}):
        plain, compiled = variants.get(variant(server, PLAIN)), variants.get(variant(server, COMPILED))
        if plain and compiled and plain["rps"]:
            compile_gain[server] = compiled["rps"] / plain["rps"]
    return {
        "options": {**options.__dict__, "venv": str(options.venv), "configs": list(options.configs)},
        "cpu_budgets": budgets,
        "bento": bento,
        "variants": variants,
        "calls": calls,
        "compile_gain": compile_gain,
        "goals": PEER_GOALS,
    }


def report_lines(summary: dict) -> list[str]:
    """The verdict lines printed under the table (rich markup)."""
    mark = {True: "[green]met[/]", False: "[red]missed[/]"}
    goals = summary["goals"]
    if not summary["calls"]:
        return ["no peer answered: no ratio"]
    lines = []
    for call, c in summary["calls"].items():
        r, met, best = c["ratios"], c["goals_met"], c["best_peer"]
        rps = f"{r['rps_ratio']:.2f}x" if r["rps_ratio"] is not None else "n/a"
        p95 = f"{r['p95_ratio']:.2f}x" if r["p95_ratio"] is not None else "n/a"
        efficiency = f"{r['cpu_efficiency_ratio']:.2f}x" if r.get("cpu_efficiency_ratio") is not None else "n/a"
        lines += [
            f"{call} model call — best peer (by good req/s): {best}",
            f"  ours / {best} req/s: {rps}  (goal >= {goals['rps_ratio']:.1f}x, 0 errors) {mark[met['rps_ratio']]}",
            f"  ours / {best} p95: {p95}  (goal <= {goals['p95_ratio']:.1f}x) {mark[met['p95_ratio']]}",
            f"  requests per CPU-second, ours / {best}: {efficiency}",
        ]
    if summary["compile_gain"]:
        gains = ", ".join(f"{server} {gain:.2f}x" for server, gain in summary["compile_gain"].items())
        lines.append(f"compiled / plain model call, good req/s: {gains}")
    lines.append(f"CPU budgets: {summary['cpu_budgets']}")
    return lines
