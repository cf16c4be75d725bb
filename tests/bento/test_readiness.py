"""Readiness tied to the batcher, on real replicas behind HAProxy: a model call that never returns takes its replica
out of rotation once its oldest work waited past the request timeout, and clients keep being answered by the other
replica. Before, the event loop kept answering /readyz 200 while the model thread hung (issue 17 item 14)."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from modelops.targets.local import procs
from modelops.waiting import wait_until
from tests.fixtures.hanging import POISON, build_hanging
from tests.traffic import Traffic

# Shortened for a test (shipped: limits.request_timeout_s 10): the rule is the same, it fires sooner.
TIMEOUT_S = 2.0
GOOD = {"rows": [[1.0, 2.0]]}


@pytest.fixture(scope="module")
def hanging_bento(tmp_path_factory, bentoml_home) -> str:
    return build_hanging(tmp_path_factory.mktemp("hanging"))


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_predict_that_never_returns_fails_readiness_and_the_balancer_stops_sending_it_requests(
    make_target, hanging_bento
) -> None:
    target = make_target(limits={"request_timeout_s": TIMEOUT_S})
    status = target.up(hanging_bento, replicas=2, workers=1)
    stuck, other = status.replicas
    assert ready(stuck.url) and ready(other.url)

    def poison() -> None:  # answered 504 by BentoML's timeout; the model thread stays hung for good
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(stuck.url + "/predict", json={"rows": [[POISON, 0.0]]}, timeout=TIMEOUT_S * 5)

    sent = time.monotonic()
    threading.Thread(target=poison, daemon=True).start()
    assert wait_until(lambda: not ready(stuck.url), timeout=TIMEOUT_S + 10), "the hung replica still says ready"
    not_ready_after = time.monotonic() - sent
    assert not_ready_after >= TIMEOUT_S - 0.5, f"not ready after {not_ready_after:.1f} s: before the timeout"

    def out_of_rotation() -> bool:
        replicas = {r.url: r for r in target.status().replicas}
        return replicas[stuck.url].in_rotation is False

    assert wait_until(out_of_rotation, timeout=15), target.status().replicas
    assert ready(other.url), "the other replica is untouched"
    with Traffic(status.url, GOOD, clients=4) as clients:
        clients.wait_for(100)
    assert clients.failed == 0, f"requests failed with the hung replica out of rotation: {dict(clients.failures)}"
    assert procs.is_alive(stuck.pid or 0), "the replica process lives on (hung): readiness, not a crash, took it out"
    print(f"not ready {not_ready_after:.1f} s after the hung request was sent (timeout {TIMEOUT_S:g} s)")
