"""`down`, `rollback`, `abort` and a promoting `gate` on an aws stack ask first: refused without --yes when stdin is not
a terminal (CliRunner's stdin is not one), with nothing changed in the account; with --yes, or a yes at the prompt,
they go ahead. The account is the real moto server (tests/modelops/targets/conftest.py) and the driver the one its
other tests use (fast polling); `open_target` hands it to the commands. Where a command would then run a whole gate,
`run_gate` is replaced by a recorder that returns a summary judged by the real verdict rule (decide): those tests
are about what the command line passes on and prints, not about the gate, and need no account."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from modelops.cli import app
from modelops.errors import ExitStatus
from modelops.gate.summary import SuiteResult, Summary, decide
from modelops.targets.aws import AwsTarget

from .conftest import STACK_BENTO, AwsStack

NEW_BENTO = "wine_classifier_service:v2"


def said(result) -> str:
    return " ".join(result.output.replace("│", " ").split())  # rich wraps and boxes what it prints


@pytest.fixture
def on_aws(aws_target: AwsTarget, monkeypatch, tmp_path) -> AwsTarget:
    """`--stack aws` (stacks/Pulumi.aws.yaml) reaches the moto account; its history and locks live in tmp_path."""
    monkeypatch.setattr("stacks.names.WORK_DIR", tmp_path / "work")
    opened = lambda _settings, **_options: aws_target  # noqa: E731
    monkeypatch.setattr("modelops.targets.open_target", opened)
    monkeypatch.setattr("modelops.targets.open_gate_target", opened)
    return aws_target


@pytest.fixture
def gates(monkeypatch) -> list[dict[str, Any]]:
    """Each run_gate call's arguments; the summary says smoke failed (exit 10), as decide() judges it. The gate's
    target is opened by nobody: the recorder never touches it."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("modelops.targets.open_gate_target", lambda _settings, **_options: None)

    def run_gate(target, settings, tag, steps, **options) -> Summary:
        calls.append({"tag": tag, "canary": settings.canary.enabled, **options})
        suites = {"smoke": SuiteResult(status="fail", reason="2 of 8 golden rows answered wrong")}
        verdict, status, reason = decide(suites, ["smoke"])
        return Summary(run_id="run-test", verdict=verdict, exit_status=int(status), reason=reason, candidate=tag,
                       baseline=STACK_BENTO, target=settings.target, stack=settings.stack, started=0.0, finished=1.0,
                       suites=suites, required_suites=["smoke"])  # fmt: skip

    monkeypatch.setattr("modelops.gate.run.run_gate", run_gate)
    return calls


def untouched(stack: AwsStack) -> None:
    assert stack.listener_weights() == {"blue": 100, "green": 0}
    assert (stack.asg("blue")["DesiredCapacity"], stack.asg("green")["DesiredCapacity"]) == (2, 0)


# --------------------------------------------------------------------------------------------- refused, unchanged
REFUSED = {
    "down": (["down"], "scale both pools to 0 replicas"),
    "rollback": (["rollback"], "switch live traffic back to the previously live version"),
    "abort": (["abort"], "take the candidate out"),
    "gate": (["gate", "--candidate", NEW_BENTO], f"promote {NEW_BENTO} to live traffic if it passes"),
}


def test_each_destructive_command_on_aws_without_yes_off_a_terminal_is_refused_and_changes_nothing(
    on_aws, aws_stack, gates
) -> None:
    """One account for the four commands (a moto stack takes ~2 s to make): after each, nothing moved."""
    for name, (args, change) in REFUSED.items():
        result = CliRunner().invoke(app, [*args, "--stack", "aws"])
        assert result.exit_code == ExitStatus.USAGE, f"`modelops {name}`: {result.output}"
        message = said(result)
        assert f"this would {change}" in message and "stdin is not a terminal" in message, name
        assert "add --yes" in message, f"`modelops {name}` does not name --yes: {message}"
        untouched(aws_stack)
    assert "or --no-promote" in said(CliRunner().invoke(app, [*REFUSED["gate"][0], "--stack", "aws"]))
    assert gates == [], "a gate ran unconfirmed"


# ------------------------------------------------------------------------------------------------ with --yes, or y
def test_down_on_aws_with_yes_scales_both_pools_to_zero(on_aws, aws_stack) -> None:
    result = CliRunner().invoke(app, ["down", "--stack", "aws", "--yes"])

    assert result.exit_code == 0, result.output
    assert "both pools scaled to 0" in said(result)
    assert (aws_stack.asg("blue")["DesiredCapacity"], aws_stack.asg("green")["DesiredCapacity"]) == (0, 0)


@pytest.mark.parametrize(("typed", "goes_ahead"), [("y\n", True), ("\n", False)])
def test_down_on_aws_at_a_terminal_asks_and_only_yes_goes_ahead(on_aws, aws_stack, monkeypatch, typed, goes_ahead):
    monkeypatch.setattr("modelops.confirm.stdin_is_terminal", lambda: True)

    result = CliRunner().invoke(app, ["down", "--stack", "aws"], input=typed)

    assert "Scale both pools to 0 replicas" in said(result) and "on stack 'aws' (aws)? [y/N]" in said(result)
    if goes_ahead:
        assert result.exit_code == 0, result.output
        assert aws_stack.asg("blue")["DesiredCapacity"] == 0
    else:
        assert result.exit_code == ExitStatus.USAGE, result.output
        assert "not confirmed: nothing was changed on stack 'aws'" in said(result)
        untouched(aws_stack)


def test_abort_on_aws_with_yes_removes_the_candidate(on_aws, aws_stack) -> None:
    on_aws.deploy_candidate(NEW_BENTO, replicas=2, workers=2)

    result = CliRunner().invoke(app, ["abort", "--stack", "aws", "--yes"])

    assert result.exit_code == 0, result.output
    assert f"aborted {NEW_BENTO}; live: {STACK_BENTO}" in said(result)
    assert aws_stack.asg("green")["DesiredCapacity"] == 0 and aws_stack.listener_weights()["blue"] == 100


def test_rollback_on_aws_with_yes_goes_on_to_the_rollback_rules(on_aws, aws_stack) -> None:
    """An empty history has nothing to roll back to: the rollback's own refusal shows that --yes let it run."""
    result = CliRunner().invoke(app, ["rollback", "--stack", "aws", "--yes"])

    assert "nothing to roll back to" in said(result) and "--yes" not in said(result), result.output
    untouched(aws_stack)


# ------------------------------------------------------------------------------------------------------------- gate
def test_a_gate_that_does_not_promote_never_asks(gates) -> None:
    result = CliRunner().invoke(app, ["gate", "--stack", "aws", "--candidate", NEW_BENTO, "--no-promote"])

    assert result.exit_code == ExitStatus.SMOKE_FAILED, result.output
    assert [call["promote"] for call in gates] == [False]
    assert "verdict: reject (exit 10)" in " ".join(result.stdout.split()), "without --json: the verdict on stdout"


def test_a_promoting_gate_with_yes_runs_and_json_prints_the_summary_with_its_exit_code(gates) -> None:
    result = CliRunner().invoke(app, ["gate", "--stack", "aws", "--candidate", NEW_BENTO, "--yes", "--json"])

    assert result.exit_code == ExitStatus.SMOKE_FAILED, result.output
    assert [(call["tag"], call["promote"]) for call in gates] == [(NEW_BENTO, True)]
    summary = Summary.model_validate(json.loads(result.stdout))  # stdout holds the summary and nothing else
    assert (summary.verdict, summary.exit_status, summary.candidate) == ("reject", ExitStatus.SMOKE_FAILED, NEW_BENTO)
    assert "verdict: reject (exit 10)" in " ".join(result.stderr.split()), "the verdict line goes to stderr"


@pytest.mark.parametrize(("flag", "enabled"), [([], False), (["--canary"], True), (["--no-canary"], False)])
def test_canary_flags_override_the_stack_setting_and_neither_keeps_it(gates, flag, enabled) -> None:
    """stacks/Pulumi.aws.yaml leaves modelops:canary.enabled at its default, false."""
    result = CliRunner().invoke(app, ["gate", "--stack", "aws", "--candidate", NEW_BENTO, "--no-promote", *flag])

    assert result.exit_code == ExitStatus.SMOKE_FAILED, result.output
    assert [call["canary"] for call in gates] == [enabled]
