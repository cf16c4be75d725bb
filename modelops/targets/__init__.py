"""Target drivers: one interface (base.Target), three implementations (local, kubernetes, aws)."""

from __future__ import annotations

from collections.abc import Callable

from modelops.targets.base import Target
from stacks.config import StackConfig


def open_target(settings: StackConfig, progress: Callable[[str], None] | None = None) -> Target:
    """The driver for the stack's target."""
    if settings.target == "local":
        from modelops.targets.local import LocalTarget

        return LocalTarget(settings, progress=progress or (lambda _m: None))
    from modelops.errors import UsageError

    raise UsageError(
        f"stack {settings.stack!r} targets {settings.target}: its deployment is made by `pulumi up -s "
        f"{settings.stack}`; modelops drives it with --url/--outputs (see README, 'Run it for real')"
    )
