"""Where a stack's durable files live on this machine: promotion history, locks (and, locally, the deployment's
state). The local target keeps them beside its processes' state; kind and aws in stacks.names.stack_work_dir — the
same place the Pulumi program reads the promotion history from."""

from __future__ import annotations

from pathlib import Path

from stacks.config import PROJECT_ROOT, StackConfig
from stacks.names import stack_work_dir


def stack_dir(settings: StackConfig) -> Path:
    if settings.target == "local":
        base = Path(settings.local.state_dir)
        return ((base if base.is_absolute() else PROJECT_ROOT / base) / settings.stack).resolve()
    return stack_work_dir(settings.stack).resolve()
