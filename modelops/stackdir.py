"""Where a stack's durable files live on this machine: promotion history, locks (and, locally, the deployment's
state). The local target keeps them beside its processes' state; kind and aws in stacks.names.stack_work_dir — the
same place the Pulumi program reads the promotion history from."""

from __future__ import annotations

from pathlib import Path

from stacks.config import StackConfig
from stacks.predictions import stack_dir as _stack_dir


def stack_dir(settings: StackConfig) -> Path:
    # Defined beside the prediction log's paths (stacks/predictions.py), which stacks/ may read and modelops/ too.
    return _stack_dir(settings)
