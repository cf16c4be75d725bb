"""Promotion history and recovery: rollback only within the current deployment and only to a version that takes the
live version's requests; `modelops abort`; HAProxy brought back from state. Pure rules on fixed histories first,
then the same properties on real replicas with a client sending requests throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from modelops.cli import app
from modelops.errors import ExitStatus, UsageError
from modelops.gate.run import history_file
from modelops.promotion import (
    Entry,
    History,
    HistoryFile,
    RollbackRefusedError,
    abort,
    record_up,
    rollback_target,
)
from modelops.targets.local import LocalTarget, procs
from modelops.waiting import wait_until
from stacks.config import STACKS_DIR
from tests.conftest import local_settings
from tests.fixtures.faulty import build_faulty
from tests.modelops.targets.local.test_target import example_body
from tests.traffic import Traffic

pytestmark = pytest.mark.exclusive  # judges timing on real replicas: runs alone (make test's second phase)


# ------------------------------------------------------------------------------------------------ pure rules
def history_of(tmp_path: Path, *steps: tuple[str, str]) -> History:
    """Replay ("up"|"up-fresh"|"promote"|"rollback", bento) steps into a history file, as the commands write it."""
    histories = HistoryFile(tmp_path / "history.json")
    for action, bento in steps:
        if action.startswith("up"):
            record_up(histories, bento, new_deployment=action == "up-fresh")
            continue
        last = histories.load().last_done()
        entry = histories.begin(action, bento, last.bento if last else None)  # type: ignore[arg-type]
        histories.finish(entry, "done")
    return histories.load()


def test_rollback_goes_back_to_the_version_live_before_in_the_same_deployment(tmp_path) -> None:
    history = history_of(tmp_path, ("up-fresh", "svc:v1"), ("promote", "svc:v2"))
    assert rollback_target(history, "svc:v2") == "svc:v1"
    again = history_of(tmp_path / "again", ("up-fresh", "svc:v1"), ("promote", "svc:v2"), ("rollback", "svc:v1"))
    assert rollback_target(again, "svc:v1") == "svc:v2", "a rollback can itself be undone within the deployment"


def test_rollback_never_reaches_into_an_earlier_deployment_and_names_both_versions(tmp_path) -> None:
    # The scenario: a user's bento deployed, `down`, the wine model deployed with `up` on the empty stack.
    history = history_of(tmp_path, ("up-fresh", "user:v1"), ("up-fresh", "wine:v1"))
    assert [e.deployment for e in history.entries] == [1, 2]
    with pytest.raises(RollbackRefusedError) as refused:
        rollback_target(history, "wine:v1")
    message = str(refused.value)
    assert "wine:v1" in message and "user:v1" in message, message
    assert "deployment #1" in message and "earlier deployment" in message, message


def test_an_up_on_a_serving_stack_stays_in_its_deployment(tmp_path) -> None:
    history = history_of(tmp_path, ("up-fresh", "svc:v1"), ("up", "svc:v2"))
    assert [e.deployment for e in history.entries] == [1, 1]
    assert rollback_target(history, "svc:v2") == "svc:v1"


def test_a_previous_version_not_live_in_this_deployment_is_refused(tmp_path) -> None:
    history = history_of(tmp_path, ("up-fresh", "svc:v1"), ("up-fresh", "svc:v3"))
    odd = Entry(id=3, time=0.0, action="promote", bento="svc:v4", previous="svc:v1", state="done", deployment=2)
    history.entries.append(odd)  # a record claiming v1 was live before v4: v1 was, but in deployment 1
    with pytest.raises(RollbackRefusedError, match=r"svc:v1 was not live in the current deployment #2"):
        rollback_target(history, "svc:v4")


def test_a_history_that_does_not_know_the_live_version_refuses(tmp_path) -> None:
    history = history_of(tmp_path, ("up-fresh", "svc:v1"), ("promote", "svc:v2"))
    with pytest.raises(RollbackRefusedError, match="no record that svc:v9 went live"):
        rollback_target(history, "svc:v9")


def test_entries_written_before_deployments_were_numbered_keep_their_previous_version(tmp_path) -> None:
    legacy = History(entries=[
        Entry(id=1, time=0.0, action="up", bento="svc:v1", previous=None, state="done"),
        Entry(id=2, time=0.0, action="promote", bento="svc:v2", previous="svc:v1", state="done"),
    ])  # fmt: skip
    assert rollback_target(legacy, "svc:v2") == "svc:v1"


# ------------------------------------------------------------------------------------------ real replicas, CLI
@pytest.fixture(scope="module")
def user_bento(tmp_path_factory, bentoml_home) -> str:
    """A user's bento with another API than the wine model's: rows of any length, integer answers."""
    return build_faulty(tmp_path_factory.mktemp("user"))


@pytest.fixture
def cli_stack(tmp_path: Path, monkeypatch) -> tuple[str, LocalTarget]:
    """A `local` stack file like the shipped one, its state and logs in this test's directory; the CLI reads it."""
    document = yaml.safe_load((STACKS_DIR / "Pulumi.local.yaml").read_text())
    config = document["config"]
    config["modelops:deploy"] = {**config["modelops:deploy"], "replicas": 1, "cpu_per_replica": 0.25}
    config["modelops:local"] = {**config["modelops:local"], "state_dir": str(tmp_path / "state"),
                                "ready_timeout_s": 90}  # fmt: skip
    config["modelops:monitor"] = {"log_dir": str(tmp_path / "predictions"),
                                  "feedback_file": str(tmp_path / "feedback.jsonl")}  # fmt: skip
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.local.yaml").write_text(yaml.safe_dump(document))
    monkeypatch.setattr("stacks.config.STACKS_DIR", stacks)
    from stacks.config import load_stack_config

    target = LocalTarget(load_stack_config("local"))
    yield "local", target
    target.down()
    assert procs.marked_processes(target.deployment) == [], f"processes left behind by {target.dir}"


def modelops(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_rollback_into_an_earlier_deployment_is_refused_while_clients_keep_being_served(
    cli_stack, user_bento, reference_bento
) -> None:
    """Issue 17 item 16 as a user did it: a user's bento, `down`, the wine model with `up`, then `rollback` while a
    client sends wine requests. Before: rollback switched live traffic to the earlier regressor (1,902 HTTP 400s)."""
    stack, target = cli_stack
    assert modelops("up", "--stack", stack, "--bento", user_bento)[0] == 0
    assert modelops("down", "--stack", stack)[0] == 0
    code, output = modelops("up", "--stack", stack, "--bento", reference_bento)
    assert code == 0, output
    url = target.status().url
    with Traffic(url, example_body(url), clients=4) as traffic:
        traffic.wait_for(50)
        code, output = modelops("rollback", "--stack", stack)
        traffic.wait_for(50)
    assert code == ExitStatus.USAGE, output
    assert reference_bento in output and user_bento in output and "earlier deployment" in output, output
    assert traffic.failed == 0, f"client requests failed across the refused rollback: {dict(traffic.failures)}"
    status = target.status()
    assert status.bento == reference_bento and status.candidate is None, "nothing was deployed or switched"
    entries = history_file(target.settings).load().entries
    assert [(e.action, e.bento, e.deployment) for e in entries] == [
        ("up", user_bento, 1), ("up", reference_bento, 2)
    ]  # fmt: skip


def test_rollback_to_a_version_with_another_request_schema_is_refused_naming_both(
    cli_stack, user_bento, reference_bento
) -> None:
    """Within one deployment: the user's bento live, then the wine model promoted over it; going back would hand the
    wine clients an API that wants other requests."""
    from modelops.promotion import switch

    stack, target = cli_stack
    assert modelops("up", "--stack", stack, "--bento", user_bento)[0] == 0
    target.deploy_candidate(reference_bento, replicas=1, workers=1)
    switch(target, history_file(target.settings), "promote", reference_bento, None)
    url = target.status().url
    with Traffic(url, example_body(url), clients=4) as traffic:
        traffic.wait_for(50)
        code, output = modelops("rollback", "--stack", stack)
        traffic.wait_for(50)
    assert code == ExitStatus.USAGE, output
    assert f"from {reference_bento} to {user_bento}" in output and "does not take the requests" in output, output
    assert "POST /predict" in output, "the difference is named"
    assert traffic.failed == 0, f"client requests failed across the refused rollback: {dict(traffic.failures)}"
    assert target.status().bento == reference_bento


def test_up_without_a_bento_deploys_the_version_the_history_records_as_live(
    cli_stack, user_bento, reference_bento
) -> None:
    """Not the last build: `modelops build` ran for the reference model last, yet the recorded live version returns."""
    from modelops import bentos

    stack, target = cli_stack
    assert bentos.last_built() not in (None, user_bento), "without the history, `up` would deploy the last build"
    assert modelops("up", "--stack", stack, "--bento", user_bento)[0] == 0
    assert modelops("down", "--stack", stack)[0] == 0
    code, output = modelops("up", "--stack", stack)
    assert code == 0, output
    assert "the version the promotion history records as live" in output, output
    assert target.status().bento == user_bento


# ------------------------------------------------------------------------------- crashes and `modelops abort`
# A canary that passes healthy steps in a second or two (these tests are about crashes, not the analysis): intervals
# sized for a 50 % error ratio at power 0.5 and alpha 0.2 (a few requests a colour; shipped: 5 %, 0.8, 0.01), looked
# at every 0.2 s (shipped 2 s), lenient latency rules.
FAST = {"steps": [10, 50, 100], "window_s": 10, "check_interval_s": 0.2, "alpha": 0.2, "power": 0.5,
        "detect_error_ratio": 0.5, "min_requests": 2, "max_p95_rise": 5, "min_p95_rise_ms": 500}  # fmt: skip
# The bake and the warm window are off here: these tests are about what a crash leaves, not about what follows a
# switch (tests/modelops/test_bake.py).
NO_BAKE = {"bake_s": 0, "rollback_window_s": 0}
BODY = {"rows": [[1.0, 2.0]]}
CANARY = """
import sys
from pathlib import Path
from modelops import canary
from modelops.gate.run import history_file
from modelops.targets.local import LocalTarget
from tests.conftest import local_settings
import json
settings = local_settings(Path(sys.argv[1]), canary={"enabled": True, **json.loads(sys.argv[3])},
                          promotion=json.loads(sys.argv[4]))
target = LocalTarget(settings)
canary.promote(target, history_file(settings), sys.argv[2], None, settings)
"""


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, bentoml_home) -> tuple[str, str]:
    """Two builds of the fast test bento (10 ms per request): a live version and a candidate, one request schema."""
    return build_faulty(tmp_path_factory.mktemp("v1")), build_faulty(tmp_path_factory.mktemp("v2"))


@pytest.mark.parametrize(
    ("point", "expected_live"),
    [
        ("canary:after-shift-10", "old"),
        ("local:green-weight-50", "old"),  # HAProxy sends half the traffic to green; nothing recorded yet
        ("canary:after-shift-50", "old"),
        ("local:green-weight-100", "new"),  # the switch happened in HAProxy; the state file still says blue
        ("canary:after-switch", "new"),
        ("canary:after-record", "new"),
    ],
)
def test_sigkill_at_each_step_of_a_canary_then_abort_recovers_with_no_failed_request(
    point, expected_live, tmp_path, two_versions
) -> None:
    old, new = two_versions
    state_dir = tmp_path / "state"
    target = LocalTarget(local_settings(state_dir, canary={"enabled": True, **FAST}, promotion=NO_BAKE))
    histories = history_file(target.settings)
    try:
        target.up(old, replicas=1, workers=1)
        record_up(histories, old, new_deployment=True)
        target.deploy_candidate(new, replicas=1, workers=1)
        with Traffic(target.status().url, BODY, clients=4) as traffic:
            env = {**os.environ, "MODELOPS_FAILPOINT": point}
            argv = [sys.executable, "-c", CANARY, str(state_dir), new, json.dumps(FAST), json.dumps(NO_BAKE)]
            done = subprocess.run(argv, env=env, check=False)
            assert done.returncode == -signal.SIGKILL, f"the promoting process was not killed at {point}"
            status = target.status()
            live = {"old": old, "new": new}[expected_live]
            assert status.bento == live, f"killed at {point}: {status.bento} is live, expected {live}"
            assert status.pools[status.live].weight >= 50 or expected_live == "old"
            traffic.wait_for(50)
            aborted = abort(target, histories)
            traffic.wait_for(50)
        assert traffic.failed == 0, f"failed client requests across the crash and the abort: {dict(traffic.failures)}"
        status = target.status()
        assert status.bento == live and status.candidate is None and status.pools[status.live].weight == 100
        assert aborted == (new if expected_live == "old" else old), "the pool that is not live was removed"
        entries = histories.load().entries
        canary_entry = next(e for e in entries if e.action == "canary")
        assert canary_entry.state == ("aborted" if expected_live == "old" else "done"), canary_entry
        assert (entries[-1].action, entries[-1].state, entries[-1].bento) == ("abort", "done", live)
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == []


def test_abort_without_a_candidate_changes_nothing(make_target, two_versions) -> None:
    target = make_target(promotion=NO_BAKE)
    target.up(two_versions[0], replicas=1, workers=1)
    assert abort(target, history_file(target.settings)) is None
    assert history_file(target.settings).load().entries == [], "nothing happened, nothing recorded"


def test_a_dead_haproxy_is_restarted_from_state_keeping_the_replicas_weights_and_live_version(
    make_target, two_versions
) -> None:
    """Before: `up` tore every pool down and started the last build, recorded as live (issue 17 item 13)."""
    old, new = two_versions
    target = make_target(promotion=NO_BAKE)
    target.up(old, replicas=1, workers=1)
    target.deploy_candidate(new, replicas=1, workers=1)
    target.shift(30)  # a canary step, as a crashed canary leaves it
    before = target.status()
    pids = {colour: [r.pid for r in pool.replicas] for colour, pool in before.pools.items()}
    state = target.load()
    assert state is not None and state.haproxy_pid
    os_kill(state.haproxy_pid, signal.SIGKILL)
    assert not target.status().replicas[0].healthy, "without HAProxy nothing is in rotation"
    after = target.up(old, replicas=1, workers=1)
    assert after.bento == old and after.live == before.live, "the same version is live"
    assert {c: [r.pid for r in p.replicas] for c, p in after.pools.items()} == pids, "the same replica processes"
    assert after.pools["green"].weight == 30 and after.pools["blue"].weight == 70, "the recorded weights"
    assert all(r.healthy for pool in after.pools.values() for r in pool.replicas)
    assert target.load().haproxy_pid != state.haproxy_pid and target.load().lb_port == state.lb_port
    with Traffic(after.url, BODY, clients=4) as traffic:
        traffic.wait_for(50)
    assert traffic.failed == 0, dict(traffic.failures)
    with pytest.raises(UsageError, match="already up"):
        target.up(new, replicas=1, workers=1)  # another bento is never started by `up` on a running stack


def os_kill(pid: int, sig: int) -> None:
    os.kill(pid, sig)
    assert wait_until(lambda: not procs.is_alive(pid), timeout=10), f"pid {pid} did not die"
