"""The `modelops` command line (placeholder until the local target lands)."""

import typer

app = typer.Typer(help="Take a BentoML model from prototype to production.", no_args_is_help=True)


def main() -> None:
    app()
