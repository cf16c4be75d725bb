"""What an instance may do: pull this stack's images, write its container logs and metrics, be reached by SSM."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

METRICS_NAMESPACE = "modelops"
SSM_CORE_POLICY = "policy/AmazonSSMManagedInstanceCore"  # Session Manager instead of SSH: no port 22 anywhere


def instance_policy(repository_arn: str, log_group_arn: str) -> str:
    """Least privilege for an instance. Only the actions that have no resource-level permissions use "*"."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # GetAuthorizationToken is account-wide by design: IAM accepts no narrower resource for it.
                    "Sid": "EcrLogin",
                    "Effect": "Allow",
                    "Action": "ecr:GetAuthorizationToken",
                    "Resource": "*",
                },
                {
                    "Sid": "PullThisRepository",
                    "Effect": "Allow",
                    "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    "Resource": repository_arn,
                },
                {
                    "Sid": "WriteContainerLogs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
                },
                {
                    # PutMetricData has no resource-level permissions either: the namespace condition narrows it.
                    "Sid": "PublishMetrics",
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
                },
            ],
        }
    )


@dataclass(frozen=True)
class InstanceIdentityArgs:
    repository_arn: pulumi.Input[str]
    partition: pulumi.Input[str]
    log_key_arn: pulumi.Input[str]
    log_retention_days: int


class InstanceIdentity(pulumi.ComponentResource):
    """The instance role and profile, and the log group its containers write to (the role's only log target)."""

    def __init__(self, name: str, args: InstanceIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:InstanceIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", retention_in_days=args.log_retention_days, kms_key_id=args.log_key_arn, opts=child
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            description="modelops model-serving instances",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(args.repository_arn, self.log_group.arn).apply(
                lambda arns: instance_policy(arns[0], arns[1])
            ),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm",
            role=self.role.name,
            policy_arn=pulumi.Output.concat("arn:", args.partition, ":iam::aws:", SSM_CORE_POLICY),
            opts=child,
        )
        self.profile = aws.iam.InstanceProfile(f"{name}-profile", role=self.role.name, opts=child)
        self.register_outputs({"profile_arn": self.profile.arn, "log_group": self.log_group.name})
