"""The kind and aws sections of StackConfig: a wrong value stops early, naming the key, what is allowed, the file."""

from __future__ import annotations

import pytest
import yaml

from stacks.config import AwsSettings, ConfigError, load_stack_config


def write(tmp_path, target: str, section: str, values: dict):
    document = {"config": {"modelops:target": target, f"modelops:{section}": values}}
    (tmp_path / "Pulumi.t.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


CASES = [
    ("aws", {"vpc_cidr": "10.0.0.300/16"}, ["modelops:aws.vpc_cidr", "not an IPv4 CIDR block like 10.20.0.0/16"]),
    ("aws", {"vpc_cidr": "10.0.0.0/8"}, ["modelops:aws.vpc_cidr", "/16 to /24", "got /8"]),
    ("aws", {"vpc_cidr": "10.0.0.0/24", "az_count": 6},
     ["modelops:aws", "too small for az_count 6", "/27 or larger", "larger vpc_cidr or fewer AZs"]),
    ("aws", {"az_count": 1}, ["modelops:aws.az_count", ">= 2", "the ALB needs at least 2"]),
    ("aws", {"log_retention_days": 100}, ["modelops:aws.log_retention_days", "365, 400"]),
    ("aws", {"live_colour": "red"}, ["modelops:aws.live_colour", "'blue', 'green'"]),
    ("aws", {"certificate_arn": "arn:aws:iam::1:server-certificate/x"}, ["modelops:aws.certificate_arn", ":acm:"]),
    ("aws", {"instance_tpye": "c7i.large"}, ["modelops:aws.instance_tpye", "unknown key", "instance_type"]),
    ("aws", {"test_cidrs": ["0.0.0.0/0"]}, ["modelops:aws.test_cidrs", "whole internet", "gate's addresses"]),
    ("aws", {"test_cidrs": ["203.0.113.7/24"]}, ["modelops:aws.test_cidrs", "not an IPv4 CIDR block"]),
    ("aws", {"test_ports": {"blue": 443, "green": 8082}}, ["modelops:aws", "test_ports", "80/443", "[443]"]),
    ("aws", {"test_ports": {"blue": 8081, "green": 8081}}, ["modelops:aws.test_ports", "different ports"]),
    ("kind", {"node_port": 8080}, ["modelops:kind.node_port", ">= 30000, <= 32767", "NodePort"]),
    ("kind", {"create_cluster": False}, ["modelops:kind", "set kubeconfig or context"]),
    ("kind", {"hpa_cpu_target": 70}, ["modelops:kind.hpa_cpu_target", "unknown key"]),
    ("kind", {"pool_node_ports": {"blue": 8081, "green": 30082}}, ["modelops:kind", "NodePorts (30000-32767)"]),
    ("kind", {"pool_node_ports": {"blue": 30080, "green": 30082}}, ["modelops:kind", "must not reuse node_port 30080"]),
    ("kind", {"pool_host_ports": {"blue": 8080, "green": 8082}}, ["modelops:kind", "must not reuse host_port 8080"]),
    ("kind", {"pool_host_ports": {"blue": 8081}}, ["modelops:kind.pool_host_ports.green", "Field required"]),
    ("kind", {"load_generator": {"workers": 0}}, ["modelops:kind.load_generator.workers", ">= 1"]),
    ("kind", {"load_generator": {"image": "locust"}}, ["modelops:kind.load_generator.image", "pattern"]),
    ("kind", {"load_generator": {"enabeld": True}}, ["modelops:kind.load_generator.enabeld", "unknown key"]),
]  # fmt: skip


@pytest.mark.parametrize(("target", "values", "words"), CASES, ids=[f"{c[0]}-{'-'.join(c[1])}" for c in CASES])
def test_invalid_section_values_name_key_allowed_values_and_file(tmp_path, target, values, words) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config("t", write(tmp_path, target, target, values))
    message = str(caught.value)
    for word in [*words, "Pulumi.t.yaml"]:
        assert word in message, f"{word!r} missing from: {message}"


def test_unknown_target_lists_the_targets(tmp_path) -> None:
    (tmp_path / "Pulumi.t.yaml").write_text("config:\n  modelops:target: gke\n")
    with pytest.raises(ConfigError, match=r"(?s)modelops:target.*'local', 'kind' or 'aws'.*Pulumi\.t\.yaml"):
        load_stack_config("t", tmp_path)


@pytest.mark.parametrize("stack", ["kind", "aws"])
def test_shipped_stack_files_target_their_stack(stack) -> None:
    assert load_stack_config(stack).target == stack


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [("c7i.large", "x86_64"), ("c7g.large", "arm64"), ("m6gd.xlarge", "arm64"), ("g5.xlarge", "x86_64"),
     ("c7gn.medium", "arm64"), ("t3a.small", "x86_64")],
)  # fmt: skip
def test_architecture_follows_the_instance_family(instance_type, architecture) -> None:
    assert AwsSettings(instance_type=instance_type).architecture == architecture


def test_test_cidrs_accept_addresses_and_blocks(tmp_path) -> None:
    values = {"test_cidrs": ["203.0.113.7/32", "198.51.100.0/24", "192.0.2.1"]}  # a bare address is a /32
    assert load_stack_config("t", write(tmp_path, "aws", "aws", values)).aws.test_cidrs == values["test_cidrs"]
