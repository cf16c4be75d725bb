"""The child side: run the stack program under recording Pulumi mocks (python -m modelops.render STACK STACKS_DIR
RESULT_FILE). Under mocks nothing runs: AWS lookups (AZs, AMI, instance vCPUs, account) and pulumi_command's
``stdout`` are canned values below."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, cast

import yaml

from modelops.errors import UsageError
from modelops.render.common import PROGRAM, RenderError, normalise
from stacks.config import PROJECT, ConfigError, load_stack_config, stack_file

MOCK_ACCOUNT = "123456789012"
MOCK_ELB_ACCOUNT = "127311923021"  # the us-east-1 ELB log delivery account; only a canned lookup result here
# Default vCPUs of the current x86/Graviton general-purpose and compute sizes (EC2 documentation): what
# ec2:DescribeInstanceTypes answers for c7i/m7i/c7g/... Under mocks this canned table stands in for that lookup.
MOCK_VCPUS = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48, "16xlarge": 64}


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
    from pulumi.runtime.stack import Stack, run_pulumi_func
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
            raise RenderError(
                f"no mock for resource type {args.typ} ({args.name}): add one in modelops/render/mocks.py"
            )

        def __init__(self) -> None:
            self.invokes: list[dict] = []

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
            arguments = normalise(unwrap(args.args))
            self.invokes.append({"token": args.token, "args": arguments, "provider": args.provider})
            return aws_call(args.token, arguments, region), []  # no check failures

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
                        "inputs": normalise(unwrap(rpc.deserialize_properties(request.object))),
                        "outputs": normalise(unwrap(registration.state)),
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

    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    _sync_await(run_pulumi_func(program))
    # The program ran as a Pulumi stack, so the root resource is its Stack (Optional only before one exists).
    exported = cast(Stack, settings.get_root_resource()).outputs
    outputs = _sync_await(pulumi.Output.from_input(exported).future())
    return {
        "stack": stack,
        "target": config_settings.target,
        "region": region,
        "resources": sorted(monitor.records, key=lambda r: r["urn"]),
        "outputs": normalise(unwrap(outputs)),
        "invokes": sorted(recording.invokes, key=lambda i: json.dumps(i, sort_keys=True)),
        "logs": collect.messages,
        "mocked": {
            "invokes": "AZs, caller identity, partition, AMI, instance vCPUs, ELB account: canned (mocks.aws_call)",
            "commands": "pulumi_command never runs: stdout is canned (mocks.command_stdout)",
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
        pattern = next((f["values"][0] for f in args.get("filters", []) if f["name"] == "name"), "")
        name = (pattern.replace("*", "20261201") if pattern.startswith("Deep Learning")
                else f"al2023-ami-2023.9.20250101.0-kernel-6.1-{arch}")  # fmt: skip
        image = "ami-0fedc0ffee0123456" if pattern.startswith("Deep Learning") else "ami-0123456789abcdef0"
        return {"id": image, "imageId": image, "architecture": arch, "name": name, "ownerId": "137112412989"}
    if token == "aws:ec2/getInstanceType:getInstanceType":
        instance_type = args["instanceType"]
        size = instance_type.split(".", 1)[1]
        if size not in MOCK_VCPUS:
            raise RenderError(
                f"no canned vCPU count for {instance_type}: add its size to MOCK_VCPUS in modelops/render/mocks.py"
            )
        return {"id": instance_type, "instanceType": instance_type, "defaultVcpus": MOCK_VCPUS[size]}
    if token == "aws:lb/getListener:getListener":
        # A listener as the program just made it: no tags yet (the driver adds its live/previous colour tags).
        return {"arn": args.get("arn", ""), "id": args.get("arn", ""), "tags": {}, "port": 80, "protocol": "HTTP"}
    if token == "aws:elb/getServiceAccount:getServiceAccount":
        return {"arn": f"arn:aws:iam::{MOCK_ELB_ACCOUNT}:root", "id": MOCK_ELB_ACCOUNT}
    raise RenderError(f"no mock for the lookup {token}: add one to aws_call in modelops/render/mocks.py")


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
    raise RenderError(
        f"no canned stdout for the command {name!r}: add one to command_stdout in modelops/render/mocks.py"
    )


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
