"""Child processes that must never outlive a deployment: start, find, wait for, and stop them.

Every process modelops starts for a deployment carries an environment marker (``MODELOPS_DEPLOYMENT=<id>``) and
leads its own process group. ``stop`` kills whole groups; ``marked_processes`` finds stragglers by their marker
even when the state file never learnt their pid (an ``up`` killed between spawn and write).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "MODELOPS_DEPLOYMENT"


@dataclass(frozen=True)
class Proc:
    pid: int
    started: float | None  # kernel start time (clock ticks since boot) — tells a recycled pid from ours

    def alive(self) -> bool:
        return is_alive(self.pid, self.started)


def start_time(pid: int) -> float | None:
    """The process's start time from /proc (None where there is no /proc or the pid is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return float(fields[19])


def is_alive(pid: int, started: float | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _is_zombie(pid):
        return False
    return started is None or start_time(pid) in (None, started)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def spawn(
    argv: Sequence[str],
    *,
    deployment: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start ``argv`` in a new session (its own process group), output to ``log``, marked with the deployment id."""
    log.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {}), MARKER: deployment}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
        )
    _REAPABLE[process.pid] = process
    return Proc(pid=process.pid, started=start_time(process.pid))


# Popen objects of children started by this process: polled so that a dead child does not linger as a zombie.
_REAPABLE: dict[int, subprocess.Popen] = {}


def reap() -> None:
    for pid, process in list(_REAPABLE.items()):
        if process.poll() is not None:
            del _REAPABLE[pid]


def exit_code(pid: int) -> int | None:
    """The exit code of a child of this process that has ended, else None."""
    process = _REAPABLE.get(pid)
    return process.poll() if process is not None else None


def stop(procs: Sequence[Proc], grace: float = 10.0) -> None:
    """SIGTERM each process group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    targets = [p for p in procs if p.alive()]
    for proc in targets:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(p.pid) for p in targets):
        reap()
        time.sleep(0.05)
    for proc in targets:
        _signal_group(proc.pid, signal.SIGKILL)
    wait_until(lambda: not any(_group_alive(p.pid) for p in targets), timeout=5.0, interval=0.02, reaper=True)


def kill_now(proc: Proc) -> None:
    """SIGKILL the whole group at once: fault injection, not shutdown."""
    if proc.alive():
        _signal_group(proc.pid, signal.SIGKILL)
    wait_until(lambda: not _group_alive(proc.pid), timeout=5.0, interval=0.01, reaper=True)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(not _is_zombie(pid) for pid in _group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    proc = Path("/proc")
    if not proc.is_dir():
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def marked_processes(deployment: str) -> list[int]:
    """Pids of live processes whose environment carries this deployment's marker (Linux; [] elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    needle = f"{MARKER}={deployment}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and not _is_zombie(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_marked(deployment: str, grace: float = 5.0) -> list[int]:
    """Stop every process carrying the marker (and its group). Returns the pids found."""
    pids = marked_processes(deployment)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not marked_processes(deployment), timeout=grace, interval=0.05, reaper=True)
    for pid in marked_processes(deployment):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not marked_processes(deployment), timeout=5.0, interval=0.02, reaper=True)
    return pids


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1, reaper: bool = False) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes. Returns whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if reaper:
            reap()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"
