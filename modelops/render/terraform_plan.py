"""The recorded AWS resources shaped like `terraform show -json` output, for checkov --framework terraform_plan."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelops.render.common import RenderError, normalise

# ---------------------------------------------------------------------------------------------------------------
# Terraform-plan shape, for checkov --framework terraform_plan.

# Pulumi type token → (Terraform type, Pulumi property → Terraform attribute where they differ). Pulumi pluralises
# list-valued blocks (default_action → default_actions); checkov's policies use the Terraform names.
TERRAFORM_TYPES: dict[str, tuple[str, dict[str, str]]] = {
    "aws:autoscaling/group:Group": ("aws_autoscaling_group", {"vpc_zone_identifiers": "vpc_zone_identifier"}),
    "aws:autoscaling/policy:Policy": ("aws_autoscaling_policy", {}),
    "aws:budgets/budget:Budget": ("aws_budgets_budget", {"notifications": "notification"}),
    "aws:cloudwatch/logGroup:LogGroup": ("aws_cloudwatch_log_group", {}),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("aws_cloudwatch_metric_alarm", {"metric_queries": "metric_query"}),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ("aws_default_security_group", {}),
    "aws:ec2/eip:Eip": ("aws_eip", {}),
    "aws:ec2/flowLog:FlowLog": ("aws_flow_log", {}),
    "aws:ec2/internetGateway:InternetGateway": ("aws_internet_gateway", {}),
    "aws:ec2/launchTemplate:LaunchTemplate": ("aws_launch_template", {}),
    "aws:ec2/natGateway:NatGateway": ("aws_nat_gateway", {}),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("aws_vpc_endpoint", {}),
    "aws:sns/topic:Topic": ("aws_sns_topic", {}),
    "aws:sns/topicPolicy:TopicPolicy": ("aws_sns_topic_policy", {}),
    "aws:sns/topicSubscription:TopicSubscription": ("aws_sns_topic_subscription", {}),
    "aws:ec2/route:Route": ("aws_route", {}),
    "aws:ec2/routeTable:RouteTable": ("aws_route_table", {"routes": "route"}),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("aws_route_table_association", {}),
    "aws:ec2/securityGroup:SecurityGroup": ("aws_security_group", {}),
    "aws:ec2/subnet:Subnet": ("aws_subnet", {}),
    "aws:ec2/vpc:Vpc": ("aws_vpc", {}),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("aws_ecr_lifecycle_policy", {}),
    "aws:ecr/repository:Repository": (
        "aws_ecr_repository",
        {"encryption_configurations": "encryption_configuration"},
    ),
    "aws:iam/instanceProfile:InstanceProfile": ("aws_iam_instance_profile", {}),
    "aws:iam/role:Role": ("aws_iam_role", {"inline_policies": "inline_policy"}),
    "aws:iam/rolePolicy:RolePolicy": ("aws_iam_role_policy", {}),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("aws_iam_role_policy_attachment", {}),
    "aws:kms/alias:Alias": ("aws_kms_alias", {}),
    "aws:kms/key:Key": ("aws_kms_key", {}),
    "aws:lb/listener:Listener": (
        "aws_lb_listener",
        {"default_actions": "default_action", "target_groups": "target_group"},
    ),
    "aws:lb/listenerRule:ListenerRule": ("aws_lb_listener_rule", {"actions": "action", "conditions": "condition"}),
    "aws:lb/loadBalancer:LoadBalancer": ("aws_lb", {}),
    "aws:lb/targetGroup:TargetGroup": ("aws_lb_target_group", {}),
    "aws:s3/bucket:Bucket": ("aws_s3_bucket", {}),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        "aws_s3_bucket_lifecycle_configuration",
        {"rules": "rule"},
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("aws_s3_bucket_ownership_controls", {}),
    "aws:s3/bucketPolicy:BucketPolicy": ("aws_s3_bucket_policy", {}),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("aws_s3_bucket_public_access_block", {}),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "aws_s3_bucket_server_side_encryption_configuration",
        {"rules": "rule"},
    ),
    "aws:s3/bucketVersioning:BucketVersioning": ("aws_s3_bucket_versioning", {}),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("aws_vpc_security_group_egress_rule", {}),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("aws_vpc_security_group_ingress_rule", {}),
}
# Attributes whose keys are data (tag names, CloudWatch dimensions), not property names: keep them as they are.
MAP_ATTRIBUTES = {"tags", "tags_all", "dimensions"}
# ASG tags are blocks in Terraform (tag { key value propagate_at_launch }), a list of objects in Pulumi.
BLOCK_LIST_RENAMES = {"aws_autoscaling_group": {"tags": "tag"}}


def terraform_type(pulumi_type: str) -> str:
    try:
        return TERRAFORM_TYPES[pulumi_type][0]
    except KeyError:
        raise RenderError(
            f"no Terraform type known for {pulumi_type}: add it to TERRAFORM_TYPES in "
            "modelops/render/terraform_plan.py (the checkov scan must see every AWS resource)"
        ) from None


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class _Ref:
    address: str
    attribute: str


def terraform_plan(resources: list[dict], region: str) -> dict:
    """A ``terraform show -json``-shaped plan of the AWS resources.

    A value that is another resource's id, ARN or name becomes what Terraform would plan for it: unknown in
    ``planned_values`` and a reference in ``configuration`` (``aws_vpc.net-vpc.id``), so checkov's graph checks
    (flow logs attached to the VPC, security group attached to a load balancer …) see the connections.
    """
    addresses: dict[str, str] = {}
    for resource in resources:
        address = f"{terraform_type(resource['type'])}.{resource['name']}"
        if address in addresses.values():
            raise RenderError(f"two AWS resources map to {address}: give them distinct logical names")
        addresses[resource["urn"]] = address
    references: dict[str, _Ref] = {}
    for resource in resources:
        address = addresses[resource["urn"]]
        outputs = resource["outputs"]
        for attribute in ("id", "arn", "name", "bucket"):
            value = outputs.get(attribute) if attribute != "id" else resource["id"]
            if isinstance(value, str) and len(value) > 6:
                references.setdefault(value, _Ref(address, attribute))

    planned, configured, changes = [], [], []
    for resource in resources:
        tf_type, renames = TERRAFORM_TYPES[resource["type"]]
        address = addresses[resource["urn"]]
        renames = {**renames, **BLOCK_LIST_RENAMES.get(tf_type, {})}
        values, expressions = _convert(normalise(resource["inputs"]), renames, references, own=address)
        name = resource["name"]
        common = {"address": address, "mode": "managed", "type": tf_type, "name": name}
        planned.append(
            {**common, "provider_name": "registry.terraform.io/hashicorp/aws", "schema_version": 0, "values": values}
        )
        configured.append({**common, "provider_config_key": "aws", "expressions": expressions})
        changes.append(
            {
                **common,
                "provider_name": "registry.terraform.io/hashicorp/aws",
                "change": {"actions": ["create"], "before": None, "after": values, "after_unknown": {}},
            }
        )
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.0",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {
                "aws": {
                    "name": "aws",
                    "full_name": "registry.terraform.io/hashicorp/aws",
                    "expressions": {"region": {"constant_value": region}},
                }
            },
            "root_module": {"resources": configured},
        },
    }


def _convert(inputs: dict, renames: dict[str, str], references: dict[str, _Ref], own: str) -> tuple[dict, dict]:
    """(planned values, configuration expressions) of one block. Nested objects become one-element lists, as
    Terraform plans nested blocks."""
    values: dict[str, Any] = {}
    expressions: dict[str, Any] = {}
    for key, value in inputs.items():
        if key.startswith("__"):
            continue
        attribute = renames.get(snake(key), snake(key))
        refs = _references(value, references, own)
        if refs:
            expressions[attribute] = {"references": refs}
            continue  # unknown until apply, as in a real plan
        if attribute in MAP_ATTRIBUTES and isinstance(value, dict):
            values[attribute] = value
        elif isinstance(value, dict):
            nested_values, nested_expressions = _convert(value, renames, references, own)
            values[attribute] = [nested_values]
            if nested_expressions:
                expressions[attribute] = [nested_expressions]
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            converted = [_convert(v, renames, references, own) for v in value if isinstance(v, dict)]
            values[attribute] = [v for v, _ in converted]
            if any(e for _, e in converted):
                expressions[attribute] = [e for _, e in converted]
        else:
            values[attribute] = value
    return values, expressions


def _references(value: Any, references: dict[str, _Ref], own: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v in references for v in items):
        return []
    found = []
    for item in items:
        ref = references[item]
        if ref.address != own:
            found += [f"{ref.address}.{ref.attribute}", ref.address]
    return found
