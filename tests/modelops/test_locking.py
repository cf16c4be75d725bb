"""One operation at a time per stack: a second one is refused naming the holder, a crash releases the lock, and
reading the history during a promotion never settles the promotion's own pending entry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from modelops.cli import app
from modelops.errors import ExitStatus
from modelops.locking import LOCK_FILE, StackBusyError, is_locked, stack_lock
from modelops.promotion import HistoryFile

HOLD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from modelops.locking import stack_lock
    with stack_lock(Path(sys.argv[1]), "modelops gate --candidate v9"):
        print("holding", flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def holder(tmp_path):
    """Another process holding the stack's lock until the test ends (or kills it)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "holding"
    yield process
    if process.poll() is None:
        process.stdin.close()
        process.wait(timeout=10)


def test_a_second_operation_is_refused_naming_the_holders_pid_and_command(tmp_path, holder) -> None:
    with pytest.raises(StackBusyError) as refused, stack_lock(tmp_path, "modelops rollback"):
        pass
    message = str(refused.value)
    assert f"pid {holder.pid}" in message and "`modelops gate --candidate v9`" in message
    assert str(tmp_path / LOCK_FILE) in message and refused.value.exit_status == ExitStatus.STACK_BUSY


def test_a_crashed_holder_releases_the_lock(tmp_path, holder) -> None:
    assert is_locked(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    with stack_lock(tmp_path, "modelops gate"):
        assert is_locked(tmp_path)
    assert not is_locked(tmp_path)


def test_history_during_a_running_promotion_leaves_its_pending_entry_alone(tmp_path, monkeypatch) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    state_dir = tmp_path / "state"
    (stacks / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": {"modelops:target": "local",
                                            "modelops:local": {"state_dir": str(state_dir)}}}))  # fmt: skip
    monkeypatch.setattr("stacks.config.STACKS_DIR", stacks)
    histories = HistoryFile(state_dir / "lab" / "history.json")
    entry = histories.begin("promote", "svc:v2", "svc:v1", None)  # a promotion in progress (not a crash)
    # Hold this stack's lock the way a running gate does.
    lock_holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state_dir / "lab")], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert lock_holder.stdout.readline().strip() == "holding"
        result = CliRunner().invoke(app, ["history", "--stack", "lab"])
        assert result.exit_code == 0, result.output
        assert "pending entries are shown as they are" in " ".join(result.output.split())
        assert histories.load().entries[-1].state == "pending", "not settled as 'aborted' under a running promotion"
    finally:
        lock_holder.stdin.close()
        lock_holder.wait(timeout=10)
    result = CliRunner().invoke(app, ["history", "--stack", "lab"])
    assert result.exit_code == 0, result.output
    (settled,) = histories.load().entries
    assert (settled.id, settled.state) == (entry.id, "aborted"), "with nobody holding the lock, a crash's leftover"


def test_down_waits_its_turn_behind_a_running_operation_and_names_it(tmp_path, monkeypatch) -> None:
    """`down` used to ignore the lock: it could cut a gate or a rollback off half way (issue 17 item 15)."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    state_dir = tmp_path / "state"
    (stacks / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": {"modelops:target": "local",
                                            "modelops:local": {"state_dir": str(state_dir)}}}))  # fmt: skip
    monkeypatch.setattr("stacks.config.STACKS_DIR", stacks)
    lock_holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state_dir / "lab")], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert lock_holder.stdout.readline().strip() == "holding"
        busy = CliRunner().invoke(app, ["down", "--stack", "lab"])
        assert busy.exit_code == ExitStatus.STACK_BUSY, busy.output
        message = " ".join(busy.output.split())
        assert "the stack is busy" in message and f"pid {lock_holder.pid}" in message, message
    finally:
        lock_holder.stdin.close()
        lock_holder.wait(timeout=10)
    done = CliRunner().invoke(app, ["down", "--stack", "lab"])
    assert done.exit_code == 0 and "nothing was running" in done.output, done.output
