"""stacks/aws/iam.py: the instance role pulls from this repository, writes its logs, reaches SSM — nothing else;
stacks/aws/fleet.py adds completing its own group's launch lifecycle hook."""

from __future__ import annotations

import json

import pytest

from stacks.aws.iam import SSM_AGENT_ACTIONS
from stacks.aws.load_balancer import COLOURS
from tests.stacks.aws.types import ASG, INSTANCE_PROFILE, LOG_GROUP, POLICY_ATTACHMENT, REPOSITORY, ROLE, ROLE_POLICY

# Actions IAM offers no resource-level permissions for: "*" is the only resource they accept.
UNSCOPABLE = {"ecr:GetAuthorizationToken", "autoscaling:DescribeAutoScalingInstances", *SSM_AGENT_ACTIONS}


def statements(aws_rendering) -> list[dict]:
    return json.loads(aws_rendering.inputs(ROLE_POLICY, "instance-policy")["policy"])["Statement"]


def actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_instance_policy_has_no_wildcard_actions(aws_rendering) -> None:
    for statement in statements(aws_rendering):
        assert all("*" not in action for action in actions(statement)), statement
        assert statement["Effect"] == "Allow"


def test_only_unscopable_actions_use_a_wildcard_resource(aws_rendering) -> None:
    for statement in statements(aws_rendering):
        if statement["Resource"] == "*":
            assert set(actions(statement)) <= UNSCOPABLE, statement


def test_pulls_are_limited_to_this_repository(aws_rendering) -> None:
    repository = aws_rendering.one(REPOSITORY, "bento")["outputs"]["arn"]
    pulls = [s for s in statements(aws_rendering) if any(a.startswith("ecr:Batch") for a in actions(s))]
    assert pulls and all(s["Resource"] == repository for s in pulls)


def test_logs_go_to_the_container_log_group_only(aws_rendering) -> None:
    group = aws_rendering.one(LOG_GROUP, "instance-logs")["outputs"]["arn"]
    (logs,) = [s for s in statements(aws_rendering) if any(a.startswith("logs:") for a in actions(s))]
    assert all(resource.startswith(group) for resource in logs["Resource"]), logs


def test_nothing_publishes_custom_metrics_or_reads_ssm_parameters(aws_rendering) -> None:
    policies = [json.loads(p["inputs"]["policy"]) for p in aws_rendering.of_type(ROLE_POLICY)]
    every = [a for policy in policies for s in policy["Statement"] for a in actions(s)]
    assert "cloudwatch:PutMetricData" not in every
    assert not [a for a in every if a.startswith("ssm:GetParameter")], every
    # Not AmazonSSMManagedInstanceCore either: it grants ssm:GetParameter* on every parameter of the account.
    assert aws_rendering.of_type(POLICY_ATTACHMENT) == []


def test_role_is_for_ec2_with_the_ssm_agent_s_actions_and_an_instance_profile(aws_rendering) -> None:
    role = aws_rendering.one(ROLE, "instance-role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    (ssm,) = [s for s in statements(aws_rendering) if s.get("Sid") == "SsmAgent"]
    assert set(actions(ssm)) == set(SSM_AGENT_ACTIONS)
    assert aws_rendering.inputs(INSTANCE_PROFILE, "instance-profile")["role"] == role["outputs"]["name"]


@pytest.mark.parametrize("colour", COLOURS)
def test_an_instance_may_complete_the_launch_hook_of_its_own_group_only(aws_rendering, colour) -> None:
    policy = aws_rendering.inputs(ROLE_POLICY, f"{colour}-ready")
    assert policy["role"] == aws_rendering.one(ROLE, "instance-role")["outputs"]["name"]
    by_action = {a: s["Resource"] for s in json.loads(policy["policy"])["Statement"] for a in actions(s)}
    assert by_action["autoscaling:CompleteLifecycleAction"] == aws_rendering.one(ASG, f"{colour}-asg")["outputs"]["arn"]
    assert set(by_action) == {"autoscaling:CompleteLifecycleAction", "autoscaling:DescribeAutoScalingInstances"}


def test_container_log_group_is_encrypted_and_retained(aws_rendering, aws_settings) -> None:
    group = aws_rendering.inputs(LOG_GROUP, "instance-logs")
    assert group["kmsKeyId"].startswith("arn:aws:kms:")
    assert group["retentionInDays"] == aws_settings.aws.log_retention_days
