"""Paced load is open-loop: a stall of the service shows in the latencies of every request that fell due during it,
and no send is skipped (no coordinated omission). Against a real HTTP service that stops answering for a while."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelops.gate import loadgen
from modelops.gate.loadgen import LoadSpec

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)

OPENAPI = {
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
STALL_AFTER = 60  # requests answered before the service stalls (about 1.5 s into a 40 req/s load)
STALL_S = 1.5  # every request waits until the stall is over, as behind a stop-the-world pause


class StallingService:
    """Answers at once, except that the STALL_AFTER-th request starts a stall of STALL_S during which no request
    is answered (each one waits for its end)."""

    def __init__(self) -> None:
        self.count = 0
        self.stall_until = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            self.count += 1
            if self.count == STALL_AFTER:
                self.stall_until = time.monotonic() + STALL_S
            until = self.stall_until
        remaining = until - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)  # the service's stall itself, not a wait in the test


@pytest.fixture
def stalling() -> Iterator[tuple[str, StallingService]]:
    service = StallingService()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, document: object) -> None:
            payload = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._send(OPENAPI)

        def do_POST(self) -> None:
            rows = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))["rows"]
            service.wait()
            self._send([0] * len(rows))

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_stall_delays_every_send_due_during_it_and_none_is_skipped(stalling, tmp_path: Path) -> None:
    url, service = stalling
    # 4 users at 10 req/s each: during a 1.5-s stall each has one request in flight and about 15 more fall due.
    spec = LoadSpec(users=4, spawn_rate=4, duration_s=6, rate=40)
    result = loadgen.run(url, spec, tmp_path, prefix="paced")
    assert service.stall_until > 0, "the service stalled during the run"
    assert result.failures == 0, result.failure_messages
    f = result.measured
    # Every send that fell due was made: the ones due during the stall went out late, none was dropped. (A user
    # that restarted its schedule after the stall sent about 4 x 15 = 60 requests fewer.)
    assert f.sends >= 0.9 * spec.rate * spec.duration_s, f
    assert result.requests >= f.sends - spec.users, f"answered (all but those in flight at the end): {f}"
    assert f.late_sends >= 0.5 * spec.rate * STALL_S, f"the sends due during the stall were late: {f}"
    assert f.behind_sends >= 0.5 * spec.rate * STALL_S, f"...because the previous answer had not come back: {f}"
    assert f.most_late_ms is not None and f.most_late_ms >= 0.5 * STALL_S * 1000, f
    # Their latencies count from when they were due: a quarter of the requests of the run waited for the stall, so
    # the p95 carries it (timed from the moment of sending, only the 4 requests in flight would have).
    assert f.p95_ms is not None and f.p95_ms >= 0.3 * STALL_S * 1000, f
    # Locust's own statistics carry the same latencies (its CSV and HTML reports are what people read).
    stats = json.loads((tmp_path / "paced.json").read_text())
    slowest = max(entry["max_response_time"] for entry in stats if entry["name"].startswith("/predict"))
    assert slowest >= f.most_late_ms, "Locust's own figures time requests from when they were due too"
