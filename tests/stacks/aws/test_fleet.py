"""stacks/aws/fleet.py: per colour a launch template, an ASG in the private subnets, request-count tracking."""

from __future__ import annotations

import base64
import json
import shlex

import pytest

from stacks import outputs
from stacks.aws.fleet import (
    READY_HOOK,
    SETTINGS_MARKER,
    UserData,
    max_healthy_percentage,
    render_user_data,
    tracking,
)
from stacks.aws.load_balancer import APP_PORT, COLOURS
from stacks.cache import CACHE_VARIABLES, cache_env
from stacks.config import CacheSettings
from stacks.images import balancer_idle_timeout_s, server_keep_alive_s
from stacks.threads import THREAD_VARIABLES, thread_env
from tests.stacks.aws.types import ASG, INSTANCE_PROFILE, LB, LISTENER, LT, SCALING_POLICY, SG, SUBNET, TG
from tests.stacks.conftest import CACHE_ON, PINNED_AMI
from tests.stacks.plans import PLANNED_ASG_TARGET_C7I_LARGE

colours = pytest.mark.parametrize("colour", COLOURS)


def boot_script(rendering, colour: str) -> str:
    return base64.b64decode(rendering.inputs(LT, f"{colour}-lt")["userData"], validate=True).decode()


@colours
def test_launch_template_requires_imdsv2(aws_rendering, colour) -> None:
    metadata = aws_rendering.inputs(LT, f"{colour}-lt")["metadataOptions"]
    assert metadata["httpTokens"] == "required" and metadata["httpEndpoint"] == "enabled"
    # 1: only the host reaches IMDS (ECR login, awslogs, the lifecycle hook); the container is one hop further and
    # gets no token, so no instance role credentials.
    assert metadata["httpPutResponseHopLimit"] == 1


@colours
def test_launch_template_encrypts_the_root_volume(aws_rendering, aws_settings, colour) -> None:
    (device,) = aws_rendering.inputs(LT, f"{colour}-lt")["blockDeviceMappings"]
    assert device["deviceName"] == "/dev/xvda"
    assert device["ebs"] == {**device["ebs"], "encrypted": "true", "volumeType": "gp3"}
    assert device["ebs"]["volumeSize"] == aws_settings.aws.root_volume_gb


@colours
def test_launch_template_gives_no_public_ip_and_uses_the_instance_group(aws_rendering, colour) -> None:
    (nic,) = aws_rendering.inputs(LT, f"{colour}-lt")["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "false"
    assert nic["securityGroups"] == [aws_rendering.one(SG, "lb-instances")["id"]]


@colours
def test_launch_template_runs_as_the_instance_profile(aws_rendering, colour) -> None:
    profile = aws_rendering.one(INSTANCE_PROFILE, "instance-profile")["outputs"]["arn"]
    assert aws_rendering.inputs(LT, f"{colour}-lt")["iamInstanceProfile"] == {"arn": profile}


def test_ami_is_looked_up_with_explicit_owners(aws_rendering, aws_settings) -> None:
    (lookup,) = [i for i in aws_rendering.record["invokes"] if i["token"] == "aws:ec2/getAmi:getAmi"]
    assert lookup["args"]["owners"] == ["amazon"] and lookup["args"]["mostRecent"] is True
    filters = {f["name"]: f["values"] for f in lookup["args"]["filters"]}
    assert filters["architecture"] == [aws_settings.aws.architecture]
    assert filters["name"][0].startswith("al2023-ami-2023.")
    for colour in COLOURS:
        assert aws_rendering.inputs(LT, f"{colour}-lt")["imageId"] == "ami-0123456789abcdef0"  # the canned lookup


@colours
def test_a_looked_up_ami_only_sets_new_templates_and_the_program_prints_the_id_to_pin(aws_rendering, colour) -> None:
    template = aws_rendering.one(LT, f"{colour}-lt")
    # A newer AMI published by Amazon must not make `pulumi up` refresh the live fleet with the stack's bento.
    assert "imageId" in template["ignore_changes"]
    assert any("modelops:aws.ami_id: ami-0123456789abcdef0" in w for w in aws_rendering.warnings())


@colours
def test_a_pinned_ami_is_used_as_is_and_owned_by_the_stack(aws_planned, colour) -> None:
    template = aws_planned.one(LT, f"{colour}-lt")
    assert template["inputs"]["imageId"] == PINNED_AMI and "imageId" not in template["ignore_changes"]
    assert not [i for i in aws_planned.record["invokes"] if i["token"] == "aws:ec2/getAmi:getAmi"]


@colours
def test_user_data_is_base64_of_a_boot_script_that_pulls_and_runs_the_image(aws_rendering, aws_settings, colour):
    script = boot_script(aws_rendering, colour)
    image = aws_rendering.outputs["image"]
    assert script.startswith("#!/bin/bash\n") and SETTINGS_MARKER not in script
    assert f"readonly IMAGE={image}\n" in script and "@sha256:" in image
    for step in ("systemctl enable --now docker", "aws ecr get-login-password", 'docker pull "$IMAGE"', "docker run"):
        assert step in script, f"{colour} boot script lacks {step!r}"
    assert f'--publish "${{PORT}}:{APP_PORT}"' in script and f"readonly PORT={APP_PORT}\n" in script
    overrides = shlex.split(script.split("readonly BENTOML_CONFIG_OVERRIDES=", 1)[1].splitlines()[0])[0]
    service = json.loads(overrides)["services"]["wine_classifier_service"]
    assert service == {"workers": aws_settings.deploy.workers, "traffic": {"timeout": 10}}
    assert f"readonly MAX_BODY_BYTES={aws_settings.limits.max_body_bytes}\n" in script
    assert '--env "MODELOPS_MAX_BODY_BYTES=${MAX_BODY_BYTES}"' in script


@colours
def test_the_container_s_thread_pools_follow_the_instance_vcpus_per_worker(aws_rendering, aws_settings, colour):
    script = boot_script(aws_rendering, colour)
    # c7i.large has 2 vCPUs (canned lookup under mocks); the shipped stack runs deploy.workers workers on it.
    expected = thread_env(2 / aws_settings.deploy.workers)
    for name, value in expected.items():
        assert f"readonly {name}={value}\n" in script, f"{colour} boot script does not set {name}={value}"
        assert f'--env "{name}=${{{name}}}"' in script, f"{colour} container does not get {name}"
    assert set(expected) == set(THREAD_VARIABLES)


@colours
@pytest.mark.parametrize(
    ("rendering", "cache"), [("aws_rendering", CacheSettings()), ("aws_planned", CacheSettings(**CACHE_ON))]
)
def test_the_container_gets_the_stack_s_prediction_cache_settings(request, rendering, cache, colour) -> None:
    script = boot_script(request.getfixturevalue(rendering), colour)
    for name, value in cache_env(cache).items():
        assert f"readonly {name}={shlex.quote(value)}\n" in script, f"{rendering}: {colour} boot script lacks {name}"
        assert f'--env "{name}=${{{name}}}"' in script, f"{rendering}: {colour} container does not get {name}"
    assert set(cache_env(cache)) == set(CACHE_VARIABLES)


@colours
def test_the_server_keeps_idle_connections_longer_than_the_alb(aws_rendering, colour) -> None:
    script = boot_script(aws_rendering, colour)
    keep_alive = int(shlex.split(script.split("readonly KEEP_ALIVE=", 1)[1].splitlines()[0])[0])
    idle = aws_rendering.inputs(LB, "lb-alb")["idleTimeout"]
    # The ALB must close an idle connection first, or it reuses one the target just closed (502).
    assert keep_alive > idle
    assert '  "$IMAGE" --timeout-keep-alive "$KEEP_ALIVE"\n' in script


@pytest.mark.parametrize("request_timeout_s", [0.5, 10, 59, 60, 120, 600])
def test_keep_alive_outlasts_the_idle_timeout_for_any_request_timeout(request_timeout_s) -> None:
    idle = balancer_idle_timeout_s(request_timeout_s)
    assert idle >= 60 and idle > request_timeout_s
    assert server_keep_alive_s(request_timeout_s) > idle


@colours
def test_ecr_login_and_image_pull_are_retried_with_backoff(aws_rendering, colour) -> None:
    script = boot_script(aws_rendering, colour)
    assert 'retry "ECR login" ecr_login' in script and 'retry "docker pull ${IMAGE}" docker pull "$IMAGE"' in script
    # Nothing outside the retry talks to ECR: under `set -e` a single failure would end the boot.
    outside = script.replace('aws ecr get-login-password --region "$REGION" | docker login', "", 1)
    assert "get-login-password" not in outside and "\ndocker pull" not in script


@colours
def test_asg_pins_launch_template_version(aws_rendering, colour) -> None:
    template = aws_rendering.one(LT, f"{colour}-lt")
    pinned = aws_rendering.inputs(ASG, f"{colour}-asg")["launchTemplate"]
    assert pinned["id"] == template["id"]
    assert pinned["version"] == str(template["outputs"]["latestVersion"]) != "$Latest"


@colours
def test_asg_replaces_instances_that_fail_the_load_balancer_health_check(aws_rendering, aws_settings, colour):
    asg = aws_rendering.inputs(ASG, f"{colour}-asg")
    assert asg["healthCheckType"] == "ELB"
    assert asg["healthCheckGracePeriod"] == aws_settings.aws.health_check_grace_s > 0


@colours
def test_asg_declares_no_instance_refresh_of_its_own(aws_rendering, colour) -> None:
    """Pulumi would start one only when it changes the group's launch template, which it never does (the driver's
    field): the driver's resize runs refreshes, with the preferences the stack exports."""
    assert "instanceRefresh" not in aws_rendering.inputs(ASG, f"{colour}-asg")


def test_the_refresh_preferences_are_exported_for_the_driver(aws_rendering, aws_settings) -> None:
    minimum = aws_settings.aws.instance_refresh_min_healthy
    assert aws_rendering.outputs[outputs.REFRESH_PREFERENCES] == {
        "min_healthy_percentage": minimum,
        "max_healthy_percentage": max_healthy_percentage(minimum),
        "instance_warmup_s": aws_settings.aws.health_check_grace_s,
    }


@colours
def test_new_instances_wait_for_readyz_in_a_launch_lifecycle_hook(aws_rendering, aws_settings, colour) -> None:
    (hook,) = aws_rendering.inputs(ASG, f"{colour}-asg")["initialLifecycleHooks"]
    assert hook == {
        "name": READY_HOOK,
        "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "heartbeatTimeout": aws_settings.aws.health_check_grace_s,
        "defaultResult": "ABANDON",
    }
    script = boot_script(aws_rendering, colour)
    assert f"readonly READY_HOOK={READY_HOOK}\n" in script
    assert f"readonly READY_TIMEOUT={aws_settings.aws.health_check_grace_s}\n" in script


@colours
def test_asg_runs_in_the_private_subnets(aws_rendering, colour) -> None:
    private = {s["id"] for s in aws_rendering.of_type(SUBNET) if s["inputs"]["tags"]["tier"] == "private"}
    assert set(aws_rendering.inputs(ASG, f"{colour}-asg")["vpcZoneIdentifiers"]) == private


@colours
def test_asg_sizes_come_from_the_settings(aws_rendering, aws_settings, colour) -> None:
    asg = aws_rendering.inputs(ASG, f"{colour}-asg")
    deploy = aws_settings.deploy
    assert (asg["minSize"], asg["maxSize"]) == (deploy.min_replicas, deploy.max_replicas)
    assert asg["desiredCapacity"] == deploy.replicas


@colours
def test_asg_registers_with_its_own_colour_target_group(aws_rendering, colour) -> None:
    tg = aws_rendering.one(TG, f"lb-{colour}")["outputs"]["arn"]
    assert aws_rendering.inputs(ASG, f"{colour}-asg")["targetGroupArns"] == [tg]


@colours
def test_a_later_pulumi_up_leaves_capacity_and_the_running_version_to_autoscaling_and_promotion(
    aws_rendering, colour
) -> None:
    # Without launchTemplate here, a new boot script or AMI version would refresh the live group with the stack's
    # bento, bypassing the gate; without minSize/maxSize, a refresh would boot an emptied colour again.
    ignored = aws_rendering.one(ASG, f"{colour}-asg")["ignore_changes"]
    assert ignored == ["desiredCapacity", "launchTemplate", "minSize", "maxSize"]
    # The template itself stays the stack's: its default version is the shape the driver builds candidates from.
    assert aws_rendering.inputs(LT, f"{colour}-lt")["updateDefaultVersion"] is True


@colours
def test_target_tracking_resource_label_joins_alb_and_tg_suffixes(aws_rendering, colour) -> None:
    policy = aws_rendering.inputs(SCALING_POLICY, f"{colour}-requests")
    metric = policy["targetTrackingConfiguration"]["predefinedMetricSpecification"]
    alb = aws_rendering.one(LB, "lb-alb")["outputs"]["arnSuffix"]
    tg = aws_rendering.one(TG, f"lb-{colour}")["outputs"]["arnSuffix"]
    assert policy["policyType"] == "TargetTrackingScaling"
    assert metric["predefinedMetricType"] == "ALBRequestCountPerTarget"
    assert metric["resourceLabel"] == f"{alb}/{tg}"
    assert alb.startswith("app/") and tg.startswith("targetgroup/")


@colours
def test_target_tracking_depends_on_the_listener(aws_rendering, colour) -> None:
    listener = aws_rendering.one(LISTENER, "lb-live")["urn"]
    assert listener in aws_rendering.one(SCALING_POLICY, f"{colour}-requests")["dependencies"]


@colours
def test_target_tracking_value_comes_from_the_plan_of_the_promoted_version_per_vcpu(aws_planned, colour) -> None:
    tracking = aws_planned.inputs(SCALING_POLICY, f"{colour}-requests")["targetTrackingConfiguration"]
    # c7i.large: 2 vCPUs (from ec2:DescribeInstanceTypes; canned under mocks) x 50 req/s per vCPU x 0.7 x 60.
    assert tracking["targetValue"] == PLANNED_ASG_TARGET_C7I_LARGE


def test_the_instance_vcpus_are_looked_up_for_the_configured_instance_type(aws_planned, aws_settings) -> None:
    lookups = [i for i in aws_planned.record["invokes"] if i["token"] == "aws:ec2/getInstanceType:getInstanceType"]
    assert lookups and {i["args"]["instanceType"] for i in lookups} == {aws_settings.aws.instance_type}


@colours
def test_without_a_promotion_target_tracking_keeps_the_setting_and_says_why(aws_rendering, aws_settings, colour):
    tracking = aws_rendering.inputs(SCALING_POLICY, f"{colour}-requests")["targetTrackingConfiguration"]
    assert tracking["targetValue"] == aws_settings.aws.requests_per_target_per_minute
    assert any("no promotion history" in w and "requests_per_target_per_minute" in w for w in aws_rendering.warnings())


@colours
def test_a_rejected_summary_never_sizes_the_fleet(aws_rejected, aws_settings, colour) -> None:
    tracking = aws_rejected.inputs(SCALING_POLICY, f"{colour}-requests")["targetTrackingConfiguration"]
    assert tracking["targetValue"] == aws_settings.aws.requests_per_target_per_minute
    assert any("verdict is 'reject'" in w for w in aws_rejected.warnings()), aws_rejected.warnings()


def test_cpu_autoscaling_tracks_the_group_s_average_cpu_at_the_autoscale_target() -> None:
    assert tracking("cpu", 55.0, 600.0, "app/a/1/targetgroup/t/2") == {
        "predefined_metric_specification": {"predefined_metric_type": "ASGAverageCPUUtilization"},
        "target_value": 55.0,
    }


def test_in_flight_autoscaling_tracks_alb_requests_per_target() -> None:
    config = tracking("in_flight", 55.0, 600.0, "app/a/1/targetgroup/t/2")
    assert config["predefined_metric_specification"]["predefined_metric_type"] == "ALBRequestCountPerTarget"
    assert config["target_value"] == 600.0


def values(**changes: str) -> UserData:
    base = {
        "region": "eu-west-1",
        "image": "1.dkr.ecr.eu-west-1.amazonaws.com/r@sha256:ab",
        "service": "svc",
        "port": APP_PORT,
        "colour": "green",
        "log_group": "g",
        "stop_timeout_s": 15,
        "bentoml_overrides": '{"services":{}}',
        "max_body_bytes": 1024,
        "threads": thread_env(1),
        "keep_alive_s": 65,
    }
    return UserData(**{**base, **changes})


def test_user_data_values_are_shell_quoted() -> None:
    script = render_user_data(values(log_group="x'; reboot; echo '"))
    line = next(line for line in script.splitlines() if line.startswith("readonly LOG_GROUP="))
    assert shlex.split(line.removeprefix("readonly LOG_GROUP=")) == ["x'; reboot; echo '"]
    assert "readonly REGISTRY=1.dkr.ecr.eu-west-1.amazonaws.com\n" in script


def test_a_template_without_the_settings_marker_is_refused(tmp_path) -> None:
    template = tmp_path / "user_data.sh"
    template.write_text("#!/bin/bash\necho no marker\n")
    with pytest.raises(ValueError, match="exactly once"):
        render_user_data(values(), template)


@pytest.mark.parametrize(("minimum", "maximum"), [(100, 200), (90, 190), (0, 100)])
def test_instance_refresh_may_launch_before_terminating(minimum, maximum) -> None:
    assert max_healthy_percentage(minimum) == maximum
