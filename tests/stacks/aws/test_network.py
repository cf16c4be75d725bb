"""stacks/aws/network.py: the VPC over several AZs, public/private subnets, NAT, flow logs."""

from __future__ import annotations

import ipaddress
import json

import pytest

from stacks.aws.network import INTERFACE_SERVICES, pick_zone, subnet_cidrs
from tests.stacks.aws.types import (
    DEFAULT_SG,
    ENDPOINT,
    FLOW_LOG,
    IGW,
    INGRESS,
    KMS_KEY,
    LOG_GROUP,
    NAT,
    ROLE,
    ROLE_POLICY,
    ROUTE,
    ROUTE_TABLE,
    SUBNET,
    VPC,
)
from tests.stacks.rendering import copy_stack, render_with_cli


def subnets(rendering, tier: str) -> list[dict]:
    found = [r for r in rendering.of_type(SUBNET) if r["inputs"]["tags"]["tier"] == tier]
    return sorted(found, key=lambda r: r["name"])


@pytest.mark.parametrize("tier", ["public", "private"])
def test_subnets_of_each_tier_span_az_count_zones(aws_rendering, aws_settings, tier) -> None:
    found = subnets(aws_rendering, tier)
    zones = {s["inputs"]["availabilityZone"] for s in found}
    assert len(found) == aws_settings.aws.az_count >= 2, f"{tier} subnets: {[s['name'] for s in found]}"
    assert len(zones) == len(found), f"{tier} subnets share an AZ: {zones}"


def test_three_az_variant_has_three_subnets_per_tier(aws_planned) -> None:
    assert len(subnets(aws_planned, "public")) == len(subnets(aws_planned, "private")) == 3


def test_subnet_cidrs_lie_inside_the_vpc_and_do_not_overlap(aws_rendering, aws_settings) -> None:
    vpc = ipaddress.ip_network(aws_rendering.inputs(VPC, "net-vpc")["cidrBlock"])
    assert str(vpc) == aws_settings.aws.vpc_cidr
    blocks = [ipaddress.ip_network(s["inputs"]["cidrBlock"]) for s in aws_rendering.of_type(SUBNET)]
    assert all(b.subnet_of(vpc) for b in blocks), blocks
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :]), blocks


def test_no_subnet_gives_instances_public_ips(aws_rendering) -> None:
    for subnet in aws_rendering.of_type(SUBNET):
        assert subnet["inputs"]["mapPublicIpOnLaunch"] is False, subnet["name"]


def test_public_subnets_route_to_the_internet_gateway(aws_rendering) -> None:
    igw = aws_rendering.one(IGW, "net-igw")
    route = aws_rendering.inputs(ROUTE, "net-public-default")
    assert route == {**route, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": igw["id"]}


@pytest.mark.parametrize("index", [0, 1])
def test_private_subnets_reach_out_only_through_nat(aws_rendering, index) -> None:
    nat_ids = {n["id"] for n in aws_rendering.of_type(NAT)}
    route = aws_rendering.inputs(ROUTE, f"net-private-{index}-default")
    assert route["destinationCidrBlock"] == "0.0.0.0/0"
    assert route["natGatewayId"] in nat_ids and "gatewayId" not in route, route


def test_one_nat_gateway_unless_nat_per_az(aws_rendering, aws_settings) -> None:
    assert aws_settings.aws.nat_per_az is False
    assert len(aws_rendering.of_type(NAT)) == 1


def test_nat_per_az_puts_a_nat_in_every_public_subnet(aws_planned) -> None:
    nats = aws_planned.of_type(NAT)
    public_ids = {s["id"] for s in subnets(aws_planned, "public")}
    assert {n["inputs"]["subnetId"] for n in nats} == public_ids
    routes = {aws_planned.inputs(ROUTE, f"net-private-{i}-default")["natGatewayId"] for i in range(3)}
    assert len(routes) == 3, "each AZ's private route table must use its own NAT"


def test_default_security_group_has_no_rules(aws_rendering) -> None:
    default = aws_rendering.inputs(DEFAULT_SG, "net-default-sg")
    assert not default.get("ingress") and not default.get("egress"), default


def test_flow_logs_capture_all_traffic_of_the_vpc(aws_rendering) -> None:
    vpc = aws_rendering.one(VPC, "net-vpc")
    group = aws_rendering.one(LOG_GROUP, "net-flow-logs")
    flow = aws_rendering.inputs(FLOW_LOG, "net-flow-log")
    assert flow["vpcId"] == vpc["id"]
    assert flow["trafficType"] == "ALL"
    assert flow["logDestinationType"] == "cloud-watch-logs" and flow["logDestination"] == group["outputs"]["arn"]


def test_flow_log_group_is_kms_encrypted_and_kept_a_year(aws_rendering, aws_settings) -> None:
    group = aws_rendering.inputs(LOG_GROUP, "net-flow-logs")
    key = aws_rendering.one(KMS_KEY, "logs-key")
    assert group["kmsKeyId"] == key["outputs"]["arn"]
    assert group["retentionInDays"] == aws_settings.aws.log_retention_days >= 365


def test_flow_log_role_may_only_write_its_own_log_group(aws_rendering) -> None:
    group_arn = aws_rendering.one(LOG_GROUP, "net-flow-logs")["outputs"]["arn"]
    policy = json.loads(aws_rendering.inputs(ROLE_POLICY, "net-flow-deliver")["policy"])
    for statement in policy["Statement"]:
        assert all("*" not in action for action in statement["Action"]), statement
        assert all(resource.startswith(group_arn) for resource in statement["Resource"]), statement


def test_subnet_cidrs_are_equal_halves_public_then_private() -> None:
    public, private = subnet_cidrs("10.20.0.0/16", 2)
    assert public == ["10.20.0.0/18", "10.20.64.0/18"]
    assert private == ["10.20.128.0/18", "10.20.192.0/18"]


def test_too_few_availability_zones_name_the_setting() -> None:
    with pytest.raises(ValueError, match=r"2 available AZs .* modelops:aws\.az_count asks for 3"):
        pick_zone(["us-east-1a", "us-east-1b"], 2, 3)


@pytest.mark.parametrize("rendering", ["aws_rendering", "aws_planned"])
def test_image_pulls_reach_s3_through_a_gateway_endpoint_on_every_private_route_table(request, rendering) -> None:
    found = request.getfixturevalue(rendering)
    (endpoint,) = [e for e in found.of_type(ENDPOINT) if e["inputs"]["vpcEndpointType"] == "Gateway"]
    inputs = endpoint["inputs"]
    assert inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
    private = {rt["id"] for rt in found.of_type(ROUTE_TABLE) if "-private-" in rt["name"]}
    assert private and set(inputs["routeTableIds"]) == private  # one per AZ in the NAT-per-AZ variant


def test_the_s3_endpoint_reads_only_ecr_layers_package_repositories_and_the_ssm_agent(aws_rendering) -> None:
    (endpoint,) = [e for e in aws_rendering.of_type(ENDPOINT) if e["inputs"]["vpcEndpointType"] == "Gateway"]
    (statement,) = json.loads(endpoint["inputs"]["policy"])["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "s3:GetObject")
    buckets = {r.removeprefix("arn:aws:s3:::").removesuffix("/*") for r in statement["Resource"]}
    assert buckets == {"prod-us-east-1-starport-layer-bucket", "al2023-repos-us-east-1-de612dc2",
                       "amazon-ssm-us-east-1", "aws-ssm-us-east-1"}  # fmt: skip


@pytest.mark.parametrize("rendering", ["aws_rendering", "aws_planned"])
def test_instances_boot_and_report_ready_through_interface_endpoints_not_the_nat(request, rendering) -> None:
    found = request.getfixturevalue(rendering)
    interface = [e["inputs"] for e in found.of_type(ENDPOINT) if e["inputs"]["vpcEndpointType"] == "Interface"]
    services = sorted(e["serviceName"].removeprefix("com.amazonaws.us-east-1.") for e in interface)
    assert services == sorted(INTERFACE_SERVICES)
    private = {s["id"] for s in found.of_type(SUBNET) if s["inputs"]["tags"]["tier"] == "private"}
    assert all(set(e["subnetIds"]) == private and e["privateDnsEnabled"] is True for e in interface)
    (sg,) = {sg for e in interface for sg in e["securityGroupIds"]}
    (rule,) = [r["inputs"] for r in found.of_type(INGRESS) if r["inputs"]["securityGroupId"] == sg]
    assert (rule["fromPort"], rule["toPort"], rule["cidrIpv4"]) == (443, 443, found.inputs(VPC, "net-vpc")["cidrBlock"])


def test_interface_endpoints_can_be_left_out(tmp_path) -> None:
    stacks = copy_stack("aws", tmp_path / "stacks", aws={"interface_endpoints": False})
    found = render_with_cli("aws", tmp_path / "out", stacks_dir=stacks)
    assert [e["inputs"]["vpcEndpointType"] for e in found.of_type(ENDPOINT)] == ["Gateway"]


def test_the_flow_log_role_trusts_the_service_for_this_account_s_flow_logs_only(aws_rendering) -> None:
    role = aws_rendering.one(ROLE, "net-flow-role")
    (trust,) = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:ec2:us-east-1:123456789012:vpc-flow-log/*"},
    }
