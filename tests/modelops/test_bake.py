"""A promotion is final only after a bake: each bake rule fails once and passes once on fixed windows; then, on real
replicas with a paced client throughout, a candidate that turns slow after its first seconds of serving is promoted
and rolled back by the bake (0 failed client requests, a history entry, `modelops bake` exit 41), a healthy one
passes and the previous colour is retired when the rollback window ends, and a rollback in the window is a switch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from modelops import bake, canary
from modelops.bake import Watcher, judge_window, next_streak
from modelops.cli import app
from modelops.errors import ExitStatus, UsageError
from modelops.gate.run import history_file
from modelops.monitor.live_window import TrafficWindow
from modelops.monitor.resources import RssTrend, rss_trend
from modelops.promotion import abort, record_up, rollback
from modelops.state import write_json
from modelops.targets.local import LocalTarget, procs
from modelops.waiting import wait_until
from stacks.config import STACKS_DIR, PromotionSettings, SloSettings, load_stack_config
from tests.fixtures.slowdown import build_slowdown
from tests.traffic import Traffic

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)

SLO = SloSettings(p95_ms=250, p99_ms=500, max_error_ratio=0.001, min_rps=1)
PROMOTION = PromotionSettings(bake_min_requests=20, bake_max_rss_growth_mb_per_h=256)


def window(requests: int = 100, errors: int = 0, p95_ms: float | None = 20.0) -> TrafficWindow:
    return TrafficWindow(requests=requests, errors=errors, p95_ms=p95_ms, seconds=30.0, source="test")


LEAK = RssTrend(slope_mb_per_h=900.0, span_s=120.0, samples=8)
FLAT = RssTrend(slope_mb_per_h=5.0, span_s=120.0, samples=8)


# ------------------------------------------------------------------------------------------------ pure rules
@pytest.mark.parametrize(
    ("rule", "breaching", "passing"),
    [
        ("p95", (window(p95_ms=400.0), None), (window(p95_ms=240.0), None)),
        ("client requests failed", (window(errors=2), None), (window(errors=0), None)),
        ("memory grows", (window(), LEAK), (window(), FLAT)),
    ],
)
def test_each_bake_rule_breaches_over_its_limit_and_passes_under_it(rule, breaching, passing) -> None:
    breached = judge_window(*breaching, SLO, PROMOTION)
    assert breached.judged and len(breached.breaches) == 1 and rule in breached.breaches[0], breached
    clean = judge_window(*passing, SLO, PROMOTION)
    assert clean.judged and clean.breaches == [], clean


def test_breaches_name_the_setting_to_change() -> None:
    verdict = judge_window(window(p95_ms=400.0, errors=5), LEAK, SLO, PROMOTION)
    text = " ".join(verdict.breaches)
    for key in ("modelops:slo.p95_ms", "modelops:slo.max_error_ratio", "bake_max_rss_growth_mb_per_h"):
        assert key in text, text


def test_a_window_with_too_few_requests_or_no_source_is_not_judged_and_is_no_breach() -> None:
    for seen in (window(requests=5, errors=5, p95_ms=900.0), None):
        verdict = judge_window(seen, None, SLO, PROMOTION)
        assert not verdict.judged and verdict.breaches == [] and verdict.notes, verdict


def test_memory_is_judged_only_once_the_samples_span_a_minute() -> None:
    short = RssTrend(slope_mb_per_h=5000.0, span_s=30.0, samples=4)
    assert judge_window(window(), short, SLO, PROMOTION).breaches == []


def test_the_streak_counts_breaches_in_a_row_and_an_unjudged_window_does_not_reset_it() -> None:
    breach = judge_window(window(p95_ms=400.0), None, SLO, PROMOTION)
    clean = judge_window(window(), None, SLO, PROMOTION)
    unjudged = judge_window(window(requests=1), None, SLO, PROMOTION)
    assert next_streak(next_streak(0, breach), breach) == 2
    assert next_streak(next_streak(1, unjudged), breach) == 2
    assert next_streak(1, clean) == 0


def test_the_memory_trend_is_the_least_squares_slope_per_hour() -> None:
    samples = [(float(t), 200.0 + 0.25 * t) for t in range(0, 121, 10)]  # 0.25 MB/s = 900 MB/h
    found = rss_trend(samples)
    assert found is not None and found.slope_mb_per_h == pytest.approx(900.0) and found.span_s == 120.0
    assert rss_trend(samples[:2]) is None


# ------------------------------------------------------------------------------------------------ real replicas
# Shortened for a test (shipped: bake_s 300, bake_window_s 30, rollback_window_s 600): 2-s windows judge the same
# rules on the same client traffic, just sooner. The SLO and every other threshold are the shipped ones.
BODY = {"rows": [[1.0, 2.0]]}


@pytest.fixture(scope="module")
def versions(tmp_path_factory, bentoml_home) -> dict[str, str]:
    """The live version (always fast), a candidate slow after 6 s of serving, a candidate that stays fast."""
    return {
        "live": build_slowdown(tmp_path_factory.mktemp("live"), None),
        "turns_slow": build_slowdown(tmp_path_factory.mktemp("turns_slow"), 6.0),
        "healthy": build_slowdown(tmp_path_factory.mktemp("healthy"), None),
    }


def stack(tmp_path: Path, monkeypatch, **promotion: float) -> LocalTarget:
    """The shipped `local` stack file with this test's state dir and a shortened bake; the CLI reads the same."""
    document = yaml.safe_load((STACKS_DIR / "Pulumi.local.yaml").read_text())
    config = document["config"]
    config["modelops:deploy"] = {**config["modelops:deploy"], "replicas": 1, "cpu_per_replica": 0.25}
    config["modelops:local"] = {**config["modelops:local"], "state_dir": str(tmp_path / "state"),
                                "ready_timeout_s": 90}  # fmt: skip
    config["modelops:monitor"] = {"log_dir": str(tmp_path / "predictions"),
                                  "feedback_file": str(tmp_path / "feedback.jsonl")}  # fmt: skip
    config["modelops:promotion"] = {**config["modelops:promotion"], "bake_window_s": 2, **promotion}
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.local.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setattr("stacks.config.STACKS_DIR", stacks)
    return LocalTarget(load_stack_config("local"))


@pytest.fixture
def deployment(tmp_path, monkeypatch, request, versions):
    target = stack(tmp_path, monkeypatch, **request.param)
    try:
        target.up(versions["live"], replicas=1, workers=1)
        record_up(history_file(target.settings), versions["live"], new_deployment=True)
        yield target
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == [], f"processes left behind by {target.dir}"


def promote(target: LocalTarget, bento: str) -> None:
    target.deploy_candidate(bento, replicas=1, workers=1)
    canary.promote(target, history_file(target.settings), bento, None, target.settings)  # canary off: blue/green


def bake_state(target: LocalTarget) -> dict:
    return bake.read_status(target.dir) or {}


@pytest.mark.parametrize("deployment", [{"bake_s": 60, "rollback_window_s": 90}], indirect=True)
def test_a_candidate_that_turns_slow_after_the_switch_is_rolled_back_by_the_bake_with_no_failed_request(
    deployment, versions
) -> None:
    target, live, bad = deployment, versions["live"], versions["turns_slow"]
    url = target.status().url
    with Traffic(url, BODY, clients=4, interval_s=0.05) as client:  # a paced client: 4 x 20 req/s
        promote(target, bad)
        assert target.status().bento == bad, "promoted: correct and fast for its first seconds"
        assert bake_state(target)["state"] == bake.BAKING and bake_state(target)["running"]
        with pytest.raises(UsageError, match="still baking"):
            bake.require_settled(target.dir)  # no new gate on top of an unfinished promotion
        assert wait_until(lambda: bake_state(target).get("state") in bake.SETTLED, timeout=120), bake_state(target)
        client.wait_for(40)
    state = bake_state(target)
    assert state["state"] == bake.ROLLED_BACK, state
    assert client.failed == 0, f"client requests failed across the promotion, bake and rollback: {client.failures}"
    status = target.status()
    assert status.bento == live and status.candidate is None, "back on the previous version, the bad one retired"
    breached = [w for w in state["windows"] if w["breaches"]]
    assert len(breached) >= 2 and all("p95" in " ".join(w["breaches"]) for w in breached[-2:]), state["windows"]
    assert any(w["judged"] and not w["breaches"] for w in state["windows"]), "fast at first: clean windows first"
    entries = history_file(target.settings).load().entries
    last_two = [(e.action, e.state, e.bento) for e in entries[-2:]]
    assert last_two == [("promote", "done", bad), ("rollback", "done", live)], last_two
    assert entries[-1].note.startswith("automatic: the bake of " + bad), entries[-1].note
    result = CliRunner().invoke(app, ["bake", "--stack", "local"])
    assert result.exit_code == ExitStatus.BAKE_ROLLED_BACK == 41, result.output
    shown = CliRunner().invoke(app, ["status", "--stack", "local"])
    assert shown.exit_code == 0 and "rolled_back" in shown.output, shown.output
    print(f"rolled back {state['windows'][-1]['at_s']:.0f} s after the switch, after {len(state['windows'])} windows "
          f"(p95 {[w['p95_ms'] for w in state['windows']]} ms); {client.ok} client requests, 0 failed")  # fmt: skip


@pytest.mark.parametrize("deployment", [{"bake_s": 8, "rollback_window_s": 16}], indirect=True)
def test_a_healthy_candidate_passes_the_bake_and_the_previous_colour_is_retired_when_the_window_ends(
    deployment, versions
) -> None:
    target, live, good = deployment, versions["live"], versions["healthy"]
    url = target.status().url
    with Traffic(url, BODY, clients=4, interval_s=0.05) as client:
        promote(target, good)
        assert target.status().candidate.bento == live, "the previous colour stays up, warm"
        with pytest.raises(UsageError, match="kept warm for a rollback"):
            abort(target, history_file(target.settings))  # abort never removes the rollback's standby
        assert wait_until(lambda: bake_state(target).get("state") == bake.PASSED, timeout=60), bake_state(target)
        assert target.status().candidate is not None, "the bake is over, the rollback window is not"
        assert wait_until(lambda: target.status().candidate is None, timeout=60), bake_state(target)
        client.wait_for(40)
    assert client.failed == 0, f"client requests failed across the bake and the window: {dict(client.failures)}"
    state = bake_state(target)
    assert state["previous_retired"] and all(not w["breaches"] for w in state["windows"]), state
    assert wait_until(lambda: not bake_state(target)["running"], timeout=15), "the watcher ends with the window"
    assert CliRunner().invoke(app, ["bake", "--stack", "local"]).exit_code == 0


@pytest.mark.parametrize("deployment", [{"bake_s": 0, "rollback_window_s": 300}], indirect=True)
def test_a_rollback_within_the_window_is_a_switch_and_after_it_a_cold_boot(deployment, versions) -> None:
    """Measured, not asserted (timings on a shared machine): how long each rollback took; asserted: the warm one
    started no process, the cold one had to."""
    target, live, good = deployment, versions["live"], versions["healthy"]
    histories = history_file(target.settings)
    live_pids = [r.pid for r in target.status().replicas]
    url = target.status().url
    with Traffic(url, BODY, clients=4, interval_s=0.05) as client:
        promote(target, good)
        warm_began = time.monotonic()
        rollback(target, histories)
        warm_s = time.monotonic() - warm_began
        assert [r.pid for r in target.status().replicas] == live_pids, "warm: the previous replicas took over"
        bake.stop(target.dir, "the test rolled back")
        target.settings = target.settings.with_overrides(promotion={"rollback_window_s": 0})
        promote(target, good)  # no window: the previous colour is retired at once
        assert target.status().candidate is None
        cold_began = time.monotonic()
        rollback(target, histories)
        cold_s = time.monotonic() - cold_began
        client.wait_for(40)
    assert client.failed == 0, f"client requests failed across both rollbacks: {dict(client.failures)}"
    assert target.status().bento == live and [r.pid for r in target.status().replicas] != live_pids
    print(f"rollback within the window (a switch): {warm_s:.2f} s; after it (deploy, then switch): {cold_s:.2f} s")


def test_the_watcher_stops_when_the_live_version_changes_under_it(tmp_path) -> None:
    """Someone else's rollback or promotion wins: the bake does nothing to a version it is not watching."""

    class Moved:
        dir = tmp_path

        def status(self):
            from modelops.targets.base import TargetStatus

            return TargetStatus(target="fake", url="", bento="svc:v9", live="blue")

    write_json(bake.status_file(tmp_path), {"bento": "svc:v2", "previous": "svc:v1", "state": bake.BAKING,
                                                 "started": time.time()})  # fmt: skip
    settings = load_stack_config("local").with_overrides(promotion={"bake_s": 30, "rollback_window_s": 0})
    outcome = Watcher(Moved(), settings, tmp_path, sleep=lambda _s: None).run()  # type: ignore[arg-type]
    assert outcome == bake.SUPERSEDED and bake_state_at(tmp_path)["state"] == bake.SUPERSEDED


def bake_state_at(path: Path) -> dict:
    return bake.read_status(path) or {}
