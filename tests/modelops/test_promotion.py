"""Promotion history and recovery: rollback only within the current deployment and only to a version that takes the
live version's requests; `modelops abort`; HAProxy brought back from state. Pure rules on fixed histories first,
then the same properties on real replicas with a client sending requests throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from modelops.cli import app
from modelops.errors import ExitStatus
from modelops.gate.run import history_file
from modelops.promotion import (
    Entry,
    History,
    HistoryFile,
    RollbackRefusedError,
    record_up,
    rollback_target,
)
from modelops.targets.local import LocalTarget, procs
from stacks.config import STACKS_DIR
from tests.fixtures.faulty import build_faulty
from tests.modelops.targets.local.test_target import example_body
from tests.traffic import Traffic


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
