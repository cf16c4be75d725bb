"""open_target: the driver a stack needs, built from the stack outputs, against the real moto server (aws) and the
recording fake Kubernetes API (kind). No Locust here: there is no model behind moto; this is the plumbing the gate
and the `status`/`rollback`/`history` commands go through."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from modelops.cli import app
from modelops.errors import ExitStatus, MissingToolError, UsageError
from modelops.targets import OUTPUTS_ENV, CandidateUrl, open_gate_target, open_target
from modelops.targets.aws import AwsTarget
from modelops.targets.base import Target
from modelops.targets.kubernetes import KubernetesTarget
from stacks import outputs as keys
from stacks.config import StackConfig, load_stack_config

from .conftest import FakeKubeApi
from .test_kubernetes import OUTPUTS as KIND_OUTPUTS
from .test_kubernetes import Cluster, deployment

TEST_PORTS = {"blue": 8081, "green": 8082}
CANDIDATE_URL = "http://203.0.113.7:9000"


@pytest.fixture
def aws_settings() -> StackConfig:
    return load_stack_config("aws")


def write_outputs(path: Path, outputs: dict) -> Path:
    path.write_text(json.dumps(outputs))  # as `pulumi stack output --json -s aws > outputs.json` writes it
    return path


@pytest.fixture
def aws_outputs_file(aws_stack, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The moto stack with its per-colour test listeners, and its outputs saved in a file."""
    pool_urls = aws_stack.add_test_listeners(TEST_PORTS)
    return write_outputs(tmp_path / "outputs.json", {**aws_stack.outputs, keys.POOL_URLS: pool_urls}), pool_urls


def test_aws_driver_from_an_outputs_file_reads_the_real_api_and_the_pool_urls(aws_settings, aws_outputs_file) -> None:
    path, pool_urls = aws_outputs_file

    target = open_target(aws_settings, outputs_file=path)

    assert isinstance(target, AwsTarget) and isinstance(target, Target)
    status = target.status()  # over moto's AWS API, through a boto3 session from the environment
    assert (status.live, len(status.pools["blue"].replicas)) == ("blue", 2)
    assert {c: p.url for c, p in status.pools.items()} == pool_urls
    assert target.ec2.meta.region_name == aws_settings.aws.region


def test_the_outputs_file_can_come_from_the_environment(aws_settings, aws_outputs_file) -> None:
    path, pool_urls = aws_outputs_file

    target = open_target(aws_settings, environ={OUTPUTS_ENV: str(path)})

    assert target.status().candidate.url == pool_urls["green"]


def test_url_overrides_the_candidate_url_and_nothing_else(aws_settings, aws_outputs_file) -> None:
    path, pool_urls = aws_outputs_file

    target = open_gate_target(aws_settings, outputs_file=path, candidate_url=CANDIDATE_URL + "/")

    assert isinstance(target, CandidateUrl) and isinstance(target, Target)
    status = target.status()
    assert (status.candidate.colour, status.candidate.url) == ("green", CANDIDATE_URL)
    assert status.pools["blue"].url == pool_urls["blue"]
    assert status.url == json.loads(path.read_text())[keys.ENDPOINT_URL]
    assert target.name == "aws" and getattr(target, "dir", None) is None  # the gate keeps history in .work/aws
    target.progress = print  # run_gate hands the driver its progress callback this way
    assert target._target.progress is print


@pytest.mark.parametrize("url", ["203.0.113.7:9000", "ftp://host", "http://"])
def test_url_that_is_not_an_http_base_url_is_a_usage_error(aws_settings, aws_outputs_file, url) -> None:
    with pytest.raises(UsageError, match=r"--url must look like http\(s\)://HOST\[:PORT\]"):
        open_gate_target(aws_settings, outputs_file=aws_outputs_file[0], candidate_url=url)


def test_gate_on_aws_without_test_listeners_needs_url(aws_settings, aws_stack, tmp_path: Path) -> None:
    path = write_outputs(tmp_path / "outputs.json", {**aws_stack.outputs, keys.POOL_URLS: {}})

    with pytest.raises(UsageError, match=r"(?s)modelops:aws.test_cidrs.*pulumi up -s aws.*pass --url URL"):
        open_gate_target(aws_settings, outputs_file=path)
    assert open_gate_target(aws_settings, outputs_file=path, candidate_url=CANDIDATE_URL).status().candidate.url == (
        CANDIDATE_URL
    )
    assert open_target(aws_settings, outputs_file=path).status().candidate.url == ""  # status needs no pool URL


def test_a_missing_outputs_file_says_how_to_write_it(aws_settings, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no stack outputs file at .*pulumi stack output --json -s aws"):
        open_target(aws_settings, outputs_file=tmp_path / "missing.json")


def test_outputs_of_the_other_stack_are_refused_naming_the_missing_keys(aws_settings, tmp_path: Path) -> None:
    path = write_outputs(tmp_path / "outputs.json", KIND_OUTPUTS)
    with pytest.raises(UsageError, match=r"lack 'listener_arn', 'target_group_arns', 'asg_names'.*aws stack"):
        open_target(aws_settings, outputs_file=path)


def empty_path(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    return {"PATH": str(bin_dir)}


def test_without_an_outputs_file_nor_the_pulumi_cli_the_error_names_both_ways(
    aws_settings, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PATH", empty_path(tmp_path)["PATH"])
    with pytest.raises(MissingToolError, match=r"(?s)Pulumi CLI is not installed.*--outputs FILE.*MODELOPS_OUTPUTS"):
        open_target(aws_settings, environ={})


def test_without_an_outputs_file_the_pulumi_cli_is_asked_for_the_stack_s_outputs(
    aws_settings, aws_outputs_file, tmp_path: Path, monkeypatch
) -> None:
    """A stand-in `pulumi` on PATH (a script that records its arguments and prints the saved outputs)."""
    path, pool_urls = aws_outputs_file
    bin_dir = Path(empty_path(tmp_path)["PATH"])
    calls = tmp_path / "calls.txt"
    script = bin_dir / "pulumi"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncat {path}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    target = open_gate_target(aws_settings, environ={})

    assert calls.read_text().split() == ["stack", "output", "--json", "--stack", "aws"]
    assert target.status().candidate.url == pool_urls["green"]


def test_kind_driver_from_an_outputs_file_uses_the_stack_s_kubeconfig_and_context(
    kube_api: tuple[FakeKubeApi, str], tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "elsewhere",
                "clusters": [{"name": "kind", "cluster": {"server": kube_api[1]}}],
                "users": [{"name": "kind", "user": {"token": "t0ken"}}],
                "contexts": [
                    {"name": "kind-modelops", "context": {"cluster": "kind", "user": "kind"}},
                    {"name": "elsewhere", "context": {"cluster": "nowhere", "user": "kind"}},
                ],
            }
        )
    )
    settings = load_stack_config("kind").with_overrides(
        kind={"create_cluster": False, "kubeconfig": str(kubeconfig), "context": "kind-modelops"}
    )
    pool_urls = {"blue": "http://127.0.0.1:8081", "green": "http://127.0.0.1:8082"}
    path = write_outputs(tmp_path / "outputs.json", {**KIND_OUTPUTS, keys.POOL_URLS: pool_urls})
    cluster = Cluster(kube_api[0])
    cluster.live("blue")
    cluster.pool("blue", deployment("blue", replicas=2))
    cluster.pool("green", deployment("green", replicas=0))

    target = open_gate_target(settings, outputs_file=path)
    try:
        status = target.status()
    finally:
        target.apps.api_client.close()

    assert isinstance(target, KubernetesTarget)
    assert (status.live, status.candidate.url) == ("blue", pool_urls["green"])


def test_gate_on_kind_outputs_without_pool_urls_needs_url(tmp_path: Path) -> None:
    path = write_outputs(tmp_path / "outputs.json", KIND_OUTPUTS)  # a stack made before pool_urls existed
    with pytest.raises(UsageError, match=r"(?s)no pool_urls.*pulumi up -s kind.*pass --url URL"):
        open_gate_target(load_stack_config("kind"), outputs_file=path)


# ------------------------------------------------------------------------------------------- the command line


def test_status_on_aws_reads_the_outputs_named_by_the_environment(aws_outputs_file) -> None:
    path, pool_urls = aws_outputs_file

    result = CliRunner().invoke(app, ["status", "--stack", "aws", "--json"], env={OUTPUTS_ENV: str(path)})

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["live"] == "blue" and {c: p["url"] for c, p in shown["pools"].items()} == pool_urls


def test_gate_with_a_missing_outputs_file_exits_with_the_usage_status(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    args = ["gate", "--stack", "aws", "--candidate", "wine_classifier_service:v2", "--outputs", str(missing)]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "no stack outputs file at" in result.output and "pulumi stack output --json -s aws" in result.output


def test_gate_on_aws_without_pool_urls_or_url_exits_with_the_usage_status_and_changes_nothing(
    aws_stack, tmp_path: Path
) -> None:
    path = write_outputs(tmp_path / "outputs.json", {**aws_stack.outputs, keys.POOL_URLS: {}})
    args = ["gate", "--stack", "aws", "--candidate", "wine_classifier_service:v2", "--outputs", str(path)]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "--url" in result.output and "test_cidrs" in result.output
    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}
    assert aws_stack.asg("green")["DesiredCapacity"] == 0 and aws_stack.in_service("green") == []


def test_gate_without_outputs_and_without_the_pulumi_cli_exits_with_the_error_status(tmp_path: Path) -> None:
    args = ["gate", "--stack", "kind", "--candidate", "wine_classifier_service:v2"]

    result = CliRunner().invoke(app, args, env={**empty_path(tmp_path), OUTPUTS_ENV: None})

    assert result.exit_code == ExitStatus.ERROR, result.output
    message = " ".join(result.output.split())
    assert "Pulumi CLI is not installed" in message and "--outputs FILE" in message


def test_gate_help_documents_outputs_and_url() -> None:
    result = CliRunner().invoke(app, ["gate", "--stack", "aws", "--outputs", "F", "--url", "U", "--help"])

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())  # rich draws the options in a box
    for words in ("--outputs", "pulumi stack output --json", "MODELOPS_OUTPUTS", "--url", "pool_urls", "test_cidrs"):
        assert words in text, f"`modelops gate --help` does not mention {words}"


def test_aws_session_comes_from_the_environment(aws_settings, aws_outputs_file, aws_session: boto3.Session) -> None:
    """No credentials or endpoint are passed in code: moto is reached through AWS_ENDPOINT_URL, like a real account
    through AWS_PROFILE or an instance role."""
    target = open_target(aws_settings, outputs_file=aws_outputs_file[0])
    assert target.elbv2.meta.endpoint_url == os.environ["AWS_ENDPOINT_URL"]
