"""One colour's fleet: launch template, Auto Scaling group in the private subnets, request-count target tracking."""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from stacks.cache import cache_env
from stacks.config import CacheSettings

USER_DATA_TEMPLATE = Path(__file__).with_name("user_data.sh")
SETTINGS_MARKER = "#@settings@\n"
ROOT_DEVICE = "/dev/xvda"  # Amazon Linux 2023's root device name
# Fields of the Auto Scaling group that modelops owns after creation (see stacks/RUNNING.md, "who owns what").
# minSize/maxSize too: the driver lowers MinSize to 0 for a rejected or retired colour and pins the range for a gate;
# `pulumi up --refresh` writing the declared range back would boot the old bento again on an emptied colour. The
# declared range still reaches the groups, through the driver (scaling_range output, Target.release_scaling).
DRIVER_OWNED = ["desiredCapacity", "launchTemplate", "minSize", "maxSize"]
# The launch lifecycle hook that holds a new instance out of its target group until the bento answers /readyz
# (user_data.sh completes it): without it an instance joins at InService, minutes before the model is loaded, and
# every boot raises UnHealthyHostCount.
READY_HOOK = "modelops-ready"
# The SDK's enum of group metrics (a str subclass: the same strings reach AWS).
GROUP_METRICS = [
    aws.autoscaling.Metric.GROUP_DESIRED_CAPACITY,
    aws.autoscaling.Metric.GROUP_IN_SERVICE_INSTANCES,
    aws.autoscaling.Metric.GROUP_PENDING_INSTANCES,
    aws.autoscaling.Metric.GROUP_TOTAL_INSTANCES,
]


@dataclass(frozen=True)
class UserData:
    region: str
    image: str  # repository@sha256:digest
    service: str
    port: int
    colour: str
    log_group: str
    stop_timeout_s: int
    bentoml_overrides: str  # BENTOML_CONFIG_OVERRIDES: workers and request timeout of the service
    max_body_bytes: int  # the service answers 413 above it (bento/service.py reads MODELOPS_MAX_BODY_BYTES)
    threads: dict[str, str]  # OMP_NUM_THREADS & co. from the vCPUs per worker (stacks/threads.py)
    keep_alive_s: int  # the server's idle keep-alive, above the ALB's idle timeout (stacks/images.py)
    ready_timeout_s: int = 300  # how long the boot script waits for /readyz before abandoning the instance
    gpus: str = ""  # `docker run --gpus` value ("all" with deploy.accelerator nvidia); empty: no GPU
    # The prediction cache's settings (stacks/cache.py), each passed to the container by name; default: off.
    cache: dict[str, str] = field(default_factory=lambda: cache_env(CacheSettings()))


def render_user_data(values: UserData, template: Path = USER_DATA_TEMPLATE) -> str:
    """The boot script with the settings filled in (every value shell-quoted)."""
    text = template.read_text()
    if text.count(SETTINGS_MARKER) != 1:
        raise ValueError(f"{template} must contain the line {SETTINGS_MARKER.strip()!r} exactly once")
    assignments = {
        "REGION": values.region,
        "REGISTRY": values.image.split("/", 1)[0],
        "IMAGE": values.image,
        "PORT": str(values.port),
        "COLOUR": values.colour,
        "LOG_GROUP": values.log_group,
        "STOP_TIMEOUT": str(values.stop_timeout_s),
        "BENTOML_CONFIG_OVERRIDES": values.bentoml_overrides,
        "MAX_BODY_BYTES": str(values.max_body_bytes),
        **values.threads,
        **values.cache,
        "KEEP_ALIVE": str(values.keep_alive_s),
        "READY_HOOK": READY_HOOK,
        "READY_TIMEOUT": str(values.ready_timeout_s),
        "GPUS": values.gpus,
    }
    block = "".join(f"readonly {key}={shlex.quote(value)}\n" for key, value in assignments.items())
    return text.replace(SETTINGS_MARKER, block)


def encode_user_data(script: str) -> str:
    """Launch templates take user data base64-encoded (unlike aws_instance, which encodes it for you)."""
    return base64.b64encode(script.encode()).decode()


def lifecycle_policy(asg_arn: str) -> str:
    """What an instance may do with its group: report itself ready (or not) through the launch lifecycle hook."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CompleteOwnLaunchHook",
                    "Effect": "Allow",
                    "Action": "autoscaling:CompleteLifecycleAction",
                    "Resource": asg_arn,
                },
                {
                    "Sid": "FindOwnGroup",
                    "Effect": "Allow",
                    "Action": "autoscaling:DescribeAutoScalingInstances",
                    "Resource": "*",
                },
            ],
        }
    )


def max_healthy_percentage(min_healthy: int) -> int:
    """Instance refresh may run up to this % of capacity: launch before terminating, within AWS's 100-point span."""
    return min(200, max(100, min_healthy + 100))


@dataclass(frozen=True)
class FleetArgs:
    colour: str
    ami_id: pulumi.Input[str]
    ami_pinned: bool  # False: the AMI was looked up, so only creation uses it (see stacks/aws/__init__.ami_id)
    instance_type: str
    root_volume_gb: int
    instance_profile_arn: pulumi.Input[str]
    instance_role_name: pulumi.Input[str]  # gets leave to complete this group's launch lifecycle hook
    security_group_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    target_group_arn: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    listener: pulumi.Resource  # the target group must be behind a listener before ALBRequestCountPerTarget exists
    user_data: pulumi.Input[str]  # base64
    min_size: int
    max_size: int
    desired_capacity: int
    health_check_grace_s: int
    requests_per_target_per_minute: pulumi.Input[float]  # tracked with scaling_metric in_flight
    scaling_metric: str = "in_flight"  # modelops:autoscale.metric: in_flight (ALB requests per target) or cpu
    cpu_target: float = 70.0  # modelops:autoscale.target with scaling_metric cpu: the group's average CPU, %


def tracking(
    metric: str,
    cpu_target: float,
    requests_per_target_per_minute: pulumi.Input[float],
    resource_label: pulumi.Input[str],
) -> dict:
    """The target tracking configuration of modelops:autoscale (one definition with the local supervisor and the
    kind HPA). Target tracking has no stabilisation windows of its own: AWS scales out on 3 one-minute datapoints
    and in on 15."""
    if metric == "cpu":
        return {
            "predefined_metric_specification": {"predefined_metric_type": "ASGAverageCPUUtilization"},
            "target_value": cpu_target,
        }
    return {
        "predefined_metric_specification": {
            "predefined_metric_type": "ALBRequestCountPerTarget",
            "resource_label": resource_label,
        },
        "target_value": requests_per_target_per_minute,
    }


class Fleet(pulumi.ComponentResource):
    def __init__(self, name: str, args: FleetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:Fleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"Name": f"modelops-{args.colour}", "modelops:colour": args.colour}
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            image_id=args.ami_id,
            instance_type=args.instance_type,
            iam_instance_profile={"arn": args.instance_profile_arn},
            # Private subnets, no public address: the instances reach out through the NAT only.
            network_interfaces=[
                {
                    "associate_public_ip_address": "false",
                    "delete_on_termination": "true",
                    "security_groups": [args.security_group_id],
                }
            ],
            # IMDSv2 only (session tokens defeat SSRF credential theft). Hop limit 1: only the host reaches the
            # metadata service (the ECR login, the awslogs driver and the lifecycle completion run on the host); a
            # process inside the bento's container is one hop further and gets no token, so no instance role.
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "disabled",
            },
            block_device_mappings=[
                {
                    "device_name": ROOT_DEVICE,
                    "ebs": {
                        "volume_size": args.root_volume_gb,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            ebs_optimized="true",
            monitoring={"enabled": True},
            user_data=args.user_data,
            update_default_version=True,
            tag_specifications=[
                {"resource_type": "instance", "tags": tags},
                {"resource_type": "volume", "tags": tags},
            ],
            # A looked-up AMI changes when Amazon publishes one: it must not roll the fleets by itself.
            opts=child if args.ami_pinned else pulumi.ResourceOptions(parent=self, ignore_changes=["imageId"]),
        )
        self.asg = aws.autoscaling.Group(
            f"{name}-asg",
            vpc_zone_identifiers=args.subnet_ids,
            target_group_arns=[args.target_group_arn],
            min_size=args.min_size,
            max_size=args.max_size,
            desired_capacity=args.desired_capacity,
            # ELB health: an instance whose bento stops answering /readyz is replaced, not just one whose VM died.
            health_check_type="ELB",
            health_check_grace_period=args.health_check_grace_s,
            default_instance_warmup=args.health_check_grace_s,
            # Pin the version: instance refresh never fires on $Latest, so a new AMI or image would never roll out.
            launch_template={
                "id": self.launch_template.id,
                "version": self.launch_template.latest_version.apply(lambda v: str(int(v))),
            },
            # No instance_refresh block: Pulumi starts one only when it changes the group's launch template, which it
            # never does after creation (launchTemplate is the driver's). The driver's resize runs the refreshes,
            # with the stack's preferences (the refresh_preferences output).
            # The hook exists before the first instance launches (an initial hook, not a separate resource): each
            # instance waits in Pending:Wait until its boot script reports /readyz (CONTINUE) or gives up (ABANDON,
            # the group replaces it); the heartbeat bounds a boot script that died silently.
            initial_lifecycle_hooks=[
                {
                    "name": READY_HOOK,
                    "lifecycle_transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                    "heartbeat_timeout": max(30, args.health_check_grace_s),
                    "default_result": "ABANDON",
                }
            ],
            enabled_metrics=GROUP_METRICS,
            tags=[{"key": k, "value": v, "propagate_at_launch": True} for k, v in tags.items()],
            # Target tracking and modelops (scale, promotion) own the running capacity once the group exists, and
            # modelops owns which template version the group runs (the promoted bento's): a new version made here
            # (boot script, AMI) reaches a pool with its next candidate, through the gate, never by itself.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=DRIVER_OWNED),
        )
        # Complete this group's lifecycle hook, nothing else: a separate policy, since the group's ARN exists only
        # now (the instances retry until it does). DescribeAutoScalingInstances (which group am I in?) has no
        # resource-level permissions.
        aws.iam.RolePolicy(
            f"{name}-ready",
            role=args.instance_role_name,
            policy=self.asg.arn.apply(lifecycle_policy),
            opts=child,
        )
        self.scaling_policy = aws.autoscaling.Policy(
            f"{name}-requests",
            autoscaling_group_name=self.asg.name,
            policy_type="TargetTrackingScaling",
            target_tracking_configuration=tracking(
                args.scaling_metric,
                args.cpu_target,
                args.requests_per_target_per_minute,
                # app/<alb>/<id>/targetgroup/<tg>/<id>: the metric exists only for this pair.
                pulumi.Output.concat(args.load_balancer_arn_suffix, "/", args.target_group_arn_suffix),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.listener]),
        )
        self.register_outputs({"asg_name": self.asg.name, "launch_template_id": self.launch_template.id})
