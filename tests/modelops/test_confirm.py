"""Asking before a change to a kind/aws deployment: the rule alone, with the terminal and the answer injected.
The commands that use it are exercised against moto in tests/modelops/targets/test_cli_confirmation.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from modelops.confirm import NotConfirmedError, ask, confirm_change
from modelops.errors import ExitStatus, UsageError
from stacks.config import load_stack_config

CHANGE = "scale both pools to 0 replicas"


def never(*_args: object) -> bool:
    raise AssertionError("asked, or looked at the terminal, where nothing should be asked")


def answering(reply: bool, asked: list[str]):
    def answer(question: str) -> bool:
        asked.append(question)
        return reply

    return answer


@pytest.mark.parametrize("yes", [False, True])
def test_a_local_stack_never_asks(yes) -> None:
    confirm_change(load_stack_config("local"), CHANGE, yes=yes, is_terminal=never, answer=never)


@pytest.mark.parametrize("stack", ["kind", "aws"])
def test_yes_goes_ahead_on_kind_and_aws_without_asking(stack) -> None:
    confirm_change(load_stack_config(stack), CHANGE, yes=True, is_terminal=never, answer=never)


@pytest.mark.parametrize("stack", ["kind", "aws"])
def test_without_a_terminal_kind_and_aws_are_refused_naming_the_flag(stack) -> None:
    with pytest.raises(UsageError) as refused:
        confirm_change(load_stack_config(stack), CHANGE, yes=False, alternative="or --no-promote",
                       is_terminal=lambda: False, answer=never)  # fmt: skip
    message = str(refused.value)
    assert refused.value.exit_status == ExitStatus.USAGE
    assert "add --yes" in message and "stdin is not a terminal" in message and "or --no-promote" in message
    assert f"stack '{stack}' ({stack})" in message and CHANGE in message


@pytest.mark.parametrize("stack", ["kind", "aws"])
def test_on_a_terminal_yes_goes_ahead_and_the_question_names_the_change_and_the_stack(stack) -> None:
    asked: list[str] = []
    confirm_change(load_stack_config(stack), CHANGE, yes=False, is_terminal=lambda: True,
                   answer=answering(True, asked))  # fmt: skip
    assert asked == [f"Scale both pools to 0 replicas on stack '{stack}' ({stack})?"]


def test_on_a_terminal_no_is_refused_and_says_nothing_changed() -> None:
    asked: list[str] = []
    with pytest.raises(NotConfirmedError, match=r"not confirmed: nothing was changed on stack 'aws' \(aws\)"):
        confirm_change(load_stack_config("aws"), CHANGE, yes=False, is_terminal=lambda: True,
                       answer=answering(False, asked))  # fmt: skip
    assert len(asked) == 1


@pytest.mark.parametrize(("typed", "goes_ahead"), [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False),
                                                   ("", False)])  # fmt: skip
def test_the_prompt_takes_only_yes_and_enter_or_end_of_input_is_no(typed, goes_ahead) -> None:
    with CliRunner().isolation(input=typed) as (_stdout, stderr, _mixed):
        answered = ask("Scale both pools to 0 replicas on stack 'aws' (aws)?")
        prompt = stderr.getvalue().decode()
    assert answered is goes_ahead
    assert prompt.startswith("Scale both pools to 0 replicas on stack 'aws' (aws)? [y/N]"), "asked on stderr"
