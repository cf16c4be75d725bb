"""Schema fuzzing (schemathesis as a subprocess) returns what it ran and what failed: a real replica of the reference
bento passes; a server that answers 500 is caught, with the failure named."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelops.gate.fuzz import SERVER_ERROR_CHECK, run_fuzz

OPENAPI = {
    "openapi": "3.0.2",
    "info": {"title": "broken", "version": "1"},
    "paths": {
        "/predict": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["rows"],
                        "properties": {"rows": {"type": "array", "items": {"type": "number"}}},
                    }}},
                },
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}  # fmt: skip


class BrokenHandler(BaseHTTPRequestHandler):
    """Serves its OpenAPI, and a 500 for any request to /predict: what a crashing model looks like from outside."""

    def do_GET(self) -> None:
        self._reply(200, OPENAPI) if self.path == "/docs.json" else self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._reply(500, {"error": "An unexpected error has occurred"})

    def _reply(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away (schemathesis stops at its time limit)
            self.wfile.write(payload)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def broken_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BrokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_replica_of_the_reference_bento_has_no_server_errors(live_deployment, tmp_path: Path) -> None:
    url = live_deployment.status().replicas[0].url
    result = run_fuzz(url, max_examples=50, time_limit_s=20, report_dir=tmp_path)
    print(f"\nschemathesis against {url}: {result.cases} cases, {result.server_errors} server errors")
    assert result.complete, result.first_failures
    assert result.cases >= 50, f"too few cases generated against {url}: {result.cases}"
    assert result.server_errors == 0 and result.passed, f"{url}: {result.first_failures}"
    assert result.command[0].endswith("schemathesis") and f"{url}/docs.json" in result.command


def test_a_server_answering_500_fails_the_fuzz_run_with_the_failure_named(broken_server, tmp_path: Path) -> None:
    result = run_fuzz(broken_server, max_examples=10, time_limit_s=5, report_dir=tmp_path)
    assert not result.passed
    assert result.server_errors > 0, f"schemathesis saw no 5xx from {broken_server}: {result.first_failures}"
    assert any("server error" in f.lower() for f in result.first_failures), result.first_failures
    assert SERVER_ERROR_CHECK in " ".join(result.command)
