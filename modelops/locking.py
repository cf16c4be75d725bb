"""One operation at a time per stack: gate, promotion, rollback and history settlement hold the stack's lock.

``fcntl.flock`` on a file in the stack's directory: the kernel releases it when the holder exits, however it exits,
so a crashed gate never leaves the stack locked. The holder writes its pid, command and start time into the file,
so a second command can say who holds it. (It serialises commands on this machine; two machines driving the same
kind/aws stack are not covered.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from modelops.errors import ExitStatus, ModelopsError

LOCK_FILE = "operation.lock"


class StackBusyError(ModelopsError):
    """Another modelops command is changing this stack."""

    exit_status = ExitStatus.STACK_BUSY


def _holder(handle) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except ValueError:
        info = {}
    if not info:
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} (`{info.get('command')}`, since {since})"


@contextlib.contextmanager
def stack_lock(directory: Path, command: str) -> Iterator[None]:
    """Hold the stack's operation lock for the block, or raise StackBusyError naming the holder."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackBusyError(
                f"the stack is busy: {_holder(handle)} holds {directory / LOCK_FILE}. Wait for it to finish "
                "(a command that crashed releases the lock by itself)"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}))
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(directory: Path) -> bool:
    """Whether some process holds the stack's operation lock right now."""
    path = directory / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
