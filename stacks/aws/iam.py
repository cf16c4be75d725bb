"""What an instance may do: pull this stack's images, write its container logs, be reached by SSM (Session Manager
and Run Command). Nothing publishes custom metrics (the ALB's own metrics drive the alarms), so no
cloudwatch:PutMetricData; and the instances read no SSM parameters, so none of AmazonSSMManagedInstanceCore's
`ssm:GetParameter*` on every parameter of the account."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# What the SSM agent needs to register the instance and carry Session Manager sessions and Run Command (the
# failover suite's crash): a subset of AmazonSSMManagedInstanceCore without its parameter, document and inventory
# reads. None of these actions has resource-level permissions. Session Manager instead of SSH: no port 22 anywhere.
SSM_AGENT_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
]


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
                {"Sid": "SsmAgent", "Effect": "Allow", "Action": SSM_AGENT_ACTIONS, "Resource": "*"},
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
        self.profile = aws.iam.InstanceProfile(f"{name}-profile", role=self.role.name, opts=child)
        self.register_outputs({"profile_arn": self.profile.arn, "log_group": self.log_group.name})
