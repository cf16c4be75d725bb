"""Terminal output: a spinner with the current step on long operations, a line per finished step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


class Steps:
    """``with steps.step("building the bento") as note: ...`` — shows a spinner, then ✓/✗ with the elapsed time.
    ``note("detail")`` updates the spinner text (the progress callback the targets take)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def step(self, title: str) -> Iterator:
        start = time.monotonic()
        with self.console.status(f"[bold]{title}[/] …") as status:

            def note(detail: str) -> None:
                status.update(f"[bold]{title}[/] — {detail}")

            try:
                yield note
            except BaseException:
                self.console.print(f"[red]✗[/] {title} ({time.monotonic() - start:.1f} s)")
                raise
        self.console.print(f"[green]✓[/] {title} ({time.monotonic() - start:.1f} s)")
