"""The local autoscaler on real replicas: a client under load across a scale-out and a scale-in, zero failed requests;
a hold by the gate pins the count; `down` stops the supervisor with everything else."""

from __future__ import annotations

import time

import pytest

from modelops.targets.local import LocalTarget, procs
from modelops.waiting import wait_until
from tests.modelops.targets.local.test_target import example_body
from tests.traffic import Traffic

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)

# Small budgets so that a few clients keep one replica busy; short windows so the test takes seconds.
SETTINGS = {
    "deploy": {"replicas": 1, "min_replicas": 1, "max_replicas": 2, "cpu_per_replica": 0.25},
    "autoscale": {"enabled": True, "metric": "in_flight", "target": 2, "tolerance": 0.1, "scale_up_window_s": 0,
                  "scale_down_window_s": 2, "sync_period_s": 0.5},
}  # fmt: skip


def live_scaler(target: LocalTarget) -> dict:
    return target.status().autoscale.get("live", {})


def serving(target: LocalTarget) -> int:
    return sum(r.healthy for r in target.status().replicas)


def replicas(target: LocalTarget) -> int:
    return len(target.status().replicas)


def test_autoscaler_scales_out_and_back_in_under_load_without_failing_a_request_and_honours_a_hold(
    make_target, reference_bento
) -> None:
    target = make_target(**SETTINGS)
    status = target.up(reference_bento, replicas=1, workers=1)
    target.start_autoscaler("live")
    body = example_body(status.url)
    window = SETTINGS["autoscale"]["scale_down_window_s"]
    with Traffic(status.url, body, clients=1) as steady:
        # 5 closed-loop clients keep ~5 requests in flight on one replica: ceil(1 x 5/2) clamped to max_replicas 2.
        started = time.monotonic()
        with Traffic(status.url, body, clients=4) as burst:
            assert wait_until(lambda: serving(target) == 2, timeout=90), live_scaler(target)
            scaled_out_after = time.monotonic() - started
            burst.wait_for(100)  # the new replica serves its share
        # One client left: ~0.5 in flight per replica. Held by the gate, the pool keeps 2 replicas past the window.
        target.hold_scaling()
        held_at = time.time()
        assert wait_until(lambda: live_scaler(target).get("updated", 0) > held_at + window + 1, timeout=30)
        assert live_scaler(target)["held"] is True and replicas(target) == 2
        target.release_scaling()
        # Released: back to 1 once the 2-s window has passed, the removed replica drained first.
        assert wait_until(lambda: replicas(target) == 1, timeout=60), live_scaler(target)
        steady.wait_for(20)
    assert burst.failed == 0, f"failed requests across the scale-out: {dict(burst.failures)}"
    assert steady.failed == 0, f"failed requests across the scale-out and the scale-in: {dict(steady.failures)}"
    scaler = live_scaler(target)
    assert [(d["from"], d["to"]) for d in scaler["decisions"]] == [(1, 2), (2, 1)], scaler["decisions"]
    assert (scaler["desired"], scaler["actual"], scaler["running"]) == (1, 1, True)
    pid = scaler["pid"]
    stopped = target.down()
    assert any("live autoscaler" in line for line in stopped), stopped
    assert not procs.is_alive(pid), f"the supervisor (pid {pid}) outlived `down`"
    print(
        f"serving 2 replicas {scaled_out_after:.1f} s after the burst began; {burst.ok + steady.ok} requests, 0 failed"
    )
