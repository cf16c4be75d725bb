"""Stack outputs: reading `pulumi stack output --json` from a file or from the CLI, with errors that say the fix."""

from __future__ import annotations

import json
import shlex
import stat
from pathlib import Path

import pytest

from modelops.errors import DeploymentError, MissingToolError, UsageError
from modelops.targets.outputs import (
    image_for,
    load_outputs,
    pulumi_outputs,
    with_workers,
    workers_from_override,
)
from stacks import outputs as keys


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def fake_pulumi(tmp_path: Path, stdout: str, exit_code: int = 0, stderr: str = "") -> Path:
    """An executable standing in for the Pulumi CLI: records its arguments, prints ``stdout``."""
    script = tmp_path / "pulumi"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {shlex.quote(str(tmp_path / "args"))}\n'
        f"printf %s {shlex.quote(stdout)}\n"
        f"printf %s {shlex.quote(stderr)} >&2\n"
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_load_outputs_reads_the_json_object(tmp_path: Path) -> None:
    path = write(tmp_path / "outputs.json", {keys.ENDPOINT_URL: "http://alb", keys.ASG_NAMES: {"blue": "b"}})

    assert load_outputs(path, required=[keys.ENDPOINT_URL])[keys.ASG_NAMES] == {"blue": "b"}


def test_load_outputs_of_a_missing_file_says_how_to_export_them(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"run `pulumi stack output --json -s aws > outputs.json`"):
        load_outputs(tmp_path / "outputs.json")


def test_load_outputs_that_are_not_json_point_at_the_json_flag(tmp_path: Path) -> None:
    (tmp_path / "outputs.json").write_text("endpoint_url  http://alb\n")  # `pulumi stack output` without --json

    with pytest.raises(UsageError, match=r"is not JSON .*the --json flag matters"):
        load_outputs(tmp_path / "outputs.json")


def test_load_outputs_names_every_missing_key(tmp_path: Path) -> None:
    path = write(tmp_path / "outputs.json", {keys.ENDPOINT_URL: "http://alb", keys.LISTENER_ARN: ""})

    with pytest.raises(UsageError, match=r"lack 'listener_arn', 'asg_names' .*is this the aws stack"):
        load_outputs(path, required=[keys.ENDPOINT_URL, keys.LISTENER_ARN, keys.ASG_NAMES])


def test_load_outputs_refuses_a_json_list(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="must hold a JSON object"):
        load_outputs(write(tmp_path / "outputs.json", ["endpoint_url"]))


def test_pulumi_outputs_without_the_cli_is_a_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError, match=r"Pulumi CLI is not installed.*pulumi stack output --json -s kind"):
        pulumi_outputs("kind", which=lambda _: None, cwd=tmp_path)


def test_pulumi_outputs_runs_stack_output_json_for_the_stack(tmp_path: Path) -> None:
    pulumi = fake_pulumi(tmp_path, json.dumps({keys.NAMESPACE: "modelops"}))

    outputs = pulumi_outputs("kind", required=[keys.NAMESPACE], which=lambda _: str(pulumi), cwd=tmp_path)

    assert outputs == {keys.NAMESPACE: "modelops"}
    assert (tmp_path / "args").read_text().split() == ["stack", "output", "--json", "--stack", "kind"]


def test_pulumi_outputs_failure_carries_pulumi_s_message(tmp_path: Path) -> None:
    pulumi = fake_pulumi(tmp_path, "", exit_code=255, stderr="error: no stack named 'aws' found")

    with pytest.raises(DeploymentError, match="exit code 255: error: no stack named 'aws' found"):
        pulumi_outputs("aws", which=lambda _: str(pulumi), cwd=tmp_path)


def test_with_workers_changes_only_the_workers_of_the_stack_s_overrides() -> None:
    stack = json.dumps({"services": {"wine_classifier_service": {"workers": 1, "traffic": {"timeout": 10}}}})

    value = with_workers(stack, "other_name:abc123", 3)

    assert json.loads(value) == {"services": {"wine_classifier_service": {"workers": 3, "traffic": {"timeout": 10}}}}
    assert workers_from_override(value) == 3


def test_with_workers_and_no_overrides_addresses_the_service_the_bento_is_named_after() -> None:
    value = with_workers(None, "wine_classifier_service:abc123", 2)

    assert json.loads(value) == {"services": {"wine_classifier_service": {"workers": 2}}}
    assert workers_from_override("") is None


@pytest.mark.parametrize("workers", [0, 65, True, 1.5])
def test_with_workers_refuses_a_worker_count_out_of_range(workers: object) -> None:
    with pytest.raises(UsageError, match="workers must be a whole number from 1 to 64"):
        with_workers(None, "svc:v1", workers)  # type: ignore[arg-type]


@pytest.mark.parametrize("bento", ["wine_classifier_service", ":abc", ""])
def test_a_bento_tag_needs_name_and_version(bento: str) -> None:
    with pytest.raises(UsageError, match="name:version"):
        with_workers(None, bento, 1)


@pytest.mark.parametrize(
    ("bento", "image"),
    [
        ("svc:v1", "svc:stack-image-id"),  # the stack's own bento: the image the stack built
        ("svc:v2", "svc:v2"),  # any other: bentoml containerize's tag, loaded into kind
    ],
)
def test_image_for_a_bento(bento: str, image: str) -> None:
    assert image_for(bento, {keys.BENTO: "svc:v1", keys.IMAGE: "svc:stack-image-id"}) == image
