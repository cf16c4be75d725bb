"""stacks/aws/user_data.sh run for real under bash, with stand-ins for what only an EC2 instance has (dnf, systemctl,
the metadata service, the AWS CLI, Docker): the order of what it does, not that Amazon Linux does it.

The instance must join its target group only once the bento answers /readyz: the boot script completes the launch
lifecycle hook with CONTINUE after /readyz, and ABANDON when it never comes (the group then replaces the instance).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stacks.aws.fleet import READY_HOOK, UserData, render_user_data
from stacks.threads import thread_env

INSTANCE = "i-0123456789abcdef0"
GROUP = "modelops-blue-asg-1234567"

# Every stand-in appends its name and arguments to $CALLS, one line per call.
STANDINS = {
    # dnf fails once: the boot script retries it.
    "dnf": 'if [ ! -e "$STATE/dnf-failed" ]; then touch "$STATE/dnf-failed"; exit 1; fi',
    "systemctl": "",
    "sleep": "",
    "docker": 'if [ "$1" = login ]; then cat >/dev/null; fi',
    # IMDSv2 token and instance id; /readyz answers after READY_AFTER polls (never when it is "never").
    "curl": f"""case "$*" in
  *api/token*) echo token ;;
  *instance-id*) echo {INSTANCE} ;;
  *readyz*)
    n=$(cat "$STATE/polls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$STATE/polls"
    [ "$READY_AFTER" != never ] && [ "$n" -ge "$READY_AFTER" ] || exit 22 ;;
esac""",
    "aws": f"""case "$*" in
  *get-login-password*) echo password ;;
  *describe-auto-scaling-instances*) echo {GROUP} ;;
esac""",
}


def run_boot_script(tmp_path: Path, ready_after: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    values = UserData(region="us-east-1", image="123456789012.dkr.ecr.us-east-1.amazonaws.com/r@sha256:ab",
                      service="svc", port=3000, colour="blue", log_group="g", stop_timeout_s=15,
                      bentoml_overrides="{}", max_body_bytes=1024, threads=thread_env(2.0), keep_alive_s=65,
                      ready_timeout_s=20)  # fmt: skip
    script = tmp_path / "user-data.sh"
    script.write_text(render_user_data(values))
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    calls = tmp_path / "calls"
    for name, body in STANDINS.items():
        standin = bin_dir / name
        standin.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
        standin.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "STATE": str(state), "READY_AFTER": ready_after}
    done = subprocess.run(["/bin/bash", str(script)], capture_output=True, text=True, timeout=60, env=env)
    return done, calls.read_text().splitlines() if calls.exists() else []


def index_of(calls: list[str], *words: str) -> int:
    found = [i for i, call in enumerate(calls) if all(w in call for w in words)]
    assert found, f"no call with {words} among:\n" + "\n".join(calls)
    return found[0]


def test_the_instance_reports_ready_only_after_the_bento_answers_readyz(tmp_path) -> None:
    done, calls = run_boot_script(tmp_path, ready_after="3")
    assert done.returncode == 0, done.stderr
    run = index_of(calls, "docker run")
    polls = [i for i, call in enumerate(calls) if "readyz" in call]
    complete = index_of(calls, "complete-lifecycle-action")
    assert run < polls[0] and len(polls) == 3 and polls[-1] < complete
    assert f"--lifecycle-hook-name {READY_HOOK}" in calls[complete]
    assert f"--instance-id {INSTANCE}" in calls[complete] and f"--auto-scaling-group-name {GROUP}" in calls[complete]
    assert calls[complete].endswith("--lifecycle-action-result CONTINUE")


def test_an_instance_whose_bento_never_gets_ready_is_abandoned(tmp_path) -> None:
    done, calls = run_boot_script(tmp_path, ready_after="never")
    assert done.returncode == 1 and "did not answer /readyz within 20 s" in done.stderr
    results = [c.rsplit(" ", 1)[-1] for c in calls if "complete-lifecycle-action" in c]
    assert results == ["ABANDON"]


def test_dnf_is_retried_and_the_log_driver_never_blocks_the_service(tmp_path) -> None:
    done, calls = run_boot_script(tmp_path, ready_after="1")
    assert done.returncode == 0, done.stderr
    assert [c for c in calls if c.startswith("dnf ")] == ["dnf install -y docker"] * 2
    run = calls[index_of(calls, "docker run")]
    assert "--log-driver awslogs" in run and "--log-opt mode=non-blocking" in run
    assert "--log-opt max-buffer-size=4m" in run


@pytest.mark.parametrize("variable", ["READY_HOOK", "READY_TIMEOUT"])
def test_the_hook_settings_are_rendered_into_the_script(variable) -> None:
    values = UserData(region="r", image="a/b@sha256:c", service="s", port=3000, colour="green", log_group="g",
                      stop_timeout_s=1, bentoml_overrides="{}", max_body_bytes=1, threads={},
                      keep_alive_s=1)  # fmt: skip
    assert f"readonly {variable}=" in render_user_data(values)
