"""The aws target: a VPC, an internet-facing ALB with blue and green target groups, one Auto Scaling group per
colour running the bento image from ECR, and the alarms promotion watches. ``build(settings)`` makes it all."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks import images, outputs
from stacks.aws.access_logs import AccessLogBucket, AccessLogBucketArgs
from stacks.aws.alarms import Alarms, AlarmsArgs, WatchThresholds
from stacks.aws.fleet import (
    Fleet,
    FleetArgs,
    UserData,
    encode_user_data,
    max_healthy_percentage,
    render_user_data,
)
from stacks.aws.iam import InstanceIdentity, InstanceIdentityArgs
from stacks.aws.keys import Account, EncryptionKey, EncryptionKeyArgs
from stacks.aws.load_balancer import (
    APP_PORT,
    COLOURS,
    LoadBalancer,
    LoadBalancerArgs,
    deregistration_delay_s,
)
from stacks.aws.network import Network, NetworkArgs
from stacks.aws.registry import BentoImage, BentoImageArgs, Registry, RegistryArgs
from stacks.cache import cache_env
from stacks.capacity import NoPlan, asg_target_requests_per_minute, promoted_plan
from stacks.config import ConfigError, StackConfig
from stacks.names import live_colour_from
from stacks.threads import thread_env

AMI_OWNERS = ["amazon"]  # explicit owner: a name pattern alone would match anyone's public AMI
AMI_NAME = "al2023-ami-2023.*-kernel-*-{arch}"  # Amazon Linux 2023, standard (not minimal) images
# deploy.accelerator nvidia: AWS's Deep Learning Base AMI on Amazon Linux 2023 (NVIDIA driver, CUDA, NVIDIA container
# toolkit), and the instance families its release notes list as supported (x86_64 and arm64 images).
GPU_AMI_NAME = {
    "x86_64": "Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) *",
    "arm64": "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023) *",
}
NVIDIA_FAMILIES = frozenset(
    {"g4dn", "g5", "g5g", "g6", "g6e", "g6f", "gr6", "gr6f", "g7", "g7e", "p4d", "p4de", "p5", "p5e", "p5en"}
)


def check_accelerator(settings: StackConfig) -> None:
    """deploy.accelerator nvidia needs an NVIDIA GPU instance family: fail before anything is created."""
    family = settings.aws.instance_type.split(".", 1)[0]
    if settings.deploy.accelerator == "nvidia" and family not in NVIDIA_FAMILIES:
        raise ConfigError(
            f"modelops:deploy.accelerator is nvidia but modelops:aws.instance_type {settings.aws.instance_type!r} "
            f"has no NVIDIA GPU: use one of the families {', '.join(sorted(NVIDIA_FAMILIES))} (e.g. g5.xlarge) "
            f"in stacks/Pulumi.{settings.stack}.yaml, or set deploy.accelerator: none"
        )


def requests_per_target_per_minute(
    settings: StackConfig, vcpus: pulumi.Input[int], work_dir: Path | None = None
) -> pulumi.Output[float]:
    """ASG target tracking value: from the capacity plan of the promotion that made this stack's live version
    (per vCPU, times the instance type's vCPUs), else the stack setting (and a warning that says why)."""
    default = settings.aws.requests_per_target_per_minute
    plan = promoted_plan(settings.stack, settings.target, work_dir)
    if isinstance(plan, NoPlan):
        pulumi.log.warn(f"{plan.reason}: target tracking uses modelops:aws.requests_per_target_per_minute = {default}")
        return pulumi.Output.from_input(default)
    if plan.rps_per_vcpu_at_slo is None:
        pulumi.log.warn(
            f"the capacity plan in {plan.summary} has no rps_per_vcpu_at_slo (the gate could not measure it): "
            f"target tracking uses modelops:aws.requests_per_target_per_minute = {default}"
        )
        return pulumi.Output.from_input(default)
    rps = plan.rps_per_vcpu_at_slo

    def planned(count: int) -> float:
        value = asg_target_requests_per_minute(rps, count)
        pulumi.log.info(
            f"target tracking uses the capacity plan of the promotion of {plan.bento} ({plan.summary}): "
            f"{rps:g} req/s per vCPU x {count} vCPUs x 0.7 x 60 = {value:g} requests/target/minute"
        )
        return value

    return pulumi.Output.from_input(vcpus).apply(lambda v: planned(int(v)))


def ami_id(settings: StackConfig, via: pulumi.InvokeOutputOptions) -> pulumi.Input[str]:
    """The pinned AMI (modelops:aws.ami_id), else the newest Amazon Linux 2023 AMI, resolved once.

    An AMI, pinned or not, never rolls a running fleet: `pulumi up` makes a new launch template version (the
    default), and the groups keep the version they were pinned to (launchTemplate is the driver's); the driver
    builds the next candidate from the default version, so a new AMI goes live only through the gate. An unpinned
    lookup changes whenever Amazon publishes an AMI, so it only sets the templates at creation (Fleet ignores later
    changes) and the program prints the id to pin."""
    cfg = settings.aws
    if cfg.ami_id:
        return cfg.ami_id
    gpu = settings.deploy.accelerator == "nvidia"
    name = GPU_AMI_NAME[cfg.architecture] if gpu else AMI_NAME.format(arch=cfg.architecture)
    found = aws.ec2.get_ami_output(
        most_recent=True,
        owners=AMI_OWNERS,
        filters=[
            {"name": "name", "values": [name]},
            {"name": "architecture", "values": [cfg.architecture]},
            {"name": "virtualization-type", "values": ["hvm"]},
        ],
        opts=via,
    )

    def announce(image: str) -> str:
        pulumi.log.warn(
            f"modelops:aws.ami_id is not set: new launch templates use {image}, the newest "
            f"{'Deep Learning Base (NVIDIA) ' if gpu else ''}Amazon Linux 2023 AMI today, and existing ones keep "
            f"theirs. Pin it (modelops:aws.ami_id: {image} in stacks/Pulumi.{settings.stack}.yaml) and change it on "
            "purpose: a changed AMI reaches a pool with its next candidate, through the gate"
        )
        return image

    return found.id.apply(announce)


def build(settings: StackConfig) -> dict[str, Any]:
    """Every AWS resource of the stack; returns the stack outputs keyed by the names in stacks/outputs.py."""
    cfg = settings.aws
    check_accelerator(settings)
    # The region comes from modelops:aws.region only: one explicit provider, inherited by every component.
    provider = aws.Provider("aws", region=cfg.region, default_tags={"tags": {"project": "modelops"}})
    top = pulumi.ResourceOptions(providers={"aws": provider})
    via = pulumi.InvokeOutputOptions(provider=provider)
    identity = aws.get_caller_identity_output(opts=via)
    partition = aws.get_partition_output(opts=via).partition
    account = Account(account_id=identity.account_id, partition=partition, region=cfg.region)

    logs_key = EncryptionKey(
        "logs-key", EncryptionKeyArgs("modelops: CloudWatch Logs", account, for_cloudwatch_logs=True), opts=top
    )
    network = Network(
        "net",
        NetworkArgs(
            cfg.vpc_cidr,
            cfg.az_count,
            cfg.nat_per_az,
            cfg.log_retention_days,
            logs_key.arn,
            cfg.region,
            account_id=identity.account_id,
            partition=partition,
            interface_endpoints=cfg.interface_endpoints,
        ),
        opts=top,
    )
    registry_key = EncryptionKey("ecr-key", EncryptionKeyArgs("modelops: ECR images", account), opts=top)
    registry = Registry("bento", RegistryArgs(registry_key.arn, force_delete=not cfg.deletion_protection), opts=top)
    platform = "linux/arm64" if cfg.architecture == "arm64" else "linux/amd64"
    image = BentoImage("image", BentoImageArgs(settings.bento, registry.url, cfg.region, platform), opts=top)
    instances = InstanceIdentity(
        "instance",
        InstanceIdentityArgs(registry.arn, partition, logs_key.arn, cfg.log_retention_days),
        opts=top,
    )

    access_logs = None
    if cfg.access_logs:
        elb_account = aws.elb.get_service_account_output(region=cfg.region, opts=via).arn
        access_logs = AccessLogBucket(
            "lb-logs",
            AccessLogBucketArgs(
                identity.account_id, partition, elb_account, cfg.log_retention_days, not cfg.deletion_protection
            ),
            opts=top,
        )
    timeout = settings.limits.request_timeout_s
    drain_s = deregistration_delay_s(settings.slo.p99_ms, timeout)
    lb = LoadBalancer(
        "lb",
        LoadBalancerArgs(
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            live_colour=cfg.live_colour,
            deregistration_delay_s=drain_s,
            # The ALB must not close a connection while the server may still answer it.
            idle_timeout_s=images.balancer_idle_timeout_s(timeout),
            deletion_protection=cfg.deletion_protection,
            certificate_arn=cfg.certificate_arn,
            access_log_bucket=access_logs.name if access_logs else None,
            access_log_ready=access_logs.policy if access_logs else None,
            test_cidrs=tuple(cfg.test_cidrs),
            test_ports=cfg.test_ports.model_dump(),
        ),
        opts=top,
    )

    ami = ami_id(settings, via)
    # vCPUs of the instance type, from EC2 itself: the capacity plan is per vCPU, and each worker's thread pools
    # get its share of them.
    vcpus = aws.ec2.get_instance_type_output(instance_type=cfg.instance_type, opts=via).default_vcpus
    target_value = requests_per_target_per_minute(settings, vcpus)

    def user_data_of(v: list[Any], colour: str) -> str:
        """One colour's user data, from the resolved [image, service, log group, vCPUs]."""
        return encode_user_data(
            render_user_data(
                UserData(
                    region=cfg.region,
                    image=v[0],
                    service=v[1],
                    port=APP_PORT,
                    colour=colour,
                    log_group=v[2],
                    stop_timeout_s=drain_s,
                    bentoml_overrides=images.bentoml_overrides(v[1], settings.deploy.workers, timeout),
                    max_body_bytes=settings.limits.max_body_bytes,
                    threads=thread_env(int(v[3]) / settings.deploy.workers),
                    cache=cache_env(settings.cache),
                    keep_alive_s=images.server_keep_alive_s(timeout),
                    ready_timeout_s=max(30, cfg.health_check_grace_s),
                    gpus="all" if settings.deploy.accelerator == "nvidia" else "",
                )
            )
        )

    fleets = {}
    for colour in COLOURS:
        user_data = pulumi.Output.all(image.image, image.service, instances.log_group.name, vcpus).apply(
            partial(user_data_of, colour=colour)
        )
        fleets[colour] = Fleet(
            colour,
            FleetArgs(
                colour=colour,
                ami_id=ami,
                ami_pinned=bool(cfg.ami_id),
                instance_type=cfg.instance_type,
                root_volume_gb=cfg.root_volume_gb,
                instance_profile_arn=instances.profile.arn,
                instance_role_name=instances.role.name,
                security_group_id=lb.instance_security_group.id,
                subnet_ids=network.private_subnet_ids,
                target_group_arn=lb.target_groups[colour].arn,
                target_group_arn_suffix=lb.target_groups[colour].arn_suffix,
                load_balancer_arn_suffix=lb.alb.arn_suffix,
                listener=lb.listener,
                user_data=user_data,
                min_size=settings.deploy.min_replicas,
                max_size=settings.deploy.max_replicas,
                desired_capacity=settings.deploy.replicas,
                health_check_grace_s=cfg.health_check_grace_s,
                requests_per_target_per_minute=target_value,
                scaling_metric=settings.autoscale.metric,
                cpu_target=settings.autoscale.target,
            ),
            opts=top,
        )
    alerts_key = EncryptionKey(
        "alerts-key",
        EncryptionKeyArgs(
            "modelops: alarm notifications", account, for_services=("cloudwatch.amazonaws.com", "budgets.amazonaws.com")
        ),
        opts=top,
    )
    alarms = Alarms(
        "alarms",
        AlarmsArgs(
            load_balancer_arn_suffix=lb.alb.arn_suffix,
            target_group_arn_suffixes={c: tg.arn_suffix for c, tg in lb.target_groups.items()},
            max_error_ratio=settings.slo.max_error_ratio,
            p95_ms=settings.slo.p95_ms,
            account_id=identity.account_id,
            min_healthy_hosts=settings.deploy.min_replicas,
            live_colour=cfg.live_colour,
            topic_key_arn=alerts_key.arn,
            alarm_email=cfg.alarm_email,
            monthly_budget_usd=cfg.monthly_budget_usd,
            watch=WatchThresholds.of(settings),
        ),
        opts=top,
    )
    return {
        outputs.ENDPOINT_URL: lb.url,
        outputs.POOL_URLS: lb.pool_urls,
        # Reality, not the stack file: the colour the driver recorded on the listener (live_colour before that).
        outputs.LIVE_COLOUR: aws.lb.get_listener_output(arn=lb.listener.arn, opts=via).tags.apply(
            lambda tags: live_colour_from(tags, cfg.live_colour)
        ),
        outputs.SCALING_RANGE: {"min": settings.deploy.min_replicas, "max": settings.deploy.max_replicas},
        outputs.IMAGE: image.image,
        outputs.BENTO: image.bento,
        outputs.LOAD_BALANCER_ARN: lb.alb.arn,
        outputs.LISTENER_ARN: lb.listener.arn,
        outputs.TARGET_GROUP_ARNS: {c: tg.arn for c, tg in lb.target_groups.items()},
        outputs.ASG_NAMES: {c: f.asg.name for c, f in fleets.items()},
        outputs.ALARM_NAMES: alarms.names,
        outputs.ALARM_TOPIC_ARN: alarms.topic.arn,
        outputs.WATCH_ALARM_NAMES: alarms.watch_names,
        outputs.REPOSITORY_URL: registry.url,
        outputs.REFRESH_PREFERENCES: {
            "min_healthy_percentage": cfg.instance_refresh_min_healthy,
            "max_healthy_percentage": max_healthy_percentage(cfg.instance_refresh_min_healthy),
            "instance_warmup_s": cfg.health_check_grace_s,
        },
    }
