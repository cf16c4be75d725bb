"""Programs modelops drives (haproxy, prometheus …): found on PATH, or a MissingToolError that says how to install."""

from __future__ import annotations

import shutil

from modelops.errors import MissingToolError


def require(name: str, install_hint: str) -> str:
    """The path of program ``name``, or MissingToolError(install_hint)."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(install_hint)
    return path
