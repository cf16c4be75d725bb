"""stacks/RUNNING.md, walked command by command against the code (tests/stacks/runbook.py): a user who follows it
literally must not hit a command Pulumi refuses, a missing or non-executable script, or an unknown modelops option.
What the commands *do* against Docker, kind, Pulumi and AWS is not checked here: nothing here can run them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import typer.main

from modelops.cli import app
from tests.stacks.runbook import commands, problems

ROOT = Path(__file__).resolve().parents[2]
RUNNING = ROOT / "stacks" / "RUNNING.md"


@pytest.fixture(scope="module")
def modelops_options() -> dict[str, set[str]]:
    group = typer.main.get_command(app)
    return {
        name: {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for name, command in group.commands.items()  # type: ignore[attr-defined]
    }


def test_running_md_can_be_followed_literally(modelops_options) -> None:
    found = commands(RUNNING.read_text())
    assert len(found) > 40, "the walk found too few commands: is RUNNING.md still made of ```bash blocks?"
    assert problems(found, ROOT, modelops_options) == []


def test_the_scripts_running_md_runs_directly_are_executable_in_git() -> None:
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files", "-s", "stacks/kind/image.sh", "stacks/aws/image.sh"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    modes = {line.split()[-1]: line.split()[0] for line in listed if line}
    assert modes == {"stacks/aws/image.sh": "100755", "stacks/kind/image.sh": "100755"}


@pytest.mark.parametrize(
    ("markdown", "complaint"),
    [
        ("```bash\npulumi config set x y -s aws\npulumi stack init aws\n```\n", "before `pulumi stack init aws`"),
        ("```bash\npulumi stack init kind\npulumi up -s aws\n```\n", "uses stack 'aws' before"),
        ("```bash\nBENTO=x stacks/kind/nothing.sh\n```\n", "stacks/kind/nothing.sh, which does not exist"),
        ("```bash\n.venv/bin/modelops gate --stack kind \\\n  --no-such-flag\n```\n", "has no option --no-such-flag"),
        ("```bash\n.venv/bin/modelops deploy --stack kind\n```\n", "`modelops deploy` is not a modelops command"),
        ("```bash\ncat stacks/nope.yaml  # a comment\n```\n", "names stacks/nope.yaml, which does not exist"),
        ("```bash\nkind load docker-image locustio/locust:2.47.0 --name m\n```\n", "fails with Docker >= 29"),
    ],
)
def test_the_walk_finds_each_kind_of_mistake(modelops_options, markdown, complaint) -> None:
    found = problems(commands(markdown), ROOT, modelops_options)
    assert any(complaint in p for p in found), found


def test_a_script_that_is_not_executable_is_reported(tmp_path, modelops_options) -> None:
    script = tmp_path / "stacks" / "kind" / "image.sh"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/bash\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    found = problems(commands("```bash\nCLUSTER=m stacks/kind/image.sh\n```\n"), tmp_path, modelops_options)
    assert found and "not executable" in found[0]
