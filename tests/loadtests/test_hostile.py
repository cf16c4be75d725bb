"""HostileUser (--hostile-weight): hostile bodies derived from the service's OpenAPI, named "[hostile]", failed only
on a 5xx or a dropped connection — run as Locust itself runs, a subprocess, against real servers."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from modelops.gate.loadgen import LOCUSTFILE

HOSTILE_SUFFIX = "[hostile]"


def run_locust(url: str, out: Path, max_body_bytes: int, seconds: int = 6) -> list[dict]:
    """Locust with 1 single-row user and 3 hostile users; returns its per-request-name stats (--json)."""
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-H", url, "-u", "4", "-r", "4",
        "-t", f"{seconds}s", "--hostile-weight", "30", "--max-body-bytes", str(max_body_bytes), "--json",
        "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False, cwd=out)
    assert done.stdout.strip(), f"locust printed no stats for {url}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def hostile_stats(stats: list[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in stats if s["name"].endswith(HOSTILE_SUFFIX)}


def test_hostile_requests_through_haproxy_all_get_a_non_5xx_answer(live_deployment, tmp_path: Path) -> None:
    status = live_deployment.status()
    stats = run_locust(status.url, tmp_path, live_deployment.settings.limits.max_body_bytes)
    hostile = hostile_stats(stats)
    for name, s in hostile.items():
        print(f"{name}: {s['num_requests']} requests, {s['num_failures']} failed")
    kinds = {name.removeprefix("/predict ").removesuffix(f" {HOSTILE_SUFFIX}") for name in hostile}
    assert {"extreme 1e300", "extreme -3.5e38", "max rows", "just over the size limit", "deeply nested",
            "multipart", "bentoml pickle"} <= kinds, kinds  # fmt: skip
    failed = {n: s["num_failures"] for n, s in hostile.items() if s["num_failures"]}
    assert failed == {}, f"hostile requests got a 5xx or a dropped connection through {status.url}: {failed}"
    good = [s for s in stats if s["name"].endswith("[single]")]
    assert good and good[0]["num_failures"] == 0, f"good requests failed beside the hostile ones: {good}"
    assert httpx.get(status.replicas[0].url + "/readyz").status_code == 200


class FragileHandler(BaseHTTPRequestHandler):
    """The reference API's shape; answers 500 to anything over 1e30, like a float32 model without a contract."""

    openapi: bytes = b""

    def do_GET(self) -> None:
        self._reply(200, self.openapi)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            rows = json.loads(body)["rows"]
            extreme = any(abs(v) > 1e30 for row in rows for v in row)
        except (ValueError, KeyError, TypeError, RecursionError):  # not JSON rows: what a validating API refuses
            self._reply(400, b'{"error": "bad request"}')
            return
        self._reply(500 if extreme else 200, b"[]" if not extreme else b'{"error": "overflow"}')

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):  # Locust stopped mid-request at the end of the run
            self.wfile.write(payload)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def fragile_server(live_deployment) -> Iterator[str]:
    FragileHandler.openapi = httpx.get(live_deployment.status().replicas[0].url + "/docs.json").content
    server = ThreadingHTTPServer(("127.0.0.1", 0), FragileHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_5xx_to_a_hostile_request_counts_as_a_failure_and_a_4xx_does_not(fragile_server, tmp_path: Path) -> None:
    hostile = hostile_stats(run_locust(fragile_server, tmp_path, max_body_bytes=1_048_576, seconds=4))
    failed = {n.split(" ", 1)[1] for n, s in hostile.items() if s["num_failures"]}
    assert failed == {f"extreme {v} {HOSTILE_SUFFIX}" for v in ("1e300", "-1e300", "3.5e38", "-3.5e38")}, failed
