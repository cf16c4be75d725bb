"""Customer-managed KMS keys: one per purpose, rotated, with a key policy that names who may use it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class Account:
    """Where the stack runs: what key policies and ARNs need."""

    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    region: str


@dataclass(frozen=True)
class EncryptionKeyArgs:
    description: str
    account: Account
    # CloudWatch Logs encrypts log groups with the key itself (not through the caller's IAM identity), so the
    # logs service principal of this region must be allowed in the key policy; ECR and EBS use grants instead.
    for_cloudwatch_logs: bool = False
    # Services that publish into something this key encrypts as themselves (CloudWatch alarms and AWS Budgets into
    # the alarm topic): they may use the key, for this account's resources only.
    for_services: tuple[str, ...] = ()


class EncryptionKey(pulumi.ComponentResource):
    def __init__(self, name: str, args: EncryptionKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:EncryptionKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = pulumi.Output.all(args.account.account_id, args.account.partition).apply(
            lambda ids: key_policy(ids[0], ids[1], args.account.region, args.for_cloudwatch_logs, args.for_services)
        )
        self.key = aws.kms.Key(
            f"{name}",
            description=args.description,
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy,
            opts=child,
        )
        # A prefix, not a name: two stacks in one account must not fight over an alias.
        self.alias = aws.kms.Alias(
            f"{name}-alias", name_prefix=f"alias/modelops-{name}-", target_key_id=self.key.id, opts=child
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.key.arn})


def key_policy(
    account_id: str, partition: str, region: str, for_cloudwatch_logs: bool, for_services: tuple[str, ...] = ()
) -> str:
    """The key policy: the account administers the key through IAM; optionally CloudWatch Logs of this region
    may use it, but only for log groups of this account."""
    statements: list[dict] = [
        {
            # Without this statement IAM policies cannot grant use of the key and nobody can ever change it again.
            "Sid": "AccountAdministersKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if for_cloudwatch_logs:
        statements.append(
            {
                "Sid": "CloudWatchLogsOfThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account_id}:log-group:*"
                    }
                },
            }
        )
    if for_services:
        statements.append(
            {
                "Sid": "ServicesPublishingForThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": list(for_services)},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
