"""Ask before a command changes a deployment on kind or aws: those stacks serve other people's traffic.

`modelops down`, `rollback`, `abort` and a promoting `gate` on a kind/aws stack ask "… [y/N]" on a terminal, and are
refused without ``--yes`` when stdin is not a terminal (a pipeline cannot answer, and must say so in its command).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from modelops.errors import UsageError
from stacks.config import StackConfig

# Where a change reaches a shared deployment: a cluster or a cloud account that other people's clients call.
CONFIRMED_TARGETS = ("kind", "aws")
YES_FLAG = "--yes"


class NotConfirmedError(UsageError):
    """The person at the terminal answered no (or nothing): the command did nothing."""


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def ask(question: str) -> bool:
    """``question [y/N]:`` on stderr (stdout may carry --json output); anything but yes, or end of input, is no."""
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # end of input (Ctrl-D) or Ctrl-C at the prompt
        return False


def confirm_change(
    settings: StackConfig,
    change: str,
    *,
    yes: bool,
    alternative: str = "",
    is_terminal: Callable[[], bool] | None = None,
    answer: Callable[[str], bool] | None = None,
) -> None:
    """Return when ``change`` (e.g. "scale both pools to 0") may go ahead on the stack, else raise a UsageError
    that says how to go ahead. ``alternative`` names another way out in the refusal (e.g. "--no-promote").
    ``is_terminal`` and ``answer`` default to :func:`stdin_is_terminal` and :func:`ask`."""
    # Local stays unprompted: a local stack is a deployment on the user's own machine, and `make demo` and the
    # tests drive down, rollback, abort and promoting gates on it unattended.
    if yes or settings.target not in CONFIRMED_TARGETS:
        return
    where = f"stack {settings.stack!r} ({settings.target})"
    if not (is_terminal or stdin_is_terminal)():
        instead = f" ({alternative})" if alternative else ""
        raise UsageError(
            f"this would {change} on {where} and stdin is not a terminal, so nobody can confirm it: add {YES_FLAG} "
            f"to go ahead{instead}"
        )
    if not (answer or ask)(f"{change[0].upper()}{change[1:]} on {where}?"):
        raise NotConfirmedError(f"not confirmed: nothing was changed on {where} ({YES_FLAG} skips the question)")
