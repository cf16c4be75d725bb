"""Fault injection for crash tests: a named point where a process SIGKILLs itself when MODELOPS_FAILPOINT names it.

Here, not in modelops/promotion.py, so that the target drivers can mark their own steps (a crash between HAProxy's
runtime-API call and the state write) without importing promotion (targets never import the layers above them)."""

from __future__ import annotations

import os
import signal

FAILPOINT = "MODELOPS_FAILPOINT"


def failpoint(name: str) -> None:
    """SIGKILL this process here when MODELOPS_FAILPOINT names this point; nothing otherwise."""
    if os.environ.get(FAILPOINT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
