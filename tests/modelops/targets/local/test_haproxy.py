"""HAProxy in front of the replicas: per-source rate limiting (429 + Retry-After), slow clients that starve no one,
and L7 retries that cover every body it accepts (a 1,000-row request survives a SIGKILL of its replica, unless that
replica had already begun to answer it)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bento.prediction_log import SYNTHETIC_HEADER
from modelops.targets.local import haproxy, procs
from modelops.waiting import wait_until
from stacks.config import LimitsSettings
from tests.traffic import Traffic


def layout(tmp_path: Path, rate_limit: haproxy.RateLimit | None = None) -> haproxy.Layout:
    return haproxy.Layout(
        lb_port=18080, admin_port=18081, pool_ports={"blue": 18082, "green": 18083}, socket_path=tmp_path / "s.sock",
        map_path=tmp_path / "w.map", max_body_bytes=LimitsSettings().max_body_bytes, request_timeout_s=10,
        rate_limit=rate_limit,
    )  # fmt: skip


@pytest.mark.parametrize("rate", [None, haproxy.RateLimit(requests=100, window_s=10)], ids=["default", "rate limit"])
def test_rendered_config_is_valid_for_haproxy(tmp_path: Path, rate) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_config(layout(tmp_path, rate)))
    (tmp_path / "w.map").write_text(haproxy.render_map(0))
    done = subprocess.run([haproxy.binary(), "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"haproxy -c {config}: {done.stdout}{done.stderr}"


def test_rate_limiting_is_off_unless_configured(tmp_path: Path) -> None:
    assert "track-sc0" not in haproxy.render_config(layout(tmp_path))


def test_buffer_holds_the_largest_accepted_body_so_every_request_can_be_retried() -> None:
    limit = LimitsSettings().max_body_bytes
    assert haproxy.bufsize(limit) >= limit + haproxy.HEADER_ROOM
    assert haproxy.bufsize(1024) >= haproxy.DEFAULT_BUFSIZE, "never below HAProxy's own default"


def example_rows(url: str) -> list[list[float]]:
    schema = httpx.get(url + "/docs.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    return schema["application/json"]["schema"]["properties"]["rows"]["examples"][0]


def test_a_source_over_its_rate_gets_429_with_retry_after(make_target, reference_bento) -> None:
    target = make_target(rate_limit={"enabled": True, "requests": 20, "window_s": 5})
    status = target.up(reference_bento, replicas=1, workers=1)
    body = {"rows": example_rows(status.replicas[0].url)}
    with httpx.Client(timeout=30) as client:
        codes = [client.post(status.url + "/predict", json=body) for _ in range(30)]
    assert [r.status_code for r in codes[:20]] == [200] * 20, "within the rate every request is served"
    refused = [r for r in codes[20:] if r.status_code == 429]
    assert len(refused) == 10, f"requests 21..30 within 5 s should get 429: {[r.status_code for r in codes[20:]]}"
    assert refused[0].headers["retry-after"] == "5"
    assert "modelops:rate_limit" in refused[0].json()["error"], "the error says which setting raises the limit"
    direct = httpx.post(status.replicas[0].url + "/predict", json=body, timeout=30)
    assert direct.status_code == 200, "the limit lives at the balancer, the replica itself is unaffected"


SLOW_CLIENTS = 200


def test_slow_clients_do_not_starve_others_and_are_cut_off(live_deployment) -> None:
    """Slowloris: many connections trickle request headers and never finish them. HAProxy holds them without a
    replica ever seeing them, serves everyone else meanwhile, and closes them at `timeout http-request` (408)."""
    status = live_deployment.status()
    port = int(status.url.rsplit(":", 1)[1])
    body = {"rows": example_rows(status.replicas[0].url)}
    slow = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never end
        slow.append(sock)
    try:
        started = time.monotonic()
        with httpx.Client(timeout=5) as client:
            latencies = []
            for _ in range(20):
                t0 = time.monotonic()
                assert client.post(status.url + "/predict", json=body).status_code == 200
                latencies.append(time.monotonic() - t0)
        assert max(latencies) < 2.0, f"good requests slowed by {SLOW_CLIENTS} slow clients: {latencies}"
        # Now wait (bounded) for HAProxy's timeout http-request (10 s) to cut every slow client off.
        answers: list[bytes] = []

        def read(sock: socket.socket) -> None:
            try:
                answers.append(sock.recv(200))
            except OSError as exc:
                answers.append(repr(exc).encode())

        readers = [threading.Thread(target=read, args=(s,), daemon=True) for s in slow]
        for reader in readers:
            reader.start()
        assert wait_until(lambda: len(answers) == SLOW_CLIENTS, timeout=20), (
            f"{SLOW_CLIENTS - len(answers)} slow clients still held after {time.monotonic() - started:.0f} s"
        )
        assert all(a.startswith(b"HTTP/1.1 408") or a == b"" for a in answers), {a[:40] for a in answers}
    finally:
        for sock in slow:
            sock.close()


def test_a_1000_row_request_survives_a_sigkill_of_its_replica(make_target, reference_bento) -> None:
    target = make_target()
    status = target.up(reference_bento, replicas=2, workers=1)
    rows = example_rows(status.replicas[0].url)
    body = {"rows": [rows[i % len(rows)] for i in range(1000)]}
    size = len(json.dumps(body))
    assert size > haproxy.DEFAULT_BUFSIZE * 4, "the body must exceed HAProxy's default buffer to prove anything"
    with Traffic(status.url, body, clients=6) as traffic:
        traffic.wait_for(10, timeout=60)
        target.kill_replica(pool="live")
        traffic.wait_for(20, timeout=60)
    # A replica killed between writing a response's headers and its body had begun that answer (Traffic.cut_short):
    # those answers, and only those, may be lost; its one worker's event loop writes one response at a time, so at
    # most one (as in test_target.py's SIGKILL test).
    begun = traffic.cut_short
    backend = next(r for r in target.api.stats() if r["pxname"] == "be_blue" and r["svname"] == "BACKEND")
    retried = int(backend.get("wretr") or 0) + int(backend.get("wredis") or 0)
    print(
        f"\n1000-row requests: {traffic.ok + traffic.failed} sent, {traffic.failed} failed ({sum(begun.values())} cut "
        f"short after their headers), HAProxy retries/redispatches: {retried}"
    )
    assert dict(traffic.failures) == begun, f"1000-row requests failed across the kill: {dict(traffic.failures)}"
    assert sum(begun.values()) <= 1, f"more answers cut short than one worker's one write in flight: {begun}"
    assert retried > 0, "no request was in flight on the killed replica: the test proved nothing, rerun it"


class _EchoHeaders(BaseHTTPRequestHandler):
    """A backend that answers every request with the headers it received (and 200 to health checks)."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - the names http.server dispatches to

    def log_message(self, *_args) -> None:
        pass


@pytest.mark.parametrize(
    "secret",
    ["s3cret-" + "x" * 40, "-leading-dash-" + "x" * 30, None],
    ids=["with a secret", "with a secret that starts with a dash", "without one"],
)
def test_haproxy_strips_a_synthetic_marker_that_does_not_carry_the_deployments_secret(tmp_path: Path, secret) -> None:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    ports = [procs.free_port() for _ in range(4)]
    plan = replace(
        layout(tmp_path),
        lb_port=ports[0],
        admin_port=ports[1],
        pool_ports={"blue": ports[2], "green": ports[3]},
        synthetic_secret=secret,
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy.render_config(plan))
    (tmp_path / "w.map").write_text(haproxy.render_map(0))
    process = subprocess.Popen([haproxy.binary(), "-db", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        api = haproxy.RuntimeAPI(plan.socket_path)
        assert wait_until(api.ready, 10), "haproxy's runtime API never opened"
        api.set_server("blue", 1, backend.server_address[1])

        def seen(marker: str, port: int) -> dict:
            reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={}, headers={SYNTHETIC_HEADER: marker})
            assert reply.status_code == 200, reply.text
            return reply.json()

        assert wait_until(lambda: httpx.get(f"http://127.0.0.1:{ports[0]}/x").status_code == 200, 10)
        for port in (plan.lb_port, plan.pool_ports["blue"]):  # the live entry point and the pool's own URL
            assert SYNTHETIC_HEADER not in seen("forged", port), "a forged marker never reaches a replica"
            if secret:
                assert seen(secret, port)[SYNTHETIC_HEADER] == secret, "the deployment's own marker passes"
            else:
                assert SYNTHETIC_HEADER not in seen("anything", port), "without a secret no marker passes"
    finally:
        process.terminate()
        process.wait(10)
        backend.shutdown()


def test_a_secret_that_could_break_the_config_is_refused() -> None:
    with pytest.raises(ValueError, match="URL-safe"):
        haproxy.strip_synthetic_marker("abc } or { always_true")


def test_a_state_dir_too_deep_for_a_unix_socket_gets_its_socket_in_a_private_temp_dir(tmp_path: Path) -> None:
    short = haproxy.socket_path_for(tmp_path)
    assert short == tmp_path / "haproxy.sock", "a short state dir keeps its socket"
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    moved = haproxy.socket_path_for(deep)
    assert len(str(moved)) <= haproxy.MAX_SOCKET_PATH and moved.parent.stat().st_mode & 0o777 == 0o700
    assert moved == haproxy.socket_path_for(deep), "the same state dir finds the same socket"
    assert moved != haproxy.socket_path_for(deep / "other"), "each deployment has its own"


def test_a_deep_state_dir_serves_through_haproxy(make_target, reference_bento, tmp_path: Path) -> None:
    target = make_target(local={"state_dir": str(tmp_path / ("s" * 70) / "state")})
    assert len(str(target.dir / "haproxy.sock")) > haproxy.MAX_SOCKET_PATH
    status = target.up(reference_bento, replicas=1, workers=1)
    assert target.api.ready() and all(r.healthy for r in status.replicas)
    assert httpx.get(f"{status.url}/readyz").status_code == 200
    target.down()
    assert not target.socket_path.exists(), "down removes the moved socket too"
