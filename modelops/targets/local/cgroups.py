"""CPU budgets for local replicas: a cgroup per replica holds it to a fixed share of the machine.

Without budgets, N replicas on a small machine measure CPU contention, not the product (FACTS.md). With them, a
replica behaves like a Kubernetes pod with a CPU limit or an instance of a given size. Linux only. cgroup v1 ``cpu``
controller and cgroup v2 ``cpu.max`` are both supported. Root creates its groups under ``modelops/``; any other user
works under ``modelops-<user>/``, a group an administrator delegates to them once (:func:`delegate`, `sudo make
delegate-budgets`), after which no command needs root. Where neither works, :func:`probe` says why and budgets are
off (the scaling suites are then inconclusive, never a pass).
"""

from __future__ import annotations

import contextlib
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

import psutil

PERIOD_US = 10_000  # short period: throttling in 10 ms slices keeps tail latency low (100 ms adds spikes)
V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")
GROUP = "modelops"


@dataclass(frozen=True)
class Budgets:
    enabled: bool
    reason: str  # why they are off, or which mechanism is used
    root: Path | None = None
    version: int = 0

    def create(self, name: str, cpus: float | None, period_us: int = PERIOD_US) -> Path | None:
        """Make the group ``name`` limited to ``cpus`` cores (None: no limit yet); returns its cgroup.procs path."""
        if not self.enabled or self.root is None:
            return None
        group = self.root / name
        group.mkdir(parents=True, exist_ok=True)
        self.limit(name, cpus, period_us)
        return group / "cgroup.procs"

    def limit(self, name: str, cpus: float | None, period_us: int = PERIOD_US) -> None:
        """Set (or lift, with None) the group's CPU quota; processes already in it are held to it at once."""
        if not self.enabled or self.root is None:
            return
        group = self.root / name
        quota = max(1000, int(cpus * period_us)) if cpus else None
        if self.version == 1:
            (group / "cpu.cfs_period_us").write_text(str(period_us))
            (group / "cpu.cfs_quota_us").write_text(str(quota or -1))
        else:
            (group / "cpu.max").write_text(f"{quota or 'max'} {period_us}")

    def throttling(self, name: str) -> tuple[int, int]:
        """The group's CPU scheduler counters so far: (periods, periods in which it hit its quota)."""
        if not self.enabled or self.root is None:
            return (0, 0)
        fields = dict(line.split() for line in (self.root / name / "cpu.stat").read_text().splitlines() if line)
        return int(fields.get("nr_periods", 0)), int(fields.get("nr_throttled", 0))

    def usage_seconds(self, name: str) -> float | None:
        """CPU seconds (user + system) the group's processes used so far; None without budgets. cgroup v2 counts it
        itself (cpu.stat usage_usec); the v1 ``cpu`` controller does not (cpuacct is another hierarchy here), so the
        group's member processes are summed instead."""
        if not self.enabled or self.root is None:
            return None
        group = self.root / name
        if self.version == 2:
            fields = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines() if line)
            return int(fields.get("usage_usec", 0)) / 1e6
        total = 0.0
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(int(pid)).cpu_times()
                total += times.user + times.system
        return total

    def remove(self, name: str) -> None:
        if self.root is None:
            return
        group = self.root / name
        if group.is_dir():
            with contextlib.suppress(OSError):  # busy while a process still lives in it; down retries
                group.rmdir()


def group_name(uid: int | None = None) -> str:
    """The group this user's replicas live under: ``modelops`` for root, ``modelops-<user>`` for anyone else."""
    uid = os.geteuid() if uid is None else uid
    return GROUP if uid == 0 else f"{GROUP}-{pwd.getpwuid(uid).pw_name}"


def _hierarchy() -> tuple[Path, int] | None:
    if (V1_ROOT / "cpu.cfs_quota_us").exists():
        return V1_ROOT, 1
    if (V2_ROOT / "cgroup.controllers").exists() and "cpu" in (V2_ROOT / "cgroup.controllers").read_text():
        return V2_ROOT, 2
    return None


def probe(wanted: bool = True) -> Budgets:
    if not wanted:
        return Budgets(False, "turned off (modelops:local.cpu_budgets: false)")
    if not Path("/proc").is_dir():
        return Budgets(False, "no cgroups on this OS: CPU budgets are off, replicas share all CPUs")
    found = _hierarchy()
    if found is None:
        return Budgets(False, "no cgroup cpu controller is mounted: CPU budgets are off")
    base, version = found
    return _try(base / group_name(), version)


def _try(root: Path, version: int) -> Budgets:
    try:
        root.mkdir(exist_ok=True)
        if version == 2:
            parent = root.parent / "cgroup.subtree_control"
            if "cpu" not in (root / "cgroup.controllers").read_text():
                parent.write_text("+cpu")
            (root / "cgroup.subtree_control").write_text("+cpu")
        elif not os.access(root / "cgroup.procs", os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        hint = (
            "the cgroup hierarchy is read-only here"
            if os.geteuid() == 0
            else f"run as root, or have an administrator delegate {root} to you once: `sudo make delegate-budgets "
            f"USER={pwd.getpwuid(os.geteuid()).pw_name}`"
        )
        return Budgets(False, f"cannot create cgroups under {root} ({exc.strerror}): {hint}; CPU budgets are off")
    how = "delegated" if os.geteuid() != 0 else "as root"
    return Budgets(True, f"cgroup v{version} cpu quota under {root} ({how})", root=root, version=version)


def delegate(user: str) -> Path:
    """Run once as root: make ``modelops-<user>`` under the cpu hierarchy and hand it to ``user``, who can then create
    and limit replica groups inside it without root. cgroup v1 only moves a process into a group its owner may
    write; cgroup v2 also requires write access to the common ancestor of the process's current group, which only
    a systemd user session (``user@UID.service``, Delegate=yes) grants: on v2 without it, use root."""
    if os.geteuid() != 0:
        raise PermissionError(f"delegating a cgroup needs root: run `sudo make delegate-budgets USER={user}`")
    found = _hierarchy()
    if found is None:
        raise FileNotFoundError("no cgroup cpu controller is mounted here: CPU budgets cannot be delegated")
    base, version = found
    account = pwd.getpwnam(user)
    group = base / group_name(account.pw_uid)
    group.mkdir(exist_ok=True)
    if version == 2:
        if "cpu" not in (group / "cgroup.controllers").read_text():
            (base / "cgroup.subtree_control").write_text("+cpu")
        owned = [group, *(group / f for f in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control"))]
    else:
        owned = [group, *group.iterdir()]
    for path in owned:
        os.chown(path, account.pw_uid, account.pw_gid)
    return group


def join_command(procs_file: Path | None, argv: list[str]) -> list[str]:
    """Wrap ``argv`` so the process enters the cgroup before it execs (its children inherit the group)."""
    if procs_file is None:
        return argv
    return ["/bin/sh", "-c", f'echo $$ > "{procs_file}" && exec "$@"', "modelops-replica", *argv]
