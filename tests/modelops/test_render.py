"""modelops/render/ and `modelops render`: the stack program under mocks, written down as files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelops.errors import ExitStatus, UsageError
from modelops.render import RenderError, render_stack, snake, terraform_plan, terraform_type
from stacks.config import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODELOPS = str(Path(sys.executable).parent / "modelops")


def copy_stack(tmp_path: Path, stack: str, section: str, values: dict) -> Path:
    document = yaml.safe_load((PROJECT_ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    document["config"][f"modelops:{section}"].update(values)
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def test_render_command_writes_objects_inputs_plan_and_scripts(tmp_path) -> None:
    out = tmp_path / "kind"
    done = subprocess.run(
        [MODELOPS, "render", "--stack", "kind", "--out", str(out)], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, done.stderr
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert f"wrote {len(files)} files to {out}" in " ".join(done.stdout.split())
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in (out / "kubernetes").glob("*.yaml")}
    assert {"Namespace", "Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds
    assert json.loads((out / "outputs.json").read_text())["service_name"] == "bento"
    assert (out / "scripts" / "kind-cluster.create.sh").read_text().startswith("#!/bin/bash\n")


def test_render_stack_returns_every_file_it_wrote_including_the_terraform_plan(tmp_path) -> None:
    written = render_stack("aws", tmp_path)
    assert sorted(written) == sorted(p for p in tmp_path.rglob("*") if p.is_file())
    plan = json.loads((tmp_path / "terraform-plan.json").read_text())
    types = {r["type"] for r in plan["planned_values"]["root_module"]["resources"]}
    assert {"aws_lb", "aws_lb_listener", "aws_launch_template", "aws_autoscaling_group", "aws_vpc"} <= types
    assert len(list((tmp_path / "aws").glob("*.json"))) == len(plan["planned_values"]["root_module"]["resources"])


def test_rendering_again_into_the_same_directory_leaves_nothing_stale(tmp_path) -> None:
    (tmp_path / "kubernetes").mkdir()
    (tmp_path / "kubernetes" / "old.yaml").write_text("kind: Stale\n")
    (tmp_path / "notes.txt").write_text("mine")
    written = render_stack("kind", tmp_path)
    assert not (tmp_path / "kubernetes" / "old.yaml").exists() and not (tmp_path / "terraform-plan.json").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine", "files the rendering did not write are left alone"
    assert (tmp_path / "notes.txt") not in written


def test_unknown_stack_exits_with_usage_status_and_lists_the_stacks(tmp_path) -> None:
    command = [MODELOPS, "render", "--stack", "gcp", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == ExitStatus.USAGE
    message = " ".join(done.stderr.split())
    assert "no stack named 'gcp'" in message and "aws, demo, kind, local" in message


def test_local_stack_is_refused_without_running_anything(tmp_path) -> None:
    with pytest.raises(UsageError, match="has target 'local', which has no Pulumi resources"):
        render_stack("local", tmp_path)
    assert not list(tmp_path.iterdir())


def test_invalid_settings_are_a_config_error_naming_the_key(tmp_path) -> None:
    stacks = copy_stack(tmp_path, "aws", "deploy", {"min_replicas": 9})
    with pytest.raises(ConfigError, match=r"(?s)modelops:deploy.*min_replicas \(9\) must be <= max_replicas"):
        render_stack("aws", tmp_path / "out", stacks_dir=stacks)


def test_a_failing_program_is_a_render_error_with_its_cause(tmp_path, monkeypatch) -> None:
    history = tmp_path / "work" / "kind" / "history.json"
    history.parent.mkdir(parents=True)
    history.write_text("{broken")
    monkeypatch.setenv("MODELOPS_WORK_DIR", str(tmp_path / "work"))  # the program reads the stack's history there
    stacks = copy_stack(tmp_path, "kind", "autoscale", {"target": 70})
    with pytest.raises(RenderError, match=r"CapacityPlanError: .*history\.json \(promotion history\) is not JSON"):
        render_stack("kind", tmp_path / "out", stacks_dir=stacks)


@pytest.mark.parametrize(
    ("camel", "snake_case"),
    [("httpPutResponseHopLimit", "http_put_response_hop_limit"), ("cidrIpv4", "cidr_ipv4"), ("vpcId", "vpc_id"),
     ("enableDnsHostnames", "enable_dns_hostnames"), ("port", "port")],
)  # fmt: skip
def test_property_names_become_terraform_attribute_names(camel, snake_case) -> None:
    assert snake(camel) == snake_case


def test_an_unmapped_aws_type_is_refused_loudly() -> None:
    with pytest.raises(RenderError, match="add it to TERRAFORM_TYPES"):
        terraform_type("aws:sagemaker/endpoint:Endpoint")


def resource(type_: str, name: str, inputs: dict, **outputs: str) -> dict:
    return {"urn": f"urn:{name}", "type": type_, "name": name, "id": f"{name}-0123abcd", "inputs": inputs,
            "outputs": {"arn": f"arn:aws:x:::{name}-0123abcd", **outputs}}  # fmt: skip


def test_the_plan_turns_ids_into_references_and_nests_blocks() -> None:
    vpc = resource("aws:ec2/vpc:Vpc", "net", {"cidrBlock": "10.0.0.0/16", "tags": {"Name": "x", "camelKey": "v"}})
    group = resource(
        "aws:autoscaling/group:Group",
        "asg",
        {"vpcZoneIdentifiers": ["net-0123abcd"], "launchTemplate": {"id": "net-0123abcd", "version": "1"},
         "tags": [{"key": "Name", "value": "x", "propagateAtLaunch": True}], "minSize": 1.0},
    )  # fmt: skip
    plan = terraform_plan([vpc, group], region="eu-west-1")
    planned = {r["address"]: r["values"] for r in plan["planned_values"]["root_module"]["resources"]}
    configured = {r["address"]: r["expressions"] for r in plan["configuration"]["root_module"]["resources"]}
    assert planned["aws_vpc.net"] == {"cidr_block": "10.0.0.0/16", "tags": {"Name": "x", "camelKey": "v"}}
    assert planned["aws_autoscaling_group.asg"] == {
        "launch_template": [{"version": "1"}],
        "tag": [{"key": "Name", "value": "x", "propagate_at_launch": True}],
        "min_size": 1,
    }
    assert configured["aws_autoscaling_group.asg"] == {
        "vpc_zone_identifier": {"references": ["aws_vpc.net.id", "aws_vpc.net"]},
        "launch_template": [{"id": {"references": ["aws_vpc.net.id", "aws_vpc.net"]}}],
    }
    assert plan["configuration"]["provider_config"]["aws"]["expressions"]["region"] == {"constant_value": "eu-west-1"}
