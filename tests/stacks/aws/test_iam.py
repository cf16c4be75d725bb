"""stacks/aws/iam.py: the instance role pulls from this repository, writes its logs, reaches SSM — nothing else."""

from __future__ import annotations

import json

from stacks.aws.iam import METRICS_NAMESPACE
from tests.stacks.aws.types import INSTANCE_PROFILE, LOG_GROUP, POLICY_ATTACHMENT, REPOSITORY, ROLE, ROLE_POLICY

# Actions IAM offers no resource-level permissions for: "*" is the only resource they accept.
UNSCOPABLE = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


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


def test_metrics_are_limited_to_the_modelops_namespace(aws_rendering) -> None:
    (metrics,) = [s for s in statements(aws_rendering) if "cloudwatch:PutMetricData" in actions(s)]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}}


def test_role_is_for_ec2_with_ssm_core_and_an_instance_profile(aws_rendering) -> None:
    role = aws_rendering.one(ROLE, "instance-role")
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    attachment = aws_rendering.inputs(POLICY_ATTACHMENT, "instance-ssm")
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    assert aws_rendering.inputs(INSTANCE_PROFILE, "instance-profile")["role"] == role["outputs"]["name"]


def test_container_log_group_is_encrypted_and_retained(aws_rendering, aws_settings) -> None:
    group = aws_rendering.inputs(LOG_GROUP, "instance-logs")
    assert group["kmsKeyId"].startswith("arn:aws:kms:")
    assert group["retentionInDays"] == aws_settings.aws.log_retention_days
