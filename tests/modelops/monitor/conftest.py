"""A webhook receiver the tests run: what Alertmanager posts arrives here, with the time it arrived."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    at: float  # time.time() when the post arrived
    body: dict

    @property
    def alerts(self) -> list[dict]:
        return self.body.get("alerts", [])


@dataclass
class Webhook:
    url: str
    posts: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def firing(self, alertname: str | None = None) -> list[tuple[float, dict]]:
        """(arrival time, alert) of every firing alert received, optionally of one name."""
        with self.lock:
            return [
                (post.at, alert)
                for post in self.posts
                for alert in post.alerts
                if alert.get("status") == "firing" and alertname in (None, alert["labels"].get("alertname"))
            ]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A tiny HTTP server on 127.0.0.1 (port chosen at run time) that records every JSON post."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with hook.lock:
                hook.posts.append(Received(time.time(), json.loads(body or b"{}")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
