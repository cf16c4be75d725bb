"""CPU budgets without root: a group delegated once by an administrator lets a plain user hold replicas to a budget;
without it the probe says exactly what to run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelops.targets.local import cgroups

ROOT = Path(__file__).resolve().parents[4]
USER = "nobody"  # an account every Debian/Ubuntu has, that owns nothing of ours
# The venv's interpreter may live under /root (pyenv), out of the plain user's reach: run the system interpreter of
# the same minor version on the venv's packages instead.
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages"))

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not SYSTEM_PYTHON.exists() or cgroups._hierarchy() is None or cgroups._hierarchy()[1] != 1,  # type: ignore[index]
    reason="needs root (to delegate and to run as another user), a system python of this minor version and a cgroup "
    "v1 cpu hierarchy (v2 delegation needs a systemd user session, which this machine lacks)",
)

# As the plain user: probe, make a replica group at 10 % of a core, run a busy loop in it for 1 s of wall time, and
# print what the probe said and the CPU the loop got (its own clock, so a busy machine cannot inflate it).
AS_USER = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from modelops.targets.local import cgroups
    budgets = cgroups.probe()
    result = {"enabled": budgets.enabled, "reason": budgets.reason}
    if budgets.enabled:
        procs = budgets.create("replica-test", 0.1)
        loop = "import time\\nend = time.monotonic() + 1.0\\nwhile time.monotonic() < end: pass\\n"
        cmd = cgroups.join_command(procs, [sys.executable, "-c", loop + "print(time.process_time())"])
        result["cpu_s"] = float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        result["throttled"] = budgets.throttling("replica-test")[1]
        budgets.remove("replica-test")
    print(json.dumps(result))
    """
)


def as_user(code: str) -> dict:
    import json

    env = {"PYTHONPATH": f"{ROOT}:{SITE_PACKAGES}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(SYSTEM_PYTHON), "-c", code], user=USER, cwd="/", capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def delegated():
    group = cgroups.delegate(USER)
    yield group
    for child in [p for p in group.iterdir() if p.is_dir()]:
        child.rmdir()
    group.rmdir()


def test_a_plain_user_without_a_delegated_group_is_told_the_command_that_fixes_it() -> None:
    got = as_user(AS_USER)
    assert not got["enabled"]
    assert f"sudo make delegate-budgets USER={USER}" in got["reason"], got["reason"]


def test_a_delegated_group_holds_a_plain_users_replica_to_its_budget(delegated) -> None:
    got = as_user(AS_USER)
    assert got["enabled"], got["reason"]
    assert "delegated" in got["reason"]
    # 10 % of a core for 1 s of wall time: about 0.1 s of CPU, far below the ~1 s an unheld loop burns.
    assert got["throttled"] > 0 and got["cpu_s"] < 0.5, got


def test_delegation_needs_root() -> None:
    code = "from modelops.targets.local import cgroups\ntry:\n    cgroups.delegate('nobody')\n"
    code += 'except PermissionError as exc:\n    print(\'{"error": "%s"}\' % exc)\n'
    assert "sudo make delegate-budgets" in as_user(code)["error"]
