"""Render a stack offline: run the Pulumi program under mocks and write down every resource it declares.

No Pulumi engine, cloud or cluster is involved. The program (__main__.py) runs in a fresh Python process (Pulumi's
mocks are process-global) with the stack's settings from ``stacks/Pulumi.<stack>.yaml`` passed as Pulumi config;
a mock monitor records every resource registration: type, logical name, parent, provider, dependencies, options
and inputs. :func:`render_stack` then writes:

- ``resources.json``: the whole record (what the tests assert on) and ``outputs.json``: the stack outputs
- ``kubernetes/*.yaml``: every Kubernetes object, one per file (for kubernetes-validate and checkov)
- ``aws/*.json``: every AWS resource's inputs, and ``terraform-plan.json``: the same resources shaped like
  ``terraform show -json`` output (``aws:lb/loadBalancer:LoadBalancer`` → ``aws_lb``, camelCase → snake_case,
  references between resources as configuration expressions) so checkov's terraform_plan checks understand them
- ``scripts/*.sh``: the shell scripts the stack runs: pulumi_command scripts and decoded EC2 user data

Under mocks nothing runs: AWS lookups (AZs, AMI, account) and pulumi_command's ``stdout`` are canned values below.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelops.errors import ModelopsError, UsageError
from stacks.config import PROJECT, STACKS_DIR, ConfigError, load_stack_config, stack_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROGRAM = PROJECT_ROOT / "__main__.py"
MOCK_ACCOUNT = "123456789012"
MOCK_ELB_ACCOUNT = "127311923021"
# Default vCPUs of the current x86/Graviton general-purpose and compute sizes (EC2 documentation): what
# ec2:DescribeInstanceTypes answers for c7i/m7i/c7g/… Under mocks this canned table stands in for that lookup.
MOCK_VCPUS = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48,
              "16xlarge": 64}  # fmt: skip  # the us-east-1 ELB log delivery account; only a canned lookup result here


class RenderError(ModelopsError):
    """The stack program failed under mocks, or its resources could not be written down."""


# ---------------------------------------------------------------------------------------------------------------
# Parent side: run the recorder in a fresh process, write the files.


def render_stack(
    stack: str,
    out_dir: Path,
    *,
    stacks_dir: Path = STACKS_DIR,
    python: str = sys.executable,
    timeout_s: float = 300,
) -> list[Path]:
    """Render ``stack`` into ``out_dir``; returns the files written. Raises ConfigError or a ModelopsError."""
    settings = load_stack_config(stack, stacks_dir)  # fails fast, naming the key and the file
    if settings.target == "local":
        raise UsageError(
            f"stack {stack!r} has target 'local', which has no Pulumi resources to render: "
            "render a kind or aws stack (modelops render --stack kind --out DIR)"
        )
    record = record_in_subprocess(stack, stacks_dir, python, timeout_s)
    return write_rendering(record, Path(out_dir))


def record_in_subprocess(stack: str, stacks_dir: Path, python: str, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="modelops-render-") as tmp:
        result_file = Path(tmp) / "record.json"
        command = [python, "-m", "modelops.render", stack, str(Path(stacks_dir).resolve()), str(result_file)]
        try:
            proc = subprocess.run(
                command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise RenderError(f"rendering stack {stack!r} took longer than {timeout_s:.0f} s") from None
        record = json.loads(result_file.read_text()) if result_file.is_file() else None
    if record and "error" in record:
        error = record["error"]
        kind = {"ConfigError": ConfigError, "UsageError": UsageError}.get(error["type"])
        if kind is None:
            where = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RenderError(
                f"the {stack!r} stack program failed under mocks: {error['type']}: {error['message']}\n{where}"
            )
        raise kind(error["message"])
    if proc.returncode != 0 or record is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise RenderError(f"the {stack!r} stack program failed under mocks (exit {proc.returncode}):\n{tail}")
    return record


OWN_DIRS = ("kubernetes", "aws", "scripts")
OWN_FILES = ("resources.json", "outputs.json", "terraform-plan.json")


def write_rendering(record: dict, out_dir: Path) -> list[Path]:
    """Write the files; what an earlier rendering left in ``out_dir`` (and only that) is removed first, so a
    scanner never sees a stale object."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OWN_DIRS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in OWN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    written: list[Path] = []

    def write(relative: str, text: str) -> None:
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    write("resources.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    write("outputs.json", json.dumps(record["outputs"], indent=2, sort_keys=True) + "\n")
    resources = [r for r in record["resources"] if r["custom"]]
    for index, obj in enumerate(sorted(kubernetes_objects(resources), key=_object_order)):
        meta = obj.get("metadata", {})
        name = _safe(f"{obj['kind']}-{meta.get('namespace', 'cluster')}-{meta.get('name', 'unnamed')}")
        write(f"kubernetes/{index:02d}-{name.lower()}.yaml", yaml.safe_dump(obj, sort_keys=True))
    aws_resources = [r for r in resources if r["type"].startswith("aws:")]
    for resource in aws_resources:
        tf_type = terraform_type(resource["type"])
        write(f"aws/{tf_type}.{resource['name']}.json", json.dumps(resource["inputs"], indent=2, sort_keys=True))
    if aws_resources:
        plan = terraform_plan(aws_resources, region=record["region"])
        write("terraform-plan.json", json.dumps(plan, indent=2) + "\n")
    for name, script in shell_scripts(resources).items():
        write(f"scripts/{name}.sh", script)
    return written


def _object_order(obj: dict) -> tuple:
    """Namespaces first (what `kubectl apply -f DIR` needs), then by kind, namespace and name."""
    meta = obj.get("metadata", {})
    return (obj["kind"] != "Namespace", obj["kind"], meta.get("namespace", ""), meta.get("name", ""))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _normalise(value: Any) -> Any:
    """Mock inputs come back with every number as a float: 3000.0 → 3000."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def kubernetes_objects(resources: list[dict]) -> list[dict]:
    """Every Kubernetes object, as the provider would send it to the API server."""
    objects = []
    for resource in resources:
        if not resource["type"].startswith("kubernetes:"):  # the provider itself is pulumi:providers:kubernetes
            continue
        body = dict(resource["inputs"])
        head = {key: body.pop(key) for key in ("apiVersion", "kind", "metadata") if key in body}
        objects.append({**head, **body})
    return objects


def shell_scripts(resources: list[dict]) -> dict[str, str]:
    """name → script: pulumi_command scripts (create/delete) and EC2 launch templates' decoded user data."""
    scripts = {}
    for resource in resources:
        if resource["type"] == "command:local:Command":
            interpreter = resource["inputs"].get("interpreter") or ["/bin/sh", "-c"]
            for phase in ("create", "update", "delete"):
                script = resource["inputs"].get(phase)
                if script:
                    shebang = "" if script.startswith("#!") else f"#!{interpreter[0]}\n"
                    scripts[f"{resource['name']}.{phase}"] = shebang + script
        elif resource["type"] == "aws:ec2/launchTemplate:LaunchTemplate" and resource["inputs"].get("userData"):
            scripts[f"user-data.{resource['name']}"] = base64.b64decode(resource["inputs"]["userData"]).decode()
    return scripts


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
            f"no Terraform type known for {pulumi_type}: add it to TERRAFORM_TYPES in modelops/render.py "
            "(the checkov scan must see every AWS resource)"
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
        values, expressions = _convert(_normalise(resource["inputs"]), renames, references, own=address)
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


# ---------------------------------------------------------------------------------------------------------------
# Child side: run the program under recording mocks (python -m modelops.render STACK STACKS_DIR RESULT_FILE).


def pulumi_config(stack: str, stacks_dir: Path) -> dict[str, str]:
    """The stack file's ``config:`` as Pulumi passes it to a program: objects and lists JSON-encoded."""
    document = yaml.safe_load(stack_file(stack, stacks_dir).read_text()) or {}
    config = {}
    for key, value in (document.get("config") or {}).items():
        if value is None:
            continue
        config[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return config


def _short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _record_child(stack: str, stacks_dir: Path) -> dict:
    import logging

    import pulumi
    from pulumi.runtime import mocks, rpc, settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    config_settings = load_stack_config(stack, stacks_dir)
    region = config_settings.aws.region

    def unwrap(value: Any) -> Any:
        if rpc.is_rpc_secret(value):
            return unwrap(rpc.unwrap_rpc_secret(value))
        if isinstance(value, dict):
            return {k: unwrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unwrap(v) for v in value]
        if isinstance(value, pulumi.Resource):
            return f"<resource {type(value).__name__}>"
        return value

    class RecordingMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            inputs = unwrap(args.inputs)
            if not args.custom:
                return "", {}
            if args.typ.startswith("pulumi:providers:"):
                return f"{args.name}-provider-id", inputs
            if args.typ.startswith("kubernetes:"):
                meta = inputs.get("metadata", {})
                return f"{meta.get('namespace', '')}/{meta.get('name', args.name)}".lstrip("/"), inputs
            if args.typ == "command:local:Command":
                return f"{args.name}-id", {**inputs, "stdout": command_stdout(args.name, inputs), "stderr": ""}
            if args.typ.startswith("aws:"):
                return aws_state(args.typ, args.name, inputs, region)
            raise RenderError(f"no mock for resource type {args.typ} ({args.name}): add one in modelops/render.py")

        def __init__(self) -> None:
            self.invokes: list[dict] = []

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
            arguments = _normalise(unwrap(args.args))
            self.invokes.append({"token": args.token, "args": arguments, "provider": args.provider})
            return aws_call(args.token, arguments, region)

    class RecordingMonitor(mocks.MockMonitor):
        def __init__(self, m: pulumi.runtime.Mocks):
            super().__init__(m)
            self.records: list[dict] = []

        def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                registration = self.resources[response.urn]
                self.records.append(
                    {
                        "urn": response.urn,
                        "type": request.type,
                        "name": request.name,
                        "custom": bool(request.custom),
                        "parent": request.parent,
                        "provider": request.provider,
                        "dependencies": list(request.dependencies),
                        "ignore_changes": list(request.ignoreChanges),
                        "additional_secret_outputs": list(request.additionalSecretOutputs),
                        "id": registration.id,
                        "inputs": _normalise(unwrap(rpc.deserialize_properties(request.object))),
                        "outputs": _normalise(unwrap(registration.state)),
                    }
                )
            return response

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[dict] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append({"severity": record.levelname.lower(), "message": record.getMessage()})

    logger = logging.getLogger("modelops.render.pulumi")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    collect = Collect()
    logger.addHandler(collect)
    recording = RecordingMocks()
    monitor = RecordingMonitor(recording)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor)
    pulumi.runtime.set_all_config(pulumi_config(stack, stacks_dir))

    import runpy

    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))
    exported = settings.get_root_resource().outputs
    outputs = _sync_await(pulumi.Output.from_input(exported).future())
    return {
        "stack": stack,
        "target": config_settings.target,
        "region": region,
        "resources": sorted(monitor.records, key=lambda r: r["urn"]),
        "outputs": _normalise(unwrap(outputs)),
        "invokes": sorted(recording.invokes, key=lambda i: json.dumps(i, sort_keys=True)),
        "logs": collect.messages,
        "mocked": {
            "invokes": "AZs, caller identity, partition, AMI, instance vCPUs, ELB account: canned (render.aws_call)",
            "commands": "pulumi_command never runs: stdout is canned (render.command_stdout)",
        },
    }


def aws_state(typ: str, name: str, inputs: dict, region: str) -> tuple[str, dict]:
    """What AWS would compute for a resource: ids, ARNs, autonamed names (logical name + '-' + 7 chars, as
    Pulumi autonaming does), DNS names and the like."""
    h = _short_hash(typ, name)
    module = typ.split(":")[1].split("/")[0]
    autoname = inputs.get("name") or (inputs["namePrefix"] + h if inputs.get("namePrefix") else f"{name}-{h[:7]}")
    state = {**inputs, "name": autoname}
    state["arn"] = f"arn:aws:{module}:{region}:{MOCK_ACCOUNT}:{name}/{h}"
    resource_id = f"{name}-{h}"
    if typ == "aws:lb/loadBalancer:LoadBalancer":
        state["arnSuffix"] = f"app/{autoname}/{h}{h}"
        state["arn"] = f"arn:aws:elasticloadbalancing:{region}:{MOCK_ACCOUNT}:loadbalancer/{state['arnSuffix']}"
        state["dnsName"] = f"{autoname}-{h}.{region}.elb.amazonaws.com"
        state["zoneId"] = "Z35SXDOTRQ7X7K"
    elif typ == "aws:lb/targetGroup:TargetGroup":
        state["arnSuffix"] = f"targetgroup/{autoname}/{h}{h}"
        state["arn"] = f"arn:aws:elasticloadbalancing:{region}:{MOCK_ACCOUNT}:{state['arnSuffix']}"
    elif typ == "aws:lb/listener:Listener":
        state["arn"] = f"arn:aws:elasticloadbalancing:{region}:{MOCK_ACCOUNT}:listener/app/{name}/{h}"
    elif typ == "aws:ecr/repository:Repository":
        state["repositoryUrl"] = f"{MOCK_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{autoname}"
        state["registryId"] = MOCK_ACCOUNT
        state["arn"] = f"arn:aws:ecr:{region}:{MOCK_ACCOUNT}:repository/{autoname}"
    elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
        state["latestVersion"] = 1
        state["defaultVersion"] = 1
        resource_id = f"lt-{h}{h[:9]}"
    elif typ == "aws:s3/bucket:Bucket":
        state["bucket"] = inputs.get("bucket") or f"{name}-{h[:7]}"
        state["arn"] = f"arn:aws:s3:::{state['bucket']}"
        resource_id = state["bucket"]
    elif typ == "aws:sns/topic:Topic":
        state["arn"] = f"arn:aws:sns:{region}:{MOCK_ACCOUNT}:{autoname}"
        resource_id = state["arn"]
    elif typ == "aws:cloudwatch/logGroup:LogGroup":
        state["arn"] = f"arn:aws:logs:{region}:{MOCK_ACCOUNT}:log-group:{autoname}"
    elif typ == "aws:kms/key:Key":
        state["keyId"] = resource_id = f"{h}-{h[:4]}-{h[4:]}-{h}"
        state["arn"] = f"arn:aws:kms:{region}:{MOCK_ACCOUNT}:key/{resource_id}"
    elif typ.startswith("aws:iam/"):
        state["arn"] = f"arn:aws:iam::{MOCK_ACCOUNT}:{typ.split(':')[-1].lower()}/{autoname}"
    elif typ == "aws:autoscaling/group:Group":
        resource_id = autoname
    return resource_id, state


def aws_call(token: str, args: dict, region: str) -> dict:
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        arn = f"arn:aws:iam::{MOCK_ACCOUNT}:user/render"
        return {"accountId": MOCK_ACCOUNT, "arn": arn, "userId": "AIDAMOCK", "id": MOCK_ACCOUNT}
    if token == "aws:index/getPartition:getPartition":
        return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws", "id": "aws"}
    if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
        names = [f"{region}{letter}" for letter in "abcdef"]
        return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)], "id": region, "state": "available"}
    if token == "aws:ec2/getAmi:getAmi":
        arch = next((f["values"][0] for f in args.get("filters", []) if f["name"] == "architecture"), "x86_64")
        return {"id": "ami-0123456789abcdef0", "imageId": "ami-0123456789abcdef0", "architecture": arch,
                "name": f"al2023-ami-2023.9.20250101.0-kernel-6.1-{arch}", "ownerId": "137112412989"}  # fmt: skip
    if token == "aws:ec2/getInstanceType:getInstanceType":
        instance_type = args["instanceType"]
        size = instance_type.split(".", 1)[1]
        if size not in MOCK_VCPUS:
            raise RenderError(
                f"no canned vCPU count for {instance_type}: add its size to MOCK_VCPUS in modelops/render.py"
            )
        return {"id": instance_type, "instanceType": instance_type, "defaultVcpus": MOCK_VCPUS[size]}
    if token == "aws:elb/getServiceAccount:getServiceAccount":
        return {"arn": f"arn:aws:iam::{MOCK_ELB_ACCOUNT}:root", "id": MOCK_ELB_ACCOUNT}
    raise RenderError(f"no mock for the lookup {token}: add one to aws_call in modelops/render.py")


MOCK_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: kind-{name}
  cluster: {{server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}
contexts:
- name: kind-{name}
  context: {{cluster: kind-{name}, user: kind-{name}}}
current-context: kind-{name}
users:
- name: kind-{name}
  user: {{token: mocked}}
"""


def command_stdout(name: str, inputs: dict) -> str:
    """What the stacks' pulumi_command scripts print, canned: under mocks they never run."""
    env = inputs.get("environment") or {}
    if name in ("image-build", "kind-image-build"):
        bento = env.get("BENTO") or "wine_classifier_service:mockedversion"
        version = bento.partition(":")[2]
        if "REPOSITORY_URL" in env:
            image = f"{env['REPOSITORY_URL']}@sha256:{hashlib.sha256(bento.encode()).hexdigest()}"
        else:
            image = bento
        return json.dumps({"bento": bento, "service": bento.partition(":")[0], "image": image or version})
    if name == "kind-cluster":
        return MOCK_KUBECONFIG.format(name=env.get("CLUSTER", "modelops"))
    raise RenderError(f"no canned stdout for the command {name!r}: add one to command_stdout in modelops/render.py")


def main(argv: list[str]) -> int:
    stack, stacks_dir, result_file = argv[0], Path(argv[1]), Path(argv[2])
    try:
        record = _record_child(stack, stacks_dir)
    except (ConfigError, UsageError) as exc:
        result_file.write_text(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))
        return 2
    except Exception as exc:
        import traceback

        traceback.print_exc()
        message = str(exc) or type(exc).__name__
        result_file.write_text(json.dumps({"error": {"type": type(exc).__name__, "message": message}}))
        return 1
    result_file.write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
