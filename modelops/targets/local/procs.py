"""Child processes that must never outlive a deployment: start, find, wait for, and stop them.

A process modelops starts (HAProxy, a `bentoml serve` replica) may start workers of its own, and BentoML puts its
workers in sessions of their own, so neither a process group nor the parent-child tree reaches all of them once
the parent is gone. Every process therefore carries two environment markers that its descendants inherit:
``MODELOPS_DEPLOYMENT=<deployment id>`` and ``MODELOPS_PROCESS=<process id in the deployment>``. Stopping a process
stops everything carrying its marker; ``down`` stops everything carrying the deployment's, including processes an
interrupted ``up`` never got to record.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

MARKER = "MODELOPS_DEPLOYMENT"
PROCESS_MARKER = "MODELOPS_PROCESS"


@dataclass(frozen=True)
class Proc:
    pid: int
    started: float | None  # the kernel's start time: tells a recycled pid from ours
    tag: str = ""  # the MODELOPS_PROCESS marker its descendants carry too

    def alive(self) -> bool:
        return is_alive(self.pid, self.started)


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(pid: int, started: float | None = None) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or process.create_time() == started
    except psutil.Error:
        return False


def spawn(
    argv: Sequence[str],
    *,
    deployment: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    unset: Collection[str] = (),
) -> Proc:
    """Start ``argv`` in a new session, output to ``log``, marked with the deployment and a process tag; ``unset``
    names variables of this process's environment the child does not inherit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    inherited = {k: v for k, v in os.environ.items() if k not in unset}
    child_env = {**inherited, **(env or {}), MARKER: deployment, PROCESS_MARKER: tag}
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
    return Proc(pid=process.pid, started=start_time(process.pid), tag=tag)


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


def marked(name: str, value: str) -> list[psutil.Process]:
    """Live processes whose environment has ``name=value`` (never this process)."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(name) == value:
                found.append(process)
        except psutil.Error:
            continue
    return found


def members(proc: Proc) -> list[psutil.Process]:
    """The process, its descendants, and anything else carrying its marker (reparented workers)."""
    found: dict[int, psutil.Process] = {}
    if proc.alive():
        leader = psutil.Process(proc.pid)
        found[leader.pid] = leader
        with contextlib.suppress(psutil.Error):
            found |= {child.pid: child for child in leader.children(recursive=True)}
    if proc.tag:
        found |= {p.pid: p for p in marked(PROCESS_MARKER, proc.tag)}
    return list(found.values())


def _signal(processes: Iterable[psutil.Process], sig: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    reap()
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    reap()
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def stop(procs: Sequence[Proc], grace: float = 10.0) -> None:
    """SIGTERM each process (its own shutdown stops its workers), wait up to ``grace`` s, then SIGKILL every
    process still carrying its marker."""
    everyone = [m for proc in procs for m in members(proc)]
    _signal([psutil.Process(p.pid) for p in procs if p.alive()], signal.SIGTERM)
    left = _wait_gone(everyone, grace)
    _signal(left, signal.SIGKILL)
    _wait_gone(left, 5.0)


def stop_one(proc: Proc, grace: float = 10.0) -> None:
    """SIGTERM this process alone (not its children, which may be meant to outlive it), SIGKILL after ``grace``."""
    try:
        process = psutil.Process(proc.pid)
    except psutil.Error:
        return
    _signal([process], signal.SIGTERM)
    _signal(_wait_gone([process], grace), signal.SIGKILL)
    _wait_gone([process], 5.0)


def kill_now(proc: Proc) -> None:
    """SIGKILL the process and all its workers at once: fault injection, not shutdown."""
    everyone = members(proc)
    _signal(everyone, signal.SIGKILL)
    _wait_gone(everyone, 5.0)


def cpu_seconds(proc: Proc) -> float:
    """User + system CPU seconds of the process and its workers, so far."""
    total = 0.0
    for process in members(proc):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def marked_processes(deployment: str) -> list[int]:
    """Pids of live processes carrying this deployment's marker."""
    return [p.pid for p in marked(MARKER, deployment)]


def kill_marked(deployment: str, grace: float = 5.0, sparing: Collection[str] = ()) -> list[int]:
    """Stop every process carrying the deployment's marker, except those whose process tag is in ``sparing``.
    Returns the pids found."""
    found = [p for p in marked(MARKER, deployment) if not sparing or _tag(p) not in sparing]
    _signal(found, signal.SIGTERM)
    _signal(_wait_gone(found, grace), signal.SIGKILL)
    _wait_gone(found, 5.0)
    return [p.pid for p in found]


def _tag(process: psutil.Process) -> str | None:
    try:
        return process.environ().get(PROCESS_MARKER)
    except psutil.Error:
        return None


# Ports handed out by this process. A port is free when picked but its server binds it only seconds later: without
# this, two replicas started one after the other could be handed the same port and the second one fail to start.
_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


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
