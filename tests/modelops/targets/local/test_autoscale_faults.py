"""The autoscaler against faults: a hold whose owner died or expired pins nothing, and a full disk for its state does
not end it (issue 17 item 15: a killed gate pinned autoscaling for good; an OSError killed the supervisor)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from modelops.targets.local import LocalTarget, autoscale, procs
from modelops.targets.local.autoscale import HOLD_FILE, Supervisor, read_hold, write_hold
from modelops.waiting import wait_until
from tests.conftest import local_settings


@pytest.fixture
def owner():
    """A process that holds scaling, as a gate would, until the test kills it."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def held(state_dir: Path) -> tuple[bool, str]:
    return Supervisor(SimpleNamespace(dir=state_dir)).held()  # type: ignore[arg-type]


def test_a_hold_counts_while_its_owner_runs_and_not_after_it_was_killed(tmp_path, owner) -> None:
    write_hold(tmp_path, 3600, pid=owner.pid)
    assert held(tmp_path) == (True, f"held by pid {owner.pid}: the gate pins the replica count")
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait(timeout=10)
    is_held, why = held(tmp_path)
    assert not is_held and f"pid {owner.pid}" in why and "gone" in why


def test_a_hold_expires(tmp_path, owner) -> None:
    hold = write_hold(tmp_path, 10, pid=owner.pid, now=lambda: 1000.0)
    assert hold.active(1009.9)[0] and not hold.active(1010.0)[0]
    assert "expired" in hold.active(1010.0)[1] and "hold_max_s" in hold.active(1010.0)[1]


def test_a_hold_file_without_an_owner_pins_nothing(tmp_path) -> None:
    (tmp_path / HOLD_FILE).write_text("held at 1700000000.000\n")  # as written before holds had an owner
    assert read_hold(tmp_path) is not None and held(tmp_path)[0] is False


def test_no_hold_file_is_no_hold(tmp_path) -> None:
    assert held(tmp_path) == (False, "")


# ------------------------------------------------------------------------------------------------ a full disk
SETTINGS = {
    "deploy": {"replicas": 1, "min_replicas": 1, "max_replicas": 2, "cpu_per_replica": 0.25},
    "autoscale": {"enabled": True, "metric": "in_flight", "target": 2, "sync_period_s": 0.5},
}


@pytest.fixture
def small_disk(tmp_path: Path):
    """The deployment's state directory on a 1-MiB tmpfs (its logs and BentoML homes symlinked to the normal disk:
    the fault is the state's disk, not the replicas'). Needs root to mount; skipped, saying so, without it."""
    state = tmp_path / "state" / "local"
    state.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(state)], capture_output=True,
                             text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    for folder in ("logs", "homes"):
        (tmp_path / folder).mkdir()
        (state / folder).symlink_to(tmp_path / folder, target_is_directory=True)
    try:
        yield tmp_path / "state"
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(path: Path) -> None:
    """Write to ``path`` until the disk is full."""
    with open(path, "wb", buffering=0) as out:  # unbuffered: closing it has nothing left to write
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    assert shutil.disk_usage(path.parent).free < 4096, "the disk is full"


def test_the_autoscaler_survives_a_full_disk_for_its_state_and_writes_again_once_there_is_space(
    small_disk, reference_bento
) -> None:
    target = LocalTarget(local_settings(small_disk, **SETTINGS))
    try:
        target.up(reference_bento, replicas=1, workers=1)
        target.start_autoscaler("live")
        pid = target.load().autoscalers["live"].pid
        log = target.dir / "logs" / "autoscale-live.log"
        filler = target.dir / "filler"
        fill(filler)
        assert wait_until(lambda: "No space left on device" in log.read_text(), timeout=30), log.read_text()[-2000:]
        assert wait_until(lambda: log.read_text().count("No space left") >= 3, timeout=30), "it kept trying"
        assert procs.is_alive(pid), f"the autoscaler (pid {pid}) died on a full disk:\n{log.read_text()[-2000:]}"
        filler.unlink()
        freed = time.time()
        assert wait_until(lambda: (autoscale.read_status(target.dir) or {}).get("updated", 0) > freed, timeout=30)
        assert (autoscale.read_status(target.dir) or {})["pid"] == pid, "the same supervisor carried on"
    finally:
        # Space first (an assertion may have failed with the disk full): `down` writes the state as it stops things.
        (target.dir / "filler").unlink(missing_ok=True)
        try:
            target.down()
        finally:
            leaked = procs.kill_marked(target.deployment)  # nothing may outlive the test, whatever down managed
        assert leaked == [], f"down left processes running: {leaked}"
