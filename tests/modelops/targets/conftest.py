"""Fixtures for the target drivers: a real moto server (AWS API) and a recording fake of the Kubernetes API.

Both listen on 127.0.0.1 only, on a port chosen at run time, and are stopped in teardown.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config

from modelops.targets.aws import AwsTarget
from modelops.waiting import wait_until
from stacks import outputs as keys
from stacks.aws.fleet import UserData, encode_user_data, render_user_data
from stacks.images import bentoml_overrides
from stacks.threads import thread_env

REGION = "us-east-1"
STACK_BENTO = "wine_classifier_service:v1"
SERVICE = "wine_classifier_service"  # the bento's entry service, as stacks/images.py resolves it
REPOSITORY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops"
BENTO_PORT_ON_HOST = 3000
PUSHED_VERSIONS = ("v2", "v3")  # bento versions whose images are in the ECR repository
DECLARED = {"min": 2, "max": 4}  # each colour's ASG range as the stack declares it (scaling_range output)

# `moto_server` (moto.server.main), with one fix of moto 5.2.5: CreateLaunchTemplateVersion stores UserData as a
# plain string where CreateLaunchTemplate wraps it (parse_user_data), and any instance launched from such a version
# then fails an assertion (HTTP 500). The fix applies moto's own parse_user_data to new versions too; remove it
# once moto does. Nothing else in moto is changed.
MOTO_SERVER = """
import sys
from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.utils import parse_user_data
from moto.server import main

_create_version = LaunchTemplate.create_version


def create_version(self, data, description):
    if isinstance(data.get("UserData"), str):
        data = {**data, "UserData": parse_user_data(data["UserData"])}
    return _create_version(self, data, description)


LaunchTemplate.create_version = create_version
main(sys.argv[1:])
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, timeout_s: float) -> bool:
    def serving_or_dead() -> bool:
        if process.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    return wait_until(serving_or_dead, timeout=timeout_s, interval=0.05) and process.poll() is None


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `moto_server` on 127.0.0.1, with dummy credentials and no way out to AWS.

    Its log (one line per request, tracebacks of what moto does not implement) goes to a file, not a pipe that
    nobody reads and that would block the server once full."""
    if importlib.util.find_spec("moto") is None:
        pytest.fail("moto is not installed: run `make setup` (moto[server] is a dev dependency)")
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with pytest.MonkeyPatch.context() as env, log_path.open("wb") as log:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        process = None
        for _attempt in range(3):  # another process may take the free port between choosing and binding it
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            process = subprocess.Popen(
                [sys.executable, "-c", MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            if _wait_until_serving(f"{url}/moto-api/", process, timeout_s=30):
                break
            process.terminate()
            process.wait(timeout=10)
            process = None
        if process is None:
            pytest.fail(f"moto_server did not start on 127.0.0.1: {log_path.read_text(errors='replace')[-800:]}")
        # Every client in this process goes to moto, even one made without endpoint_url.
        env.setenv("AWS_ENDPOINT_URL", url)
        try:
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="session")
def _boto_session(moto_url: str) -> boto3.Session:
    # One session for the run: it caches the API models, which makes every later client cheap to build.
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture(scope="session")
def _clients(_boto_session: boto3.Session, moto_url: str) -> Iterator[dict[str, Any]]:
    names = ("ec2", "elbv2", "autoscaling", "cloudwatch", "ecr")
    clients = {name: _boto_session.client(name, endpoint_url=moto_url) for name in names}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def aws_session(_boto_session: boto3.Session, moto_url: str) -> boto3.Session:
    """The boto3 session, on an emptied moto: each test starts from no resources at all."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return _boto_session


@dataclass
class AwsStack:
    """What `pulumi up -s aws` makes, created in moto, and clients to read it back."""

    outputs: dict[str, Any]
    ec2: Any
    elbv2: Any
    autoscaling: Any
    cloudwatch: Any
    launch_templates: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # bento version -> image digest in ECR

    def listener_weights(self) -> dict[str, int]:
        listener = self.elbv2.describe_listeners(ListenerArns=[self.outputs[keys.LISTENER_ARN]])["Listeners"][0]
        by_arn = {arn: colour for colour, arn in self.outputs[keys.TARGET_GROUP_ARNS].items()}
        groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        return {by_arn[g["TargetGroupArn"]]: g["Weight"] for g in groups}

    def listener_tags(self) -> dict[str, str]:
        described = self.elbv2.describe_tags(ResourceArns=[self.outputs[keys.LISTENER_ARN]])["TagDescriptions"]
        return {t["Key"]: t["Value"] for d in described for t in d["Tags"]}

    def asg(self, colour: str) -> dict[str, Any]:
        name = self.outputs[keys.ASG_NAMES][colour]
        return self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]

    def in_service(self, colour: str) -> list[str]:
        return sorted(i["InstanceId"] for i in self.asg(colour)["Instances"] if i["LifecycleState"] == "InService")

    def target_states(self, colour: str) -> dict[str, str]:
        arn = self.outputs[keys.TARGET_GROUP_ARNS][colour]
        described = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described}

    def launch_template_version(self, colour: str, version: str) -> dict[str, Any]:
        return self.ec2.describe_launch_template_versions(
            LaunchTemplateId=self.launch_templates[colour], Versions=[version]
        )["LaunchTemplateVersions"][0]

    def user_data(self, colour: str, version: str) -> str:
        data = self.launch_template_version(colour, version)["LaunchTemplateData"]
        return base64.b64decode(data["UserData"]).decode()

    def add_test_listeners(self, ports: dict[str, int]) -> dict[str, str]:
        """What the stack adds when modelops:aws.test_cidrs is set: per colour, a listener on its own port that
        forwards to that colour's target group only. Returns the ``pool_urls`` output naming them."""
        alb = self.outputs[keys.LOAD_BALANCER_ARN]
        dns = self.elbv2.describe_load_balancers(LoadBalancerArns=[alb])["LoadBalancers"][0]["DNSName"]
        for colour, port in ports.items():
            self.elbv2.create_listener(
                LoadBalancerArn=alb,
                Protocol="HTTP",
                Port=port,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": self.outputs[keys.TARGET_GROUP_ARNS][colour]}],
            )
        return {colour: f"http://{dns}:{port}" for colour, port in ports.items()}


@pytest.fixture
def aws_stack(aws_session: boto3.Session, _clients: dict[str, Any]) -> AwsStack:
    """VPC with two subnets in two AZs, an ALB whose listener forwards blue 100 / green 0, a launch template (with
    the stack's own boot script) and an ASG per colour attached to its target group (blue: 2 instances, green:
    none), the stack's alarms, and an ECR repository holding the images of two more bento versions."""
    ec2, elbv2, autoscaling, cloudwatch, ecr = (
        _clients[n] for n in ("ec2", "elbv2", "autoscaling", "cloudwatch", "ecr")
    )
    ecr.create_repository(repositoryName="modelops", imageScanningConfiguration={"scanOnPush": True})
    digests = {}
    for version in PUSHED_VERSIONS:
        manifest = json.dumps({"schemaVersion": 2, "config": {"digest": f"sha256:{version}"}, "layers": []})
        pushed = ecr.put_image(
            repositoryName="modelops",
            imageManifest=manifest,
            imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
            imageTag=version,
        )
        digests[version] = pushed["image"]["imageId"]["imageDigest"]
        # AWS scans on push (the stack's repository says scanOnPush); moto scans only when asked, once a day per
        # image (its quota survives a reset: the same manifest is the same image).
        with contextlib.suppress(ecr.exceptions.LimitExceededException):
            ecr.start_image_scan(repositoryName="modelops", imageId={"imageDigest": digests[version]})
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate("ab")
    ]
    alb = elbv2.create_load_balancer(Name="modelops-alb", Subnets=subnets, Type="application")["LoadBalancers"][0]
    target_groups = {
        colour: elbv2.create_target_group(
            Name=f"modelops-{colour}",
            Protocol="HTTP",
            Port=BENTO_PORT_ON_HOST,
            VpcId=vpc,
            TargetType="instance",
            HealthCheckPath="/readyz",
        )["TargetGroups"][0]["TargetGroupArn"]
        for colour in ("blue", "green")
    }
    listener = elbv2.create_listener(
        LoadBalancerArn=alb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": target_groups["blue"], "Weight": 100},
                        {"TargetGroupArn": target_groups["green"], "Weight": 0},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": False},
                },
            }
        ],
    )["Listeners"][0]
    stack_image = f"{REPOSITORY}@sha256:{'1' * 64}"
    launch_templates: dict[str, str] = {}
    asg_names: dict[str, str] = {}
    for colour, (minimum, desired) in {"blue": (2, 2), "green": (0, 0)}.items():
        # As stacks/aws/fleet.py makes it: its boot script, its tags, IMDSv2 with hop limit 2.
        boot_script = render_user_data(
            UserData(
                region=REGION,
                image=stack_image,
                service=SERVICE,
                port=BENTO_PORT_ON_HOST,
                colour=colour,
                log_group="/modelops/instances",
                stop_timeout_s=30,
                bentoml_overrides=bentoml_overrides(SERVICE, 1, 10.0),
                max_body_bytes=1_048_576,
                threads=thread_env(2 / 1),  # c7i.large, 1 worker
                keep_alive_s=65,
            )
        )
        launch_templates[colour] = ec2.create_launch_template(
            LaunchTemplateName=f"modelops-{colour}",
            LaunchTemplateData={
                "ImageId": "ami-12c6146b",
                "InstanceType": "c7i.large",
                "UserData": encode_user_data(boot_script),
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": [{"Key": "modelops:colour", "Value": colour}]}
                ],
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
            },
        )["LaunchTemplate"]["LaunchTemplateId"]
        asg_names[colour] = f"modelops-{colour}"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=asg_names[colour],
            LaunchTemplate={"LaunchTemplateId": launch_templates[colour], "Version": "1"},
            MinSize=minimum,
            MaxSize=DECLARED["max"],
            DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(subnets),
            TargetGroupARNs=[target_groups[colour]],
            HealthCheckType="ELB",
        )
    # As stacks/aws/alarms.py exports them: per colour, and the load balancer's own.
    alarm_names: dict[str, dict[str, str]] = {"load_balancer": {"elb_5xx": "modelops-elb-5xx"}}
    for colour in ("blue", "green"):
        alarm_names[colour] = {
            "target_5xx": f"modelops-{colour}-5xx",
            "p95_latency": f"modelops-{colour}-p95",
            "unhealthy_hosts": f"modelops-{colour}-unhealthy",
            "healthy_hosts": f"modelops-{colour}-healthy",
        }
    metrics = {"elb_5xx": "HTTPCode_ELB_5XX_Count", "target_5xx": "HTTPCode_Target_5XX_Count",
               "p95_latency": "TargetResponseTime", "unhealthy_hosts": "UnHealthyHostCount",
               "healthy_hosts": "HealthyHostCount"}  # fmt: skip
    for colour, group in alarm_names.items():
        for key, name in group.items():
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/ApplicationELB",
                MetricName=metrics[key],
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanThreshold",
                # As stacks/aws/alarms.py: the healthy-hosts alarm acts for the live colour (blue) only.
                ActionsEnabled=not (key == "healthy_hosts" and colour != "blue"),
            )
    outputs = {
        keys.ENDPOINT_URL: f"http://{alb['DNSName']}",
        keys.IMAGE: stack_image,
        keys.LIVE_COLOUR: "blue",
        keys.BENTO: STACK_BENTO,
        keys.LOAD_BALANCER_ARN: alb["LoadBalancerArn"],
        keys.LISTENER_ARN: listener["ListenerArn"],
        keys.TARGET_GROUP_ARNS: target_groups,
        keys.ASG_NAMES: asg_names,
        keys.ALARM_NAMES: alarm_names,
        keys.REPOSITORY_URL: REPOSITORY,
        keys.SCALING_RANGE: DECLARED,
    }
    return AwsStack(outputs, ec2, elbv2, autoscaling, cloudwatch, launch_templates, digests)


@pytest.fixture
def aws_target(aws_stack: AwsStack, aws_session: boto3.Session, moto_url: str) -> AwsTarget:
    return AwsTarget(
        aws_stack.outputs,
        aws_session,
        endpoint_url=moto_url,
        # moto answers what it does not implement with a 500: fail at once instead of retrying it.
        client_config=Config(retries={"total_max_attempts": 1}),
        timeout_s=5.0,
        poll_s=0.05,
        # An idle candidate's firing alarms get this long to clear before they are reported (SETTLE_S on AWS).
        alarm_settle_s=0.2,
        scan_wait_s=0.2,
    )


# ---------------------------------------------------------------------------------------------------- Kubernetes


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    content_type: str | None
    body: Any  # parsed JSON, or None


class FakeKubeApi:
    """Answers Kubernetes API requests with canned JSON and records each request.

    ``routes[(method, path)]`` is a list of JSON documents served in turn (the last one repeats), so a test can
    script a rollout that becomes ready on the third poll. A route's path may carry a query string (decoded, e.g.
    ``?labelSelector=a=b``); a request matches it first, then its path alone. Unknown routes get a 404 Status.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Any] = {}
        self.requests: list[Recorded] = []
        self._served: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def route(self, method: str, path: str, *documents: Any) -> None:
        self.routes[(method, path)] = list(documents)

    def answer(self, method: str, path: str, content_type: str | None, raw: bytes) -> tuple[int, Any]:
        with self._lock:
            body = json.loads(raw) if raw else None
            self.requests.append(Recorded(method, path, content_type, body))
            full = (method, urllib.parse.unquote(path))
            route = full if full in self.routes else (method, full[1].split("?", 1)[0])
            if route not in self.routes:
                return 404, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "message": f"{route[1]} not found",
                    "code": 404,
                }
            documents = self.routes[route]
            served = self._served.get(route, 0)
            self._served[route] = served + 1
            return 200, documents[min(served, len(documents) - 1)]

    def sent(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]


@pytest.fixture
def kube_api() -> Iterator[tuple[FakeKubeApi, str]]:
    api = FakeKubeApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, document = api.answer(
                self.command, self.path, self.headers.get("Content-Type"), self.rfile.read(length)
            )
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve  # noqa: N815 - http.server dispatches on these names

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits up to one interval for the serving loop to notice.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-kube-api", daemon=True
    )
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
