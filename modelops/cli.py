"""The `modelops` command line: parse, delegate, map the outcome to an ExitStatus. Logic lives elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from modelops.errors import ExitStatus, ModelopsError
from stacks.config import ConfigError

app = typer.Typer(
    help="Take a BentoML model from prototype to production: build, deploy, load-test, promote.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)

StackOpt = Annotated[str, typer.Option("--stack", "-s", help="stack name: stacks/Pulumi.<stack>.yaml")]


def _fail(exc: Exception) -> typer.Exit:
    status = exc.exit_status if isinstance(exc, ModelopsError) else ExitStatus.USAGE
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(int(status))


@app.command()
def render(
    stack: StackOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write the rendered resources into")],
) -> None:
    """Run the stack's Pulumi program under mocks and write every resource: Kubernetes objects as YAML, AWS
    resources' inputs as JSON. Needs no Pulumi engine, cloud or cluster."""
    from modelops.render import render_stack

    try:
        written = render_stack(stack, out)
    except (ModelopsError, ConfigError) as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote {len(written)} files to {out}")


def main() -> None:
    app()
