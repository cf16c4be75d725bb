"""The S3 bucket that receives the ALB's access logs: private, encrypted, versioned, expiring."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

PREFIX = "alb"


@dataclass(frozen=True)
class AccessLogBucketArgs:
    account_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    elb_account_arn: pulumi.Input[str]  # the regional Elastic Load Balancing account that writes the logs
    retention_days: int
    force_destroy: bool  # deletable with its logs on `pulumi destroy` (when the ALB is not deletion-protected)


class AccessLogBucket(pulumi.ComponentResource):
    def __init__(self, name: str, args: AccessLogBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:AccessLogBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(name, force_destroy=args.force_destroy, opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-owner", bucket=self.bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-private",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        # ALB log delivery writes with SSE-S3 only (it cannot use a customer-managed KMS key).
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse",
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=self.bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-expiry",
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": f"{PREFIX}/"},
                    "expiration": {"days": args.retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 30},
                },
                {
                    # Every prefix: parts of an upload that never finished are billed until aborted.
                    "id": "abort-incomplete-uploads",
                    "status": "Enabled",
                    "filter": {},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                },
            ],
            opts=child,
        )
        policy = pulumi.Output.all(self.bucket.arn, args.account_id, args.elb_account_arn).apply(
            lambda v: delivery_policy(bucket_arn=v[0], account_id=v[1], elb_account_arn=v[2])
        )
        self.policy = aws.s3.BucketPolicy(f"{name}-policy", bucket=self.bucket.id, policy=policy, opts=child)
        self.name = self.bucket.bucket
        self.register_outputs({"bucket": self.bucket.bucket})


def delivery_policy(bucket_arn: str, account_id: str, elb_account_arn: str) -> str:
    """Elastic Load Balancing may put objects under alb/AWSLogs/<account>/; nobody may use plain HTTP."""
    logs = f"{bucket_arn}/{PREFIX}/AWSLogs/{account_id}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                # Regions opened before August 2022 deliver as the regional ELB account, newer ones as the
                # log delivery service principal; granting both works in every region.
                {
                    "Sid": "ElbAccountDelivers",
                    "Effect": "Allow",
                    "Principal": {"AWS": elb_account_arn},
                    "Action": "s3:PutObject",
                    "Resource": logs,
                },
                {
                    "Sid": "LogDeliveryServiceDelivers",
                    "Effect": "Allow",
                    "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": logs,
                },
                {
                    "Sid": "DenyPlainHttp",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )
