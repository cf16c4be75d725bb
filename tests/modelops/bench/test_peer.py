"""The peer benchmark: MLServer serves our exported model (plain and compiled) and answers our Locust load; per model
call, the ratio ours / best peer with the same call is judged against the goal (>= 2x req/s with 0 errors, <= 0.5x
p95), and the compile's gain is reported apart."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from modelops import bentos
from modelops.acceleration import CLASS_TOLERANCE
from modelops.bench.peer import (
    COMPILED,
    MLSERVER_CONFIGS,
    MODEL_NAME,
    ONNX_MODEL_NAME,
    OURS,
    PEER_VENV,
    PLAIN,
    MLServer,
    PeerOptions,
    Usage,
    compiled_model,
    export_model,
    mlserver_binary,
    report_lines,
    summarise_peer,
    v2_body,
    variant,
    write_payloads,
)
from modelops.errors import UsageError
from modelops.gate import loadgen
from modelops.targets.local import cgroups, procs


def run(rps: float, p95_ms: float, failures: int = 0) -> SimpleNamespace:
    """The figures summarise_peer reads from a LoadResult."""
    return SimpleNamespace(
        rps=rps, p50_ms=p95_ms / 2, p95_ms=p95_ms, p99_ms=p95_ms, failures=failures, requests=1000,
        measured=SimpleNamespace(generator_cpu=0.5),
    )  # fmt: skip


def summary(ours: SimpleNamespace, **peers: SimpleNamespace) -> dict:
    """Runs by variant: ``ours`` is ours with the plain call; peers are named server__call (ours__compiled too)."""
    results = {variant(OURS, PLAIN): [ours]}
    results |= {variant(*name.split("__")): [result] for name, result in peers.items()}
    # 1 CPU-second per run, over the run's requests: CPU per request follows req/s.
    usage = {name: [Usage(cpu_s=1.0, requests=int(runs[0].rps), throttled=0.9)] for name, runs in results.items()}
    return summarise_peer(results, usage, PeerOptions(), "test budgets", "bench:test")  # type: ignore[arg-type]


def test_v2_body_carries_the_rows_row_major_and_asks_for_probabilities() -> None:
    body = v2_body([[1.0, 2.0], [3.0, 4.0]])
    assert body["inputs"] == [{"name": "predict", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0, 3.0, 4.0]}]
    assert body["outputs"] == [{"name": "predict_proba"}]


def test_both_servers_get_the_same_rows_one_per_request(tmp_path: Path) -> None:
    rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    ours, theirs = write_payloads(rows, tmp_path)
    assert [body["rows"] for body in json.loads(ours.read_text())] == [[row] for row in rows]
    assert [body["inputs"][0]["data"] for body in json.loads(theirs.read_text())] == rows


def test_ratio_is_taken_against_the_fastest_peer_with_the_same_call_and_meets_the_goal() -> None:
    result = summary(
        run(1500, 40),
        mlserver_default__plain=run(100, 900),
        mlserver_batching__plain=run(700, 180),
        bentoml__plain=run(600, 200),
        mlserver_batching__compiled=run(2000, 100),  # faster, but with the other call: not the plain row's peer
    )
    plain = result["calls"][PLAIN]
    assert plain["best_peer"] == "mlserver_batching/plain"
    assert plain["ratios"] == pytest.approx(
        {"rps_ratio": 1500 / 700, "p95_ratio": 40 / 180, "cpu_efficiency_ratio": 1500 / 700}
    )
    assert result["variants"]["ours/plain"]["cpu_ms_per_request"] == pytest.approx(1000 / 1500)
    assert plain["goals_met"] == {"rps_ratio": True, "p95_ratio": True}
    assert COMPILED not in result["calls"], "no compiled run of ours: no compiled comparison"
    assert any("met" in line and "req/s" in line for line in report_lines(result))


def test_the_compile_gain_is_reported_per_server_apart_from_the_serving_path() -> None:
    result = summary(
        run(1000, 40),
        ours__compiled=run(3000, 20),
        bentoml__plain=run(400, 200),
        bentoml__compiled=run(600, 150),
    )
    assert result["compile_gain"] == pytest.approx({OURS: 3.0, "bentoml": 1.5})
    assert result["calls"][COMPILED]["ratios"]["rps_ratio"] == pytest.approx(5.0)
    assert any("compiled / plain" in line for line in report_lines(result))


@pytest.mark.parametrize(
    ("ours", "missed"),
    [
        (run(1000, 40), "rps_ratio"),  # 1.11x the peer's req/s, under 2x
        (run(1500, 100), "p95_ratio"),  # 0.56x its p95
        (run(1500, 40, failures=1), "rps_ratio"),  # fast, but an error
    ],
)
def test_too_slow_too_late_or_failing_misses_the_goal(ours: SimpleNamespace, missed: str) -> None:
    result = summary(ours, mlserver_batching__plain=run(900, 180))
    assert result["calls"][PLAIN]["goals_met"][missed] is False, result


def test_a_missing_peer_venv_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"make \.venv-peer/\.installed"):
        mlserver_binary(tmp_path / "no-venv")


def test_every_configuration_sets_what_the_issue_names() -> None:
    assert MLSERVER_CONFIGS["mlserver_default"] == ({}, {})
    assert MLSERVER_CONFIGS["mlserver_batching"][0] == {"max_batch_size": 256, "max_batch_time": 0.005}
    assert MLSERVER_CONFIGS["mlserver_batching_pw0"][1] == {"parallel_workers": 0}


@pytest.mark.skipif(
    not (PEER_VENV / "bin" / "mlserver").exists(),
    reason="MLServer's venv (.venv-peer) is missing: `make .venv-peer/.installed` builds it (`make bench` does)",
)
def test_mlserver_serves_our_model_and_takes_our_locust_load(reference_bento: str, tmp_path: Path) -> None:
    info = bentos.describe(reference_bento)
    assert info.golden is not None
    repository = tmp_path / "repo"
    onnx = compiled_model(info.models[0])  # None when the build kept another implementation (it was faster)
    export_model(info.models[0], repository, MLSERVER_CONFIGS["mlserver_batching_pw0"][0], onnx)
    budgets = cgroups.probe()
    deployment = f"test-peer-{tmp_path.name}"
    server = MLServer("pw0", repository, mlserver_binary(PEER_VENV), deployment, budgets, 1.0, {"parallel_workers": 0})
    try:
        server.start()
        answer = httpx.post(f"{server.url}/v2/models/{MODEL_NAME}/infer", json=v2_body(info.golden["rows"]), timeout=10)
        assert answer.status_code == 200, answer.text
        output = answer.json()["outputs"][0]
        served = np.asarray(output["data"]).reshape(output["shape"])
        np.testing.assert_allclose(served, info.golden["probabilities"], rtol=0, atol=1e-12)
        if onnx is not None:  # the compiled model through MLServer's custom runtime: within the proven tolerance
            url = f"{server.url}/v2/models/{ONNX_MODEL_NAME}/infer"
            compiled = httpx.post(url, json=v2_body(info.golden["rows"]), timeout=10)
            assert compiled.status_code == 200, compiled.text
            output = compiled.json()["outputs"][0]
            served = np.asarray(output["data"]).reshape(output["shape"])
            np.testing.assert_allclose(served, info.golden["probabilities"], rtol=0, atol=CLASS_TOLERANCE)
        _, payload = write_payloads(info.golden["rows"], tmp_path)
        spec = loadgen.LoadSpec(
            users=4, spawn_rate=4, duration_s=2, endpoint=f"/v2/models/{MODEL_NAME}/infer", payload_file=payload
        )
        result = loadgen.run(server.url, spec, tmp_path / "load")
        assert result.requests > 0 and result.failures == 0, result.failure_messages
    finally:
        server.stop()
        assert procs.marked_processes(deployment) == [], "MLServer processes left behind"
