"""Background client traffic for tests that check a property under load (no failed request across X)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from modelops.waiting import wait_until


@dataclass
class Traffic:
    """``clients`` threads posting ``body`` to ``url`` back to back, each on its own keep-alive connection."""

    url: str
    body: dict
    clients: int = 8
    interval_s: float = 0.0  # > 0: each client paced to one request per interval (a steady client, not a flood)
    ok: int = 0
    failures: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        payload = json.dumps(self.body)
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, args=(payload,), daemon=True)
            thread.start()
            self._threads.append(thread)
        assert wait_until(lambda: self.ok >= self.clients, timeout=30), f"no traffic got through to {self.url}"
        return self

    def _run(self, payload: str) -> None:
        with httpx.Client(timeout=30, headers={"content-type": "application/json"}) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                if self.interval_s > 0:
                    due += self.interval_s
                    # Pacing is the point here: a timed wait for the next send, interrupted by a stop.
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        break
                try:
                    response = client.post(self.url + "/predict", content=payload)
                    outcome = "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    if outcome == "ok":
                        self.ok += 1
                    else:
                        self.failures[outcome] += 1

    def wait_for(self, more: int, timeout: float = 30) -> None:
        """Let at least ``more`` further requests succeed."""
        target = self.ok + more
        assert wait_until(lambda: self.ok >= target, timeout=timeout), f"traffic stalled at {self.ok} requests"

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def cut_short(self) -> dict[str, int]:
        """Failures whose response had begun (headers received, connection closed before the body): a replica killed
        between writing the two (uvicorn writes them apart). No balancer can retry an answer its client is reading."""
        return {outcome: n for outcome, n in self.failures.items() if outcome.startswith(CUT_SHORT)}


# What httpx says when a response's headers arrived and its connection closed before the body.
CUT_SHORT = "RemoteProtocolError: peer closed connection without sending complete message body"


def log_production_traffic(target, bento: str, requests: int) -> str:
    """``requests`` one-row production requests of normal client traffic (modelops/monitor/traffic.py: held-out
    rows, seeded) to the live URL of ``target``, until its replicas have logged them all. Returns the model version
    they were logged under."""
    from bento.prediction_log import read_window
    from modelops.bentos import describe
    from modelops.monitor import drift_report, traffic

    model = describe(bento).models[0]
    metadata, _ = drift_report.load_model(model)
    url = target.status().url
    with httpx.Client(timeout=30) as client:
        for i, body in enumerate(traffic.scenario(metadata, "normal", requests, seed=1).bodies()):
            reply = client.post(url + "/predict", json=body, headers={"x-request-id": f"t{i}"})
            reply.raise_for_status()

    def logged() -> int:
        return sum(r.model_version == model for r in read_window(target.prediction_log_dir).rows)

    assert wait_until(lambda: logged() >= requests, 15), f"{logged()} of {requests} requests logged"
    return model
