"""The canary: pure analysis rules on fixed windows (each rule fails once and passes once), and real rollouts on
real replicas behind HAProxy under client load — a healthy candidate reaches 100 %, one that turns bad under live
traffic is rolled back on its own, and no client request fails across the steps and the rollback."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops import canary
from modelops.canary import SOURCE_HAPROXY, Observation, histogram_quantile, judge, run_canary
from modelops.canary_stats import Side
from modelops.errors import ExitStatus
from modelops.gate.run import history_file
from modelops.promotion import HistoryFile, reconcile
from modelops.targets.local import LocalTarget, procs
from stacks.config import CanarySettings, ConfigError, load_stack_config
from tests.conftest import local_settings
from tests.fixtures.faulty import build_faulty
from tests.traffic import Traffic

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)

SETTINGS = CanarySettings(min_requests=20, max_error_ratio=0.01, max_p95_rise=0.5, min_p95_rise_ms=25)
# 400 requests a colour, all between 10 and 25 ms (the rules' statistics have their own tests with real spread:
# tests/modelops/test_canary_stats.py); here: what the canary adds to them.
HEALTHY = Side(400, 0, {0.01: 0.0, 0.025: 400.0, math.inf: 400.0})


def seen(candidate: Side = HEALTHY, live: Side = HEALTHY, alerts=()) -> Observation:
    return Observation(live=live, candidate=candidate, new_alerts=alerts, source="test", seconds=30.0)


# ----------------------------------------------------------------------------------------------------- rules
def test_an_alert_that_started_firing_fails_the_interval_and_none_passes_it() -> None:
    bad = judge(seen(alerts=("PredictErrorRatioOverLimit colour=green",)), SETTINGS)
    assert bad.status == "fail" and bad.rules["alerts"] == "fail" and "alerts started firing" in bad.reasons[0]
    good = judge(seen(alerts=()), SETTINGS)
    assert good.status == "pass" and good.rules["alerts"] == "pass", good


def test_breach_reasons_name_the_setting_to_change() -> None:
    verdict = judge(seen(Side(400, 50, HEALTHY.buckets)), SETTINGS)
    assert "50 of 400" in verdict.reasons[0] and "modelops:canary.max_error_ratio" in verdict.reasons[0]


def test_without_prometheus_alerts_are_reported_not_evaluated_never_passed() -> None:
    verdict = judge(seen(alerts=None), SETTINGS)
    assert verdict.status == "pass" and verdict.rules["alerts"].startswith("not evaluated: no Prometheus")


def test_a_failing_metrics_read_is_missing_data_and_the_interval_inconclusive(tmp_path) -> None:
    """HaproxySource against a replica URL nothing listens on: its latencies are missing, never dropped."""
    import socket

    from modelops.targets.base import PoolStatus, ReplicaStatus, TargetStatus

    with socket.socket() as probe:  # a loopback port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    rows = [{"svname": "BACKEND", "pxname": f"be_{c}", "req_tot": str(n), "hrsp_5xx": "0"} for c, n in
            (("blue", 0), ("green", 0))]  # fmt: skip
    replica = ReplicaStatus(name="r1", url=closed, healthy=True)
    status = TargetStatus(target="local", url=closed, bento="v1", live="blue", pools={
        "blue": PoolStatus("blue", "v1", closed, [replica], 1, 90),
        "green": PoolStatus("green", "v2", closed, [replica], 1, 10)})  # fmt: skip
    source = canary.HaproxySource(lambda: rows)
    source.begin(status)
    observed = source.observe(status)
    assert observed.candidate.buckets is None and "/metrics could not be read" in (observed.candidate.missing or "")
    verdict = judge(observed, SETTINGS)
    assert verdict.status == "inconclusive" and verdict.rules["latency"].startswith("inconclusive")

    def broken() -> list[dict[str, str]]:
        raise OSError("the runtime API socket is gone")

    lost = canary.HaproxySource(broken)
    lost.begin(status)
    verdict = judge(lost.observe(status), SETTINGS)
    assert verdict.status == "inconclusive" and "HAProxy's stats could not be read" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        ({0.01: 0, 0.025: 100, math.inf: 100}, 0.01 + 0.015 * 0.95),  # all in one bucket: interpolated in it
        ({0.025: 90, 0.5: 100, math.inf: 100}, 0.025 + 0.475 * 0.5),  # the 95th of 100 is halfway in (0.025, 0.5]
        ({0.5: 0, math.inf: 10}, 0.5),  # beyond the last finite bound: that bound
        ({0.5: 0, math.inf: 0}, None),  # nothing finished
    ],
)
def test_p95_from_histogram_buckets_matches_prometheus_histogram_quantile(buckets, expected) -> None:
    got = histogram_quantile(0.95, buckets)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize("steps", [[5, 25, 50], [50, 25, 100], [0, 100], [5, 5, 100]])
def test_canary_steps_must_increase_and_end_at_100(steps, tmp_path) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(f"config:\n  modelops:target: local\n  modelops:canary:\n    steps: {steps}\n")
    with pytest.raises(ConfigError, match=r"canary.*steps.*ending at 100"):
        load_stack_config("bad", stacks_dir=tmp_path)


# ---------------------------------------------------------------------------------------------- history
def test_a_canary_entry_keeps_its_judged_steps_and_a_crash_mid_canary_settles_from_what_is_live(tmp_path) -> None:
    histories = HistoryFile(tmp_path / "history.json")
    entry = histories.begin("canary", "svc:v2", "svc:v1", None)
    histories.add_step(entry, canary.CanaryStep(weight=5, passed=True, source="test"))
    settled = reconcile(histories, "svc:v1").entries[-1]  # the process died at 5 %: v1 still live
    assert (settled.state, [s.weight for s in settled.canary]) == ("aborted", [5])
    assert "interrupted after [5] %" in settled.note


# ------------------------------------------------------------------------------------------ real replicas
BODY = {"rows": [[1.0, 2.0]]}
# Loosened from the shipped settings, to stay seconds long on a busy 2-core machine: intervals sized to catch a 10 %
# error ratio (90 requests a colour, shipped 5 %: 180), looked at every second (shipped 2 s), the first step at 25 %
# (shipped 5 %) so the candidate gets its requests fast, and up to 30 s an interval (shipped 60 s).
QUICK = {"steps": [25, 50, 100], "window_s": 30, "check_interval_s": 1, "detect_error_ratio": 0.1,
         "max_p95_rise": 0.5, "min_p95_rise_ms": 25}  # fmt: skip


@pytest.fixture(scope="module")
def faulty_versions(tmp_path_factory, bentoml_home) -> tuple[str, str]:
    """Two builds of the test bento (10 ms per request, faults on demand): the live version and the candidate."""
    return build_faulty(tmp_path_factory.mktemp("v1")), build_faulty(tmp_path_factory.mktemp("v2"))


@pytest.fixture
def deployment(tmp_path: Path, faulty_versions) -> Iterator[LocalTarget]:
    # The bake and the rollback window after the 100 % step are off (shipped: 300 s / 600 s): these tests are about
    # the canary's steps; tests/modelops/test_bake.py covers what follows the switch.
    target = LocalTarget(local_settings(tmp_path / "state", canary={**QUICK, "enabled": True}, deploy={"replicas": 1},
                                        promotion={"bake_s": 0, "rollback_window_s": 0}))  # fmt: skip
    try:
        target.up(faulty_versions[0], replicas=1, workers=1)
        yield target
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == [], f"processes left behind by {target.dir}"


def deploy_candidate(target: LocalTarget, bento: str, fault: str = "") -> None:
    os.environ["MODELOPS_TEST_FAULT"] = fault  # read by the candidate's replicas when they start
    try:
        target.deploy_candidate(bento, replicas=1, workers=1)
    finally:
        os.environ.pop("MODELOPS_TEST_FAULT", None)


def test_a_healthy_candidate_reaches_100_percent_under_load_with_no_failed_request(deployment, faulty_versions):
    live, candidate = faulty_versions
    deploy_candidate(deployment, candidate)
    histories = history_file(deployment.settings)
    with Traffic(deployment.status().url, BODY, clients=8) as traffic:
        outcome = canary.promote(deployment, histories, candidate, None, deployment.settings)
        traffic.wait_for(50)
    assert outcome.promoted and outcome.exit_status == ExitStatus.OK, outcome.reason
    assert traffic.failed == 0, f"failed client requests across the canary: {dict(traffic.failures)}"
    assert [s.weight for s in outcome.steps] == [25, 50] and all(s.source == SOURCE_HAPROXY for s in outcome.steps)
    needed = outcome.steps[0].measured["needed_per_side"]
    assert needed == 90 and all(s.measured["candidate_requests"] >= needed for s in outcome.steps), outcome.steps
    assert all(s.measured["intervals_passed"] == 1 for s in outcome.steps)
    status = deployment.status()
    assert status.bento == candidate and status.candidate is None, "the candidate is live, the old pool retired"
    last = histories.load().entries[-1]
    assert (last.action, last.state, last.bento, last.previous) == ("canary", "done", candidate, live)
    assert [s.weight for s in last.canary] == [25, 50]


# Healthy for its first 120 requests, faulty from then on (the fault appears under live traffic, not from the first
# request). One partial step that needs 3 passed intervals of 90 requests: the fault starts during them.
@pytest.mark.parametrize(
    ("fault", "rule"),
    [
        ("slow@120", "p95"),  # answers after 300 ms instead of 10: every client request still succeeds
        ("errors@120", "error ratio"),  # one request in four fails with a 500 (HAProxy does not retry a 500)
    ],
)
def test_a_candidate_turning_bad_under_live_traffic_is_rolled_back_automatically(
    deployment, faulty_versions, fault, rule
) -> None:
    live, candidate = faulty_versions
    deploy_candidate(deployment, candidate, fault)
    histories = history_file(deployment.settings)
    with Traffic(deployment.status().url, BODY, clients=8) as traffic:
        settings = deployment.settings.canary.model_copy(update={"steps": [25, 100], "intervals_per_step": 3})
        outcome = run_canary(deployment, histories, candidate, None, settings, canary.metrics_source(deployment))
        traffic.wait_for(50)
    assert not outcome.promoted and outcome.exit_status == ExitStatus.CANARY_ROLLED_BACK, outcome.reason
    assert "rolled back at 25 % (2 failed intervals, over the limit 1)" in outcome.reason, outcome.reason
    assert rule in outcome.reason.replace("_", " "), outcome.reason
    (step,) = outcome.steps
    assert step.measured["intervals_failed"] == 2 and step.measured["intervals_passed"] <= 2, step.measured
    status = deployment.status()
    assert status.bento == live and status.candidate is None, "live untouched, the candidate removed"
    assert status.pools[status.live].weight == 100
    last = histories.load().entries[-1]
    assert (last.action, last.state, last.note) == ("canary", "rolled_back", outcome.reason)
    if fault == "slow":
        assert traffic.failed == 0, f"failed client requests across the canary and its rollback: {traffic.failures}"
    else:
        # Every request a client saw fail was one the analysis counted: nothing failed outside the candidate.
        counted = outcome.steps[-1].measured["candidate_errors"]
        assert set(traffic.failures) <= {"HTTP 500"}, traffic.failures
        assert traffic.failed <= counted + 8, f"{traffic.failed} client failures, {counted} counted by the canary"


class NoLatencies(canary.HaproxySource):
    """HAProxy's real counts, but every replica's /metrics read fails (as when a replica stops answering it)."""

    @staticmethod
    def _buckets(status):
        return {c: {r.name: f"{r.url}/metrics could not be read (test)" for r in p.replicas}
                for c, p in status.pools.items()}  # fmt: skip


def test_missing_data_pauses_the_canary_and_rolls_back_after_the_inconclusive_limit(deployment, faulty_versions):
    live, candidate = faulty_versions
    deploy_candidate(deployment, candidate)
    histories = history_file(deployment.settings)
    with Traffic(deployment.status().url, BODY, clients=8) as traffic:
        outcome = run_canary(deployment, histories, candidate, None, deployment.settings.canary,
                             NoLatencies(deployment.api.stats))  # fmt: skip
        traffic.wait_for(50)
    assert not outcome.promoted and outcome.exit_status == ExitStatus.CANARY_ROLLED_BACK, outcome.reason
    assert "rolled back at 25 % (3 inconclusive (missing data) intervals, over the inconclusive limit 2)" in (
        outcome.reason
    ), outcome.reason
    assert "/metrics could not be read" in outcome.reason
    assert (
        outcome.steps[-1].measured["intervals_inconclusive"] == 3
        and outcome.steps[-1].measured["intervals_passed"] == 0
    )
    assert traffic.failed == 0, f"failed client requests: {dict(traffic.failures)}"
    status = deployment.status()
    assert status.bento == live and status.candidate is None


def test_removing_a_candidate_that_holds_live_traffic_gives_it_back_first(deployment, faulty_versions) -> None:
    """What the next gate does after a canary was killed mid-way: no request lands on a draining pool."""
    deploy_candidate(deployment, faulty_versions[1])
    with Traffic(deployment.status().url, BODY, clients=8) as traffic:
        deployment.shift(50)
        traffic.wait_for(50)
        deployment.remove_candidate()
        traffic.wait_for(50)
    assert traffic.failed == 0, f"failed client requests: {dict(traffic.failures)}"
    status = deployment.status()
    assert status.candidate is None and status.pools[status.live].weight == 100
