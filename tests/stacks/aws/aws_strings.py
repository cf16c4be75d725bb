"""The character sets and lengths AWS documents for string arguments of the resources the aws stack makes.

Pulumi's mocks (and pulumi-aws' own schema) accept any string; AWS refuses the call at `pulumi up` with
InvalidParameterValue / ValidationError. Each rule names the API reference it comes from, so a reviewer can check
it. Autonamed resources have no ``name`` input under mocks: Pulumi names them ``<logical name>-<7 random
lowercase hex characters>``, which the checks build the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

AUTONAME_SUFFIX = "-abcdef0"  # Pulumi autonaming: "-" + 7 random lowercase hex characters

# EC2 CreateSecurityGroup GroupDescription / GroupName and the Description of a security group rule
# (IpRange/SecurityGroupRule "Constraints: ... a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*").
EC2_SG_TEXT = r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*"
# Tags, the strictest common set (Elastic Load Balancing, Auto Scaling, most services):
# "letters, numbers, and spaces representable in UTF-8, and the following characters: + - = . _ : / @".
TAG_TEXT = r"[\w .:/=+\-@]*"
# IAM names (roles, instance profiles, inline policies): "[\w+=,.@-]+".
IAM_NAME = r"[\w+=,.@\-]+"
# IAM Role Description: "[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*".
IAM_DESCRIPTION = "[\u0009\u000a\u000d\u0020-\u007e\u00a1-\u00ff]*"


@dataclass(frozen=True)
class Rule:
    pattern: str
    max_len: int
    source: str
    min_len: int = 0


# (resource type, input path) -> Rule. A path "name" also covers the autonamed name when no name is given.
RULES: dict[tuple[str, str], Rule] = {
    ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "description"): Rule(
        EC2_SG_TEXT, 255, "EC2 API, AuthorizeSecurityGroupIngress IpRange.Description"
    ),
    ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "description"): Rule(
        EC2_SG_TEXT, 255, "EC2 API, AuthorizeSecurityGroupEgress IpRange.Description"
    ),
    ("aws:ec2/securityGroup:SecurityGroup", "description"): Rule(
        EC2_SG_TEXT, 255, "EC2 API, CreateSecurityGroup GroupDescription"
    ),
    ("aws:ec2/securityGroup:SecurityGroup", "name"): Rule(EC2_SG_TEXT, 255, "EC2 API, CreateSecurityGroup GroupName"),
    ("aws:lb/loadBalancer:LoadBalancer", "name"): Rule(
        r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?", 32, "ELBv2 API, CreateLoadBalancer Name"
    ),
    ("aws:lb/targetGroup:TargetGroup", "name"): Rule(
        r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?", 32, "ELBv2 API, CreateTargetGroup Name"
    ),
    ("aws:ec2/launchTemplate:LaunchTemplate", "name"): Rule(
        r"[a-zA-Z0-9().\-/_]+", 128, "EC2 API, CreateLaunchTemplate LaunchTemplateName", min_len=3
    ),
    ("aws:ec2/launchTemplate:LaunchTemplate", "description"): Rule(
        r"[^\x00-\x1f]*", 255, "EC2 API, CreateLaunchTemplate VersionDescription"
    ),
    ("aws:autoscaling/group:Group", "name"): Rule(r"[^:\x00-\x1f]+", 255, "Auto Scaling API, AutoScalingGroupName"),
    ("aws:autoscaling/lifecycleHook:LifecycleHook", "name"): Rule(
        r"[A-Za-z0-9\-_/]+", 255, "Auto Scaling API, PutLifecycleHook LifecycleHookName"
    ),
    ("aws:autoscaling/policy:Policy", "name"): Rule(r"[^:\x00-\x1f]+", 255, "Auto Scaling API, PolicyName"),
    ("aws:iam/role:Role", "name"): Rule(IAM_NAME, 64, "IAM API, CreateRole RoleName"),
    ("aws:iam/role:Role", "description"): Rule(IAM_DESCRIPTION, 1000, "IAM API, CreateRole Description"),
    ("aws:iam/instanceProfile:InstanceProfile", "name"): Rule(IAM_NAME, 128, "IAM API, InstanceProfileName"),
    ("aws:iam/rolePolicy:RolePolicy", "name"): Rule(IAM_NAME, 128, "IAM API, PutRolePolicy PolicyName"),
    ("aws:kms/alias:Alias", "namePrefix"): Rule(r"alias/[a-zA-Z0-9/_\-]+", 256, "KMS API, CreateAlias AliasName"),
    ("aws:kms/key:Key", "description"): Rule(r"[\s\S]*", 8192, "KMS API, CreateKey Description"),
    ("aws:cloudwatch/logGroup:LogGroup", "name"): Rule(r"[.\-_/#A-Za-z0-9]+", 512, "CloudWatch Logs, logGroupName"),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "name"): Rule(
        r"[^\x00-\x1f]+", 255, "CloudWatch API, PutMetricAlarm AlarmName"
    ),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "alarmDescription"): Rule(
        r"[^\x00-\x08\x0b\x0c\x0e-\x1f]*", 1024, "CloudWatch API, PutMetricAlarm AlarmDescription"
    ),
    ("aws:sns/topic:Topic", "name"): Rule(r"[A-Za-z0-9_\-]+", 256, "SNS API, CreateTopic Name"),
    ("aws:ecr/repository:Repository", "name"): Rule(
        r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*", 256, "ECR API, repositoryName", min_len=2
    ),
    ("aws:s3/bucket:Bucket", "bucket"): Rule(r"[a-z0-9][a-z0-9.\-]*[a-z0-9]", 63, "S3, bucket naming rules", min_len=3),
    ("aws:budgets/budget:Budget", "name"): Rule(r"[^:\\]+", 100, "Budgets API, BudgetName"),
}

# Resources Pulumi autonames when the program gives no name (the physical name is the logical one + a suffix).
AUTONAMED_KEY = {
    "aws:s3/bucket:Bucket": "bucket",
}


@dataclass(frozen=True)
class Violation:
    resource: str
    field: str
    value: str
    why: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.field} = {self.value!r}: {self.why}"


def _value(resource: dict, field: str) -> str | None:
    inputs = resource["inputs"]
    if field in inputs:
        value = inputs[field]
        return value if isinstance(value, str) else None
    name_key = AUTONAMED_KEY.get(resource["type"], "name")
    if field == name_key and "namePrefix" not in inputs:
        return resource["name"] + AUTONAME_SUFFIX  # what Pulumi would name it
    return None


def _tags(resource: dict) -> Iterator[tuple[str, dict[str, Any]]]:
    inputs = resource["inputs"]
    if isinstance(inputs.get("tags"), dict):
        yield "tags", inputs["tags"]
    if isinstance(inputs.get("tags"), list):  # Auto Scaling: [{key, value, propagateAtLaunch}]
        yield "tags", {t["key"]: t["value"] for t in inputs["tags"]}
    for spec in inputs.get("tagSpecifications") or []:
        yield f"tagSpecifications[{spec.get('resourceType')}]", spec.get("tags") or {}


def _why(pattern: str, value: str) -> str:
    """Name the offending characters when the rule is one character class, else the pattern."""
    if re.fullmatch(r"\[.*\][*+]", pattern):
        bad = sorted({c for c in value if not re.fullmatch(pattern[:-1], c)})
        if bad:
            return f"characters {bad} are not allowed"
    return f"does not match {pattern}"


def check(resource: dict) -> list[Violation]:
    """Every documented string constraint the resource breaks (name, descriptions, tags)."""
    found: list[Violation] = []
    who = f"{resource['type'].rsplit(':', 1)[-1]} {resource['name']}"
    for (type_, field), rule in RULES.items():
        if resource["type"] != type_:
            continue
        value = _value(resource, field)
        if value is None:
            continue
        if not re.fullmatch(rule.pattern, value):
            found.append(Violation(who, field, value, f"{_why(rule.pattern, value)}, see {rule.source}"))
        if not rule.min_len <= len(value) <= rule.max_len:
            limits = f"{rule.min_len}..{rule.max_len}"
            found.append(Violation(who, field, value, f"length {len(value)} not in {limits} ({rule.source})"))
    for field, tags in _tags(resource):
        for key, value in tags.items():
            if key.lower().startswith("aws:"):
                found.append(Violation(who, field, key, "the aws: tag prefix is reserved for AWS"))
            for part, text, limit in (("key", key, 128), ("value", str(value), 256)):
                if not re.fullmatch(TAG_TEXT, text) or len(text) > limit:
                    found.append(Violation(who, f"{field}.{part}", text, f"tag {part}s allow {TAG_TEXT}, <= {limit}"))
    return found


def violations(resources: list[dict]) -> list[Violation]:
    return [v for r in resources if r["type"].startswith("aws:") for v in check(r)]
