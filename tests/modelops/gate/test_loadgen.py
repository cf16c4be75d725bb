"""The load generator: how many Locust processes a load gets, and that a master with workers measures what one
process measures (every worker's requests merged into the per-window record, the last seconds included)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelops.gate import loadgen
from modelops.gate.loadgen import CpuSample, Figures, LoadResult, LoadSpec

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)

# The paced load both generators offer: fixed users x rate x duration, so the expected request count is known. Each
# user sends every 2 s, so a replica slowed by a busy shared machine (latencies of several hundred ms seen here)
# still answers within the user's period and the offered load is what arrives.
PACED = LoadSpec(users=32, spawn_rate=32, duration_s=6, warmup_s=1, rate=16)
# Master + workers vs one process: the same offered load may differ by the requests in flight when the run stops
# (at most one per user, and only those whose answer was late), not by whole seconds of a worker's requests, which
# is what a worker's last, unreported windows would cost (workers report every 3 s).
COUNT_TOLERANCE = 0.15


def measured(requests: int, seconds: float, generator_cpu: float | None, prefix: str = "slo") -> LoadResult:
    """A finished run as loadgen.parse would return it, with only what the planner reads."""
    figures = Figures(
        requests=requests, failures=0, seconds=seconds, good_rps=requests / seconds, p50_ms=None, p95_ms=None,
        p99_ms=None, generator_load=None, generator_cpu=generator_cpu, machine_idle=None,
    )  # fmt: skip
    samples = [CpuSample(t=0.0, generator_cpu=generator_cpu or 0.0, generator_load=0.0, machine_idle=0.0)]
    return LoadResult(
        url="http://127.0.0.1:1", prefix=prefix, out_dir=".", exit_code=0, processes=1, started=0.0,
        measured_from=0.0, windows=[], window_s=0.5, steps_started=[], cpu=samples, golden_checks=0,
        cpu_warning=False, failure_messages={}, measured=figures,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ planning processes
def test_one_process_without_a_measured_generator_cost() -> None:
    plan = loadgen.plan_processes(2000, users=64, previous=None, max_processes=4, max_generator_load=0.85, cores=4)
    assert plan.processes == 1, plan.reason
    assert "no measured generator CPU" in plan.reason


def test_processes_follow_the_expected_rate_times_the_measured_cpu_per_request() -> None:
    # 1000 req/s cost 1 core: 1 ms a request. 2000 req/s then need 2 cores; at most 0.7 x 0.85 = 0.595 a process.
    previous = measured(requests=10_000, seconds=10, generator_cpu=1.0)
    plan = loadgen.plan_processes(2000, users=64, previous=previous, max_processes=8, max_generator_load=0.85, cores=8)
    assert plan.processes == 4, plan.reason
    assert "measured on slo" in plan.reason


def test_a_light_load_keeps_one_process() -> None:
    previous = measured(requests=10_000, seconds=10, generator_cpu=0.5)
    plan = loadgen.plan_processes(100, users=64, previous=previous, max_processes=8, max_generator_load=0.85, cores=8)
    assert plan.processes == 1, plan.reason


@pytest.mark.parametrize(("max_processes", "cores"), [(2, 8), (8, 2)])
def test_processes_are_capped_by_the_setting_and_the_cores(max_processes: int, cores: int) -> None:
    previous = measured(requests=10_000, seconds=10, generator_cpu=0.5)
    plan = loadgen.plan_processes(
        5000, users=64, previous=previous, max_processes=max_processes, max_generator_load=0.85, cores=cores
    )
    assert plan.processes == 2
    assert "capped at 2" in plan.reason


def test_many_users_get_more_processes_even_without_a_measurement() -> None:
    plan = loadgen.plan_processes(None, users=1200, previous=None, max_processes=8, max_generator_load=0.85, cores=8)
    assert plan.processes == 3, plan.reason


def test_a_run_that_measured_no_cpu_gives_no_cost() -> None:
    assert loadgen.cpu_per_request(measured(requests=100, seconds=1, generator_cpu=None)) is None
    assert loadgen.cpu_per_request(measured(requests=100, seconds=2, generator_cpu=0.1)) == pytest.approx(0.002)


def test_processes_become_lockets_processes_option(tmp_path: Path) -> None:
    assert "--processes" not in loadgen.command("http://h", PACED, tmp_path, "p")
    argv = loadgen.command("http://h", LoadSpec(users=4, spawn_rate=4, duration_s=1, processes=2), tmp_path, "p")
    assert argv[argv.index("--processes") + 1] == "2"


# ------------------------------------------------------------------------------- master + workers vs one process
def test_master_and_two_workers_count_the_requests_one_process_counts(live_deployment, tmp_path: Path) -> None:
    url = live_deployment.status().url  # through HAProxy, two replicas of the reference bento
    single = loadgen.run(url, PACED, tmp_path, prefix="single")
    distributed = loadgen.run(url, LoadSpec(**{**PACED.__dict__, "processes": 2}), tmp_path, prefix="distributed")
    expected = PACED.rate * PACED.duration_s
    for result in (single, distributed):
        assert result.exit_code == 0, f"{result.prefix}: see {tmp_path / result.prefix}.log"
        assert result.failures == 0, result.failure_messages
        # Every second of the measured part came from the generator (a worker's unreported windows would leave the
        # last seconds short), and the generator's CPU was sampled for each.
        assert result.requests == pytest.approx(expected, rel=COUNT_TOLERANCE), f"{result.prefix}: {result.measured}"
        assert result.measured.generator_cpu is not None and result.measured.generator_cpu > 0
    assert distributed.requests == pytest.approx(single.requests, rel=COUNT_TOLERANCE)
    meta = (tmp_path / "distributed.meta.json").read_text()
    assert '"unflushed_workers": []' in meta, "a worker did not answer the master's flush when the test stopped"
    # The workers' windows reach the end of the run like the single process's do.
    last = {r.prefix: max(w.t for w in r.windows) for r in (single, distributed)}
    assert abs(last["single"] - single.started - (last["distributed"] - distributed.started)) <= 1.0, last


# A service that answers every prediction after SLOW_S: when a run stops, every user is waiting for an answer.
SLOW_S = 1.0
SLOW_OPENAPI = {
    "openapi": "3.0.2",
    "paths": {
        "/predict": {
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {"rows": {"type": "array", "items": {"type": "number"}}}}}}},
                "responses": {"200": {"content": {"application/json": {"schema": {"type": "array"}}}}},
            }
        }
    },
}  # fmt: skip


@pytest.fixture
def slow_service() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, document: object) -> None:
            payload = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._send(SLOW_OPENAPI)

        def do_POST(self) -> None:
            rows = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))["rows"]
            time.sleep(SLOW_S)  # the service's own latency, not a wait in the test
            self._send([0] * len(rows))

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_run_that_stops_while_every_user_waits_counts_the_same_in_master_and_workers_as_in_one_process(
    slow_service: str, tmp_path: Path
) -> None:
    """Closed loop against answers that take 1 s: when the run stops every user waits for one (neither generator
    counts those: Locust drops a stopped user's unanswered request). The workers' last windows must reach the
    master before it writes the record: the locustfile's flush asks for them and waits for every worker's answer
    (unflushed_workers in the meta file stays empty) instead of trusting the 0.5 s Locust's master waits for a
    last report."""
    spec = LoadSpec(users=8, spawn_rate=8, duration_s=4)
    single = loadgen.run(slow_service, spec, tmp_path, prefix="single")
    distributed = loadgen.run(slow_service, LoadSpec(**{**spec.__dict__, "processes": 2}), tmp_path, prefix="dist")
    assert single.failures == distributed.failures == 0, (single.failure_messages, distributed.failure_messages)
    # Up to 8 users x 4 s / 1 s; fewer where a busy machine slowed the answers. The two generators may differ by half
    # a request per user, not by the seconds of windows a late report would lose.
    assert single.requests >= 8 * 3, single.measured
    assert distributed.requests == pytest.approx(single.requests, abs=4), (single.measured, distributed.measured)
    assert json.loads((tmp_path / "dist.meta.json").read_text())["unflushed_workers"] == []


def test_multi_process_loads_meet_on_a_free_master_port_not_locusts_default(tmp_path) -> None:
    """Two loads with several Locust processes at once (two gates, parallel tests) collided on port 5557."""
    spec = loadgen.LoadSpec(users=4, spawn_rate=4, duration_s=1, processes=2)
    first, second = (loadgen.command("http://127.0.0.1:1", spec, tmp_path, "p") for _ in range(2))
    bind = first[first.index("--master-bind-port") + 1]
    assert bind == first[first.index("--master-port") + 1] and bind != "5557"
    single = loadgen.command("http://127.0.0.1:1", loadgen.LoadSpec(users=4, spawn_rate=4, duration_s=1), tmp_path, "p")
    assert "--master-bind-port" not in single and "--processes" not in single
    assert "--master-port" in second
