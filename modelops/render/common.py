"""What the parent and the child side of a rendering share: the error, the program, value normalisation."""

from __future__ import annotations

from typing import Any

from modelops.errors import ModelopsError
from stacks.names import PROJECT_ROOT

PROGRAM = PROJECT_ROOT / "__main__.py"


class RenderError(ModelopsError):
    """The stack program failed under mocks, or its resources could not be written down."""


def normalise(value: Any) -> Any:
    """Mock inputs come back with every number as a float: 3000.0 → 3000."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value
