"""The AWS driver against a real moto server: each test changes something through the driver, then reads the
resources back over the AWS API (listener weights, ASG capacity, launch template versions, target health).

Instance refresh is the one call moto 5.2 does not implement (it answers 500): resize is checked against moto up
to the refresh, and the refresh loop itself with botocore's Stubber, which validates requests against the API model.
"""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from botocore.stub import Stubber

from modelops.errors import DeploymentError, NotDeployedError, UsageError
from modelops.promotion import HistoryFile, switch
from modelops.targets.aws import (
    BENTO_TAG,
    HELD_PROCESSES,
    LIVE_TAG,
    PREVIOUS_TAG,
    AwsTarget,
    boot_settings,
    start_and_wait_instance_refresh,
)
from modelops.targets.base import Target
from stacks import outputs as keys
from stacks.threads import THREAD_VARIABLES, thread_env

from .conftest import BENTO_PORT_ON_HOST, DECLARED, REPOSITORY, SERVICE, STACK_BENTO, AwsStack

NEW_BENTO = "wine_classifier_service:v2"


def boot(stack: AwsStack, colour: str, version: str) -> dict[str, str]:
    """The settings of the boot script in a launch template version."""
    return boot_settings(stack.user_data(colour, version))


def workers_and_timeout(settings: dict[str, str]) -> tuple[int, float]:
    service = json.loads(settings["BENTOML_CONFIG_OVERRIDES"])["services"][SERVICE]
    return service["workers"], service["traffic"]["timeout"]


def instance_tags(stack: AwsStack, colour: str, version: str) -> dict[str, str]:
    data = stack.launch_template_version(colour, version)["LaunchTemplateData"]
    return {
        t["Key"]: t["Value"] for s in data["TagSpecifications"] if s["ResourceType"] == "instance" for t in s["Tags"]
    }


@pytest.fixture
def with_candidate(aws_target: AwsTarget) -> AwsTarget:
    aws_target.deploy_candidate(NEW_BENTO, replicas=2, workers=2)
    return aws_target


def test_driver_implements_the_target_interface(aws_target: AwsTarget) -> None:
    assert isinstance(aws_target, Target)


def test_status_reads_blue_live_and_its_healthy_instances(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    status = aws_target.status()

    assert (status.live, status.bento, status.url) == ("blue", STACK_BENTO, aws_stack.outputs[keys.ENDPOINT_URL])
    blue, green = status.pools["blue"], status.pools["green"]
    assert (blue.weight, green.weight) == (100, 0)
    assert [r.name for r in blue.replicas] == aws_stack.in_service("blue")
    assert all(r.healthy and r.in_rotation for r in blue.replicas), blue.replicas
    assert blue.url == aws_stack.outputs[keys.ENDPOINT_URL]
    private_ips = {
        i["InstanceId"]: i["PrivateIpAddress"]
        for r in aws_stack.ec2.describe_instances(InstanceIds=aws_stack.in_service("blue"))["Reservations"]
        for i in r["Instances"]
    }
    assert {r.name: r.url for r in blue.replicas} == {
        iid: f"http://{ip}:{BENTO_PORT_ON_HOST}" for iid, ip in private_ips.items()
    }
    assert green.replicas == [] and green.url == ""


def test_status_gives_each_pool_the_url_of_its_own_test_listener_from_the_outputs(
    aws_stack: AwsStack, aws_session: boto3.Session, moto_url: str
) -> None:
    pool_urls = aws_stack.add_test_listeners({"blue": 8081, "green": 8082})
    target = AwsTarget(
        {**aws_stack.outputs, keys.POOL_URLS: pool_urls}, aws_session, endpoint_url=moto_url, timeout_s=5, poll_s=0.05
    )
    target.deploy_candidate(NEW_BENTO, replicas=1, workers=1)

    status = target.status()
    assert {c: p.url for c, p in status.pools.items()} == pool_urls  # weights 100/0 do not matter any more
    assert status.url == aws_stack.outputs[keys.ENDPOINT_URL] and status.candidate.url == pool_urls["green"]
    after = target.shift(100)
    assert (after.candidate.colour, after.candidate.url) == ("blue", pool_urls["blue"])


def test_without_pool_urls_a_pool_has_a_url_only_while_it_has_all_the_weight(aws_target: AwsTarget) -> None:
    """A stack without test listeners (modelops:aws.test_cidrs empty) exports pool_urls as {}."""
    aws_target.outputs[keys.POOL_URLS] = {}

    pools = aws_target.status().pools

    assert (pools["blue"].url, pools["green"].url) == (aws_target.outputs[keys.ENDPOINT_URL], "")


def test_scale_sets_desired_capacity_and_waits_for_healthy_targets(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    pool = aws_target.scale(3, pool="live")

    assert aws_stack.asg("blue")["DesiredCapacity"] == 3
    in_service = aws_stack.in_service("blue")
    assert len(in_service) == 3
    states = aws_stack.target_states("blue")
    assert all(states[iid] == "healthy" for iid in in_service), states
    assert [r.name for r in pool.replicas] == in_service and all(r.healthy for r in pool.replicas)


def test_scale_below_min_size_lowers_min_size(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    aws_target.scale(1, pool="live")

    blue = aws_stack.asg("blue")
    assert (blue["MinSize"], blue["DesiredCapacity"], len(aws_stack.in_service("blue"))) == (1, 1, 1)


def test_scale_above_max_size_is_refused_and_changes_nothing(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    with pytest.raises(UsageError, match=r"MaxSize 4 .*modelops:deploy.max_replicas"):
        aws_target.scale(5, pool="live")

    assert aws_stack.asg("blue")["DesiredCapacity"] == 2


def test_scale_times_out_naming_targets_that_never_become_healthy(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    # An ASG detached from its target group (a hand edit in the console, say): its instances are never registered,
    # so they never turn healthy. (moto cannot keep a registered target unhealthy: it re-registers on every scale.)
    blue_group = aws_stack.outputs[keys.TARGET_GROUP_ARNS]["blue"]
    aws_stack.autoscaling.detach_load_balancer_target_groups(
        AutoScalingGroupName=aws_stack.outputs[keys.ASG_NAMES]["blue"], TargetGroupARNs=[blue_group]
    )
    instances = aws_stack.in_service("blue")
    assert aws_stack.target_states("blue") == {}  # detaching deregistered them
    aws_target.timeout_s = 0.5

    with pytest.raises(DeploymentError, match=rf"did not report 2 healthy target.*{instances[0]} not registered"):
        aws_target.scale(2, pool="live")
    assert [r.healthy for r in aws_target.status().pools["blue"].replicas] == [False, False]


def test_deploy_candidate_runs_the_bento_on_green_from_a_new_pinned_launch_template_version(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    green = aws_stack.asg("green")
    assert green["LaunchTemplate"]["Version"] == "2"
    assert green["DesiredCapacity"] == 2 and len(aws_stack.in_service("green")) == 2
    assert set(aws_stack.target_states("green").values()) == {"healthy"}
    before, after = boot(aws_stack, "green", "1"), boot(aws_stack, "green", "2")
    assert after["IMAGE"] == f"{REPOSITORY}@{aws_stack.digests['v2']}"  # the pushed tag, pinned by digest
    assert workers_and_timeout(after) == (2, 10)  # workers changed, the stack's request timeout kept
    # 2 workers on 2 vCPUs: the thread pools follow (one thread per worker, the stack ran one worker with 2).
    assert {k: after[k] for k in THREAD_VARIABLES} == thread_env(2 / 2)
    changed = {"IMAGE", "BENTOML_CONFIG_OVERRIDES", *THREAD_VARIABLES}
    unchanged = {k: v for k, v in before.items() if k not in changed}
    assert {k: after[k] for k in unchanged} == unchanged  # region, registry, port, colour, log group, drain
    # The rest of the stack's boot script is kept word for word.
    assert aws_stack.user_data("green", "2").splitlines()[-14:] == aws_stack.user_data("green", "1").splitlines()[-14:]
    tags = instance_tags(aws_stack, "green", "2")
    assert (tags[BENTO_TAG], tags["modelops:colour"]) == (NEW_BENTO, "green")
    # The new version keeps the stack's settings (AMI, IMDSv2) instead of only the changed fields.
    data = aws_stack.launch_template_version("green", "2")["LaunchTemplateData"]
    assert (data["ImageId"], data["MetadataOptions"]["HttpTokens"]) == ("ami-12c6146b", "required")
    # Live traffic untouched.
    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}
    candidate = with_candidate.status().candidate
    assert candidate is not None and (candidate.bento, candidate.workers) == (NEW_BENTO, 2)
    assert not any(r.in_rotation for r in candidate.replicas)  # healthy, but the listener gives it no weight


def test_a_candidate_is_built_from_the_stack_s_current_template_shape(
    aws_target: AwsTarget, aws_stack: AwsStack
) -> None:
    # `pulumi up` changed the boot script (here: the log group) and made that the template's default version; the
    # green group still runs version 1 (the stack no longer rolls groups itself).
    template = aws_stack.launch_templates["green"]
    script = aws_stack.user_data("green", "1").replace("/modelops/instances", "/modelops/instances-v2")
    data = aws_stack.launch_template_version("green", "1")["LaunchTemplateData"]
    aws_stack.ec2.create_launch_template_version(
        LaunchTemplateId=template,
        LaunchTemplateData={**data, "UserData": base64.b64encode(script.encode()).decode()},
    )
    aws_stack.ec2.modify_launch_template(LaunchTemplateId=template, DefaultVersion="2")

    aws_target.deploy_candidate(NEW_BENTO, replicas=1, workers=1)

    assert aws_stack.asg("green")["LaunchTemplate"]["Version"] == "3"
    built = boot(aws_stack, "green", "3")
    assert built["LOG_GROUP"] == "/modelops/instances-v2" and built["IMAGE"].endswith(aws_stack.digests["v2"])


def test_deploy_candidate_replaces_the_previous_candidate_instances(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    before = set(aws_stack.in_service("green"))

    with_candidate.deploy_candidate("wine_classifier_service:v3", replicas=1, workers=1)

    after = set(aws_stack.in_service("green"))
    assert len(after) == 1 and not after & before
    assert aws_stack.asg("green")["LaunchTemplate"]["Version"] == "3"


def test_deploy_candidate_of_a_bento_whose_image_was_never_pushed_says_how_to_push_it(
    aws_target: AwsTarget, aws_stack: AwsStack
) -> None:
    with pytest.raises(DeploymentError, match=r"modelops:v9 is not in ECR: build and push .*stacks/aws/image.sh"):
        aws_target.deploy_candidate("wine_classifier_service:v9", replicas=1, workers=1)

    assert aws_stack.asg("green")["LaunchTemplate"]["Version"] == "1" and aws_stack.in_service("green") == []


def test_status_of_the_stack_s_own_pools_reads_bento_and_workers_from_its_boot_script(
    aws_target: AwsTarget,
) -> None:
    pools = aws_target.status().pools

    assert {c: (p.bento, p.workers) for c, p in pools.items()} == {"blue": (STACK_BENTO, 1), "green": (STACK_BENTO, 1)}


def test_deploy_candidate_is_refused_while_the_candidate_takes_traffic(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    with_candidate.shift(10)

    with pytest.raises(DeploymentError, match="takes 10 % of live traffic"):
        with_candidate.deploy_candidate("wine_classifier_service:v3", replicas=1, workers=1)
    assert aws_stack.asg("green")["LaunchTemplate"]["Version"] == "2"


def test_shift_partial_weight_splits_traffic_and_keeps_blue_live(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    status = with_candidate.shift(10)

    assert aws_stack.listener_weights() == {"blue": 90, "green": 10}
    assert status.live == "blue" and aws_stack.listener_tags()[LIVE_TAG] == "blue"
    # Both pools now take requests, and the listener reaches neither alone.
    green = status.pools["green"]
    assert all(r.in_rotation for r in green.replicas) and (green.url, status.pools["blue"].url) == ("", "")


def test_shift_full_weight_makes_green_live(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    status = with_candidate.shift(100)

    assert aws_stack.listener_weights() == {"blue": 0, "green": 100}
    assert aws_stack.listener_tags() == {LIVE_TAG: "green", PREVIOUS_TAG: "blue"}
    assert (status.live, status.bento) == ("green", NEW_BENTO)


def test_shift_keeps_the_listener_stickiness_setting(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    with_candidate.shift(50)

    listener = aws_stack.elbv2.describe_listeners(ListenerArns=[aws_stack.outputs[keys.LISTENER_ARN]])["Listeners"]
    assert listener[0]["DefaultActions"][0]["ForwardConfig"]["TargetGroupStickinessConfig"] == {"Enabled": False}


def test_shift_to_a_candidate_without_healthy_targets_is_refused(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    with pytest.raises(DeploymentError, match=r"green pool .* has no healthy target"):
        aws_target.shift(10)

    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}


@pytest.mark.parametrize("weight", [-1, 101, 12.5, True])
def test_shift_rejects_weights_that_are_not_a_percentage(aws_target: AwsTarget, weight: object) -> None:
    with pytest.raises(UsageError, match="integer percentage from 0 to 100"):
        aws_target.shift(weight)  # type: ignore[arg-type]


def test_shift_zero_during_a_partial_shift_gives_live_all_traffic_again(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    with_candidate.shift(30)

    assert with_candidate.shift(0).live == "blue"
    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}


def test_kill_replica_stamps_the_time_before_the_crash_leaves(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    """How the crash is done (SSM, not a graceful terminate) is in test_aws_runtime.py."""
    before = aws_stack.in_service("blue")

    in_service_when_stamped: list[list[str]] = []
    aws_target._wall_clock = lambda: in_service_when_stamped.append(aws_stack.in_service("blue")) or 1234.5

    killed = aws_target.kill_replica(pool="live")

    assert killed.name in before and killed.killed_at == 1234.5
    assert killed.name in in_service_when_stamped[0]
    assert aws_stack.asg("blue")["DesiredCapacity"] == 2


def test_an_instance_leaving_the_pool_stays_listed_but_neither_healthy_nor_in_rotation(
    aws_target: AwsTarget, aws_stack: AwsStack
) -> None:
    # Standby is the leaving state moto has (AWS also has Terminating*, for a killed instance while it drains).
    leaving, staying = aws_stack.in_service("blue")
    aws_stack.autoscaling.enter_standby(
        AutoScalingGroupName=aws_stack.outputs[keys.ASG_NAMES]["blue"],
        InstanceIds=[leaving],
        ShouldDecrementDesiredCapacity=True,
    )

    replicas = {r.name: (r.healthy, r.in_rotation) for r in aws_target.status().pools["blue"].replicas}

    assert replicas == {leaving: (False, False), staying: (True, True)}
    assert aws_target.kill_replica(pool="live").name == staying  # never the one already leaving


def test_a_new_version_sizes_each_worker_s_thread_pools_from_the_instance_vcpus(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    # deploy_candidate ran 2 workers on c7i.large (2 vCPUs): one core, one thread each.
    assert {k: boot(aws_stack, "green", "2")[k] for k in THREAD_VARIABLES} == thread_env(2 / 2)


def test_cpu_is_budgeted_by_the_instance_size_and_cpu_time_is_not_measurable(aws_target: AwsTarget) -> None:
    assert aws_target.cpu_budgets().enforced is True and "instance type" in aws_target.cpu_budgets().note
    assert aws_target.cpu_seconds() is None and aws_target.cpu_throttling() is None


def protected(stack: AwsStack, colour: str) -> dict[str, bool]:
    return {i["InstanceId"]: i["ProtectedFromScaleIn"] for i in stack.asg(colour)["Instances"]}


def suspended(stack: AwsStack, colour: str) -> set[str]:
    return {p["ProcessName"] for p in stack.asg(colour).get("SuspendedProcesses", [])}


def test_hold_scaling_suspends_target_tracking_and_protects_the_candidate_from_scale_in(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    with_candidate.hold_scaling()

    assert suspended(aws_stack, "green") == set(HELD_PROCESSES) == {"AlarmNotification", "AZRebalance"}
    assert set(protected(aws_stack, "green").values()) == {True}
    assert aws_stack.asg("green")["NewInstancesProtectedFromScaleIn"] is True
    # the live group keeps autoscaling
    assert suspended(aws_stack, "blue") == set() and set(protected(aws_stack, "blue").values()) == {False}


def test_after_a_gate_and_a_promotion_both_groups_have_the_declared_range_and_processes(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    with_candidate.hold_scaling()
    with_candidate.scale(1)  # the horizontal suite's N=1: lowers the candidate's MinSize to 1
    with_candidate.shift(100)  # promoted: green is live

    with_candidate.release_scaling()

    green = aws_stack.asg("green")
    # Before the fix the promoted group kept the MinSize the gate left (0 or 1): no floor under live traffic.
    assert (green["MinSize"], green["MaxSize"]) == (DECLARED["min"], DECLARED["max"])
    assert green["DesiredCapacity"] >= DECLARED["min"]
    assert suspended(aws_stack, "green") == set() and set(protected(aws_stack, "green").values()) == {False}
    assert green["NewInstancesProtectedFromScaleIn"] is False
    blue = aws_stack.asg("blue")
    assert (blue["MinSize"], blue["MaxSize"]) == (DECLARED["min"], DECLARED["max"])


def test_a_promotion_alone_gives_the_new_live_group_the_declared_range_and_processes(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    with_candidate.hold_scaling()
    with_candidate.scale(1)  # MinSize 1 now

    with_candidate.shift(100)  # no release_scaling: promotion (or a rollback) ends here

    green = aws_stack.asg("green")
    assert (green["MinSize"], green["MaxSize"]) == (DECLARED["min"], DECLARED["max"])
    assert suspended(aws_stack, "green") == set() and set(protected(aws_stack, "green").values()) == {False}


def test_a_full_shift_without_the_declared_range_is_refused_before_anything_changes(
    with_candidate: AwsTarget, aws_stack: AwsStack, aws_session
) -> None:
    outputs = {k: v for k, v in aws_stack.outputs.items() if k != keys.SCALING_RANGE}
    with pytest.raises(UsageError, match="scaling_range"):
        AwsTarget(outputs, aws_session).shift(100)
    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}


def test_release_scaling_leaves_an_emptied_candidate_empty(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    with_candidate.hold_scaling()
    with_candidate.remove_candidate()  # rejected: green goes to 0

    with_candidate.release_scaling()

    green = aws_stack.asg("green")
    # MinSize 2 would boot the rejected bento again.
    assert (green["MinSize"], green["MaxSize"], green["DesiredCapacity"]) == (0, DECLARED["max"], 0)
    assert suspended(aws_stack, "green") == set()


def test_release_scaling_is_idempotent_and_settles_what_a_crashed_gate_left(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    with_candidate.hold_scaling()  # ... and the gate process died here

    with_candidate.release_scaling()  # the next gate's first step
    first = {c: aws_stack.asg(c) for c in ("blue", "green")}
    with_candidate.release_scaling()
    second = {c: aws_stack.asg(c) for c in ("blue", "green")}

    keys_of_interest = ("MinSize", "MaxSize", "DesiredCapacity", "NewInstancesProtectedFromScaleIn")
    for colour in ("blue", "green"):
        assert [first[colour][k] for k in keys_of_interest] == [second[colour][k] for k in keys_of_interest]
        assert suspended(aws_stack, colour) == set()
    assert (first["green"]["MinSize"], first["green"]["MaxSize"]) == (DECLARED["min"], DECLARED["max"])


def test_release_scaling_without_the_declared_range_says_how_to_get_it(aws_stack: AwsStack, aws_session) -> None:
    outputs = {k: v for k, v in aws_stack.outputs.items() if k != keys.SCALING_RANGE}
    target = AwsTarget(outputs, aws_session)
    with pytest.raises(UsageError, match=r"no 'scaling_range'.*pulumi up -s aws"):
        target.release_scaling()


def test_kill_replica_of_an_empty_pool_says_so(aws_target: AwsTarget) -> None:
    with pytest.raises(NotDeployedError, match=r"green pool .* has no instance"):
        aws_target.kill_replica(pool="candidate")


def test_remove_candidate_scales_green_to_zero(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    with_candidate.remove_candidate()

    green = aws_stack.asg("green")
    assert (green["DesiredCapacity"], green["Instances"]) == (0, [])
    assert len(aws_stack.in_service("blue")) == 2


def test_remove_candidate_is_refused_while_it_takes_traffic(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    with_candidate.shift(20)

    with pytest.raises(DeploymentError, match=r"takes 20 % of live traffic: move it back first \(`modelops abort`"):
        with_candidate.remove_candidate()
    assert aws_stack.asg("green")["DesiredCapacity"] == 2


def test_abort_during_a_partial_shift_gives_the_traffic_back_before_removing_the_candidate(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    """What a crashed canary leaves on aws (issue 17 item 12): remove_candidate alone refuses; abort shifts first."""
    with_candidate.shift(20)

    with_candidate.abort()

    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}
    assert aws_stack.asg("green")["DesiredCapacity"] == 0
    assert with_candidate.status().live == "blue" and len(aws_stack.in_service("blue")) == 2


def test_abort_without_traffic_on_the_candidate_only_removes_it(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    with_candidate.abort()

    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}
    assert aws_stack.asg("green")["DesiredCapacity"] == 0


def test_retire_previous_after_a_full_shift_scales_blue_to_zero(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    with_candidate.shift(100)

    with_candidate.retire_previous()

    blue = aws_stack.asg("blue")
    assert (blue["DesiredCapacity"], blue["Instances"]) == (0, [])
    assert len(aws_stack.in_service("green")) == 2 and aws_stack.listener_weights() == {"blue": 0, "green": 100}


def test_down_scales_both_pools_to_zero(with_candidate: AwsTarget, aws_stack: AwsStack) -> None:
    blue_instances = aws_stack.in_service("blue")

    with_candidate.down()

    for colour in ("blue", "green"):
        asg = aws_stack.asg(colour)
        assert (asg["MinSize"], asg["DesiredCapacity"], asg["Instances"]) == (0, 0, []), colour
    reservations = aws_stack.ec2.describe_instances(InstanceIds=blue_instances)["Reservations"]
    assert {i["State"]["Name"] for r in reservations for i in r["Instances"]} <= {"shutting-down", "terminated"}


def test_up_after_down_brings_the_live_pool_back(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    aws_target.down()

    status = aws_target.up(NEW_BENTO, replicas=2, workers=3)

    assert status.live == "blue" and status.bento == NEW_BENTO
    assert len(status.replicas) == 2 and all(r.healthy for r in status.replicas)
    assert workers_and_timeout(boot(aws_stack, "blue", "2")) == (3, 10)


def test_up_refuses_to_swap_the_bento_of_a_serving_live_pool(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    with pytest.raises(DeploymentError, match="deploy_candidate then shift"):
        aws_target.up(NEW_BENTO, replicas=2, workers=1)

    assert aws_stack.asg("blue")["LaunchTemplate"]["Version"] == "1"


def fire(stack: AwsStack, *names: str) -> None:
    for name in names:
        stack.cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")


def test_alarms_report_each_alarm_state(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    fire(aws_stack, "modelops-blue-5xx")

    alarms = aws_target.alarms()

    assert alarms["modelops-blue-5xx"] == "ALARM"
    exported = aws_stack.outputs[keys.ALARM_NAMES]
    assert set(alarms) == {name for group in exported.values() for name in group.values()}
    assert aws_target.firing_alarms() == ["modelops-blue-5xx"]


def test_firing_alarms_of_a_pool_are_its_colour_s_and_the_load_balancer_s(
    aws_target: AwsTarget, aws_stack: AwsStack
) -> None:
    fire(aws_stack, "modelops-green-p95")  # blue is live: green is the candidate

    assert aws_target.firing_alarms("candidate") == ["modelops-green-p95"]
    assert aws_target.firing_alarms("live") == []  # the live version is fine: a switch may start
    fire(aws_stack, "modelops-elb-5xx")
    assert aws_target.firing_alarms("live") == ["modelops-elb-5xx"]
    assert set(aws_target.alarms("live")) == {"modelops-elb-5xx", *aws_stack.outputs[keys.ALARM_NAMES]["blue"].values()}


def test_alarms_of_outputs_made_before_alarms_were_per_colour_concern_every_pool(
    aws_stack: AwsStack, aws_session
) -> None:
    flat = {"target_5xx": "modelops-blue-5xx", "elb_5xx": "modelops-elb-5xx"}
    target = AwsTarget({**aws_stack.outputs, keys.ALARM_NAMES: flat}, aws_session, alarm_settle_s=0)
    fire(aws_stack, "modelops-blue-5xx")
    assert target.firing_alarms("candidate") == ["modelops-blue-5xx"]


def test_alarms_report_a_missing_alarm_as_missing(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    aws_stack.cloudwatch.delete_alarms(AlarmNames=["modelops-blue-unhealthy"])

    assert aws_target.alarms()["modelops-blue-unhealthy"] == "MISSING"


@pytest.mark.parametrize(("cpu", "expected"), [(0.5, "c7i.large"), (3, "c7i.xlarge"), (8, "c7i.2xlarge")])
def test_instance_type_for_picks_the_smallest_family_size_with_enough_vcpus(
    aws_target: AwsTarget, cpu: float, expected: str
) -> None:
    assert aws_target.instance_type_for(cpu, "c7i.large") == expected


def test_instance_type_for_more_vcpus_than_the_family_has_is_refused(aws_target: AwsTarget) -> None:
    with pytest.raises(UsageError, match=r"no c7i instance type has 1000 vCPUs \(largest: c7i.48xlarge"):
        aws_target.instance_type_for(1000, "c7i.large")


def test_resize_stages_a_version_and_leaves_the_group_alone_when_the_refresh_cannot_start(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    # moto 5.2 has no instance refresh (HTTP 500): everything up to it is real, and the failure path is honest.
    with pytest.raises(DeploymentError, match=r"version 3 .*instance refresh of modelops-green failed"):
        with_candidate.resize(workers=4, cpu=3)

    staged = aws_stack.launch_template_version("green", "3")["LaunchTemplateData"]
    assert staged["InstanceType"] == "c7i.xlarge"
    assert workers_and_timeout(boot(aws_stack, "green", "3")) == (4, 10)
    # c7i.xlarge has 4 vCPUs (moto answers DescribeInstanceTypes from AWS's catalogue): 1 per worker.
    assert {k: boot(aws_stack, "green", "3")[k] for k in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "1")
    assert instance_tags(aws_stack, "green", "3")[BENTO_TAG] == NEW_BENTO
    assert aws_stack.asg("green")["LaunchTemplate"]["Version"] == "2"


def test_resize_to_what_the_pool_already_runs_changes_nothing(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    pool = aws_target.resize(workers=1, cpu=2, pool="live")  # c7i.large has 2 vCPUs; the stack runs 1 worker

    assert (pool.workers, len(pool.replicas)) == (1, 2)
    versions = aws_stack.ec2.describe_launch_template_versions(LaunchTemplateId=aws_stack.launch_templates["blue"])
    assert [v["VersionNumber"] for v in versions["LaunchTemplateVersions"]] == [1]


# ------------------------------------------------------------------ instance refresh (not in moto): botocore Stubber


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def stubbed_autoscaling() -> tuple[object, Stubber]:
    client = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client(
        "autoscaling"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def expect_start(stubber: Stubber) -> None:
    stubber.add_response(
        "start_instance_refresh",
        {"InstanceRefreshId": "r-1"},
        {
            "AutoScalingGroupName": "modelops-green",
            "Strategy": "Rolling",
            "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": "lt-0abc", "Version": "3"}},
            # launch before terminate, roll back by itself when the new instances fail their health checks, and
            # replace instances a gate protected from scale-in instead of waiting (up to an hour) for the protection
            "Preferences": {
                "MinHealthyPercentage": 100,
                "MaxHealthyPercentage": 200,
                "SkipMatching": True,
                "AutoRollback": True,
                "ScaleInProtectedInstances": "Refresh",
                "StandbyInstances": "Terminate",
            },
        },
    )


def expect_refresh_status(stubber: Stubber, status: str, **extra: object) -> None:
    stubber.add_response(
        "describe_instance_refreshes",
        {
            "InstanceRefreshes": [
                {"InstanceRefreshId": "r-1", "AutoScalingGroupName": "modelops-green", "Status": status, **extra}
            ]
        },
        {"AutoScalingGroupName": "modelops-green", "InstanceRefreshIds": ["r-1"]},
    )


def test_instance_refresh_pins_the_version_and_waits_until_it_succeeds(stubbed_autoscaling) -> None:
    client, stubber = stubbed_autoscaling
    clock = FakeClock()
    expect_start(stubber)
    for status in ("Pending", "InProgress", "Successful"):
        expect_refresh_status(stubber, status)

    refresh_id = start_and_wait_instance_refresh(
        client, "modelops-green", "lt-0abc", 3, timeout_s=60, poll_s=5, clock=clock, sleep=clock.sleep
    )

    assert refresh_id == "r-1" and clock.now == 10
    stubber.assert_no_pending_responses()


def test_instance_refresh_that_fails_raises_with_the_reason(stubbed_autoscaling) -> None:
    client, stubber = stubbed_autoscaling
    clock = FakeClock()
    expect_start(stubber)
    expect_refresh_status(stubber, "Failed", StatusReason="instances failed ELB health checks")

    with pytest.raises(DeploymentError, match="ended Failed: instances failed ELB health checks"):
        start_and_wait_instance_refresh(
            client, "modelops-green", "lt-0abc", 3, timeout_s=60, poll_s=5, clock=clock, sleep=clock.sleep
        )


def test_instance_refresh_that_outlasts_the_timeout_says_how_to_follow_it(stubbed_autoscaling) -> None:
    client, stubber = stubbed_autoscaling
    clock = FakeClock()
    expect_start(stubber)
    for _ in range(3):
        expect_refresh_status(stubber, "InProgress", PercentageComplete=40)

    with pytest.raises(
        DeploymentError, match=r"still InProgress \(40 % done\) after 10 s.*describe-instance-refreshes"
    ):
        start_and_wait_instance_refresh(
            client, "modelops-green", "lt-0abc", 3, timeout_s=10, poll_s=5, clock=clock, sleep=clock.sleep
        )


# ------------------------------------------------------------------------------------- alarms gate a promotion
@pytest.fixture
def histories(tmp_path) -> HistoryFile:
    return HistoryFile(tmp_path / "history.json")


def test_a_candidate_whose_alarms_fire_never_takes_traffic(with_candidate: AwsTarget, aws_stack, histories) -> None:
    fire(aws_stack, "modelops-green-p95")  # blue is live: green is the candidate

    with pytest.raises(DeploymentError, match="its own alarms fire \\(modelops-green-p95\\)"):
        switch(with_candidate, histories, "promote", NEW_BENTO, None)

    assert with_candidate.status().live == "blue" and histories.load().entries == [], "nothing moved, nothing recorded"


def test_a_promotion_does_not_start_while_the_live_versions_alarms_fire(
    with_candidate: AwsTarget, aws_stack, histories
) -> None:
    fire(aws_stack, "modelops-blue-5xx")

    with pytest.raises(DeploymentError, match="while the live version's alarms fire \\(modelops-blue-5xx\\)"):
        switch(with_candidate, histories, "promote", NEW_BENTO, None)
    assert with_candidate.status().live == "blue"


def test_a_rollback_may_start_while_the_live_versions_alarms_fire(with_candidate: AwsTarget, aws_stack, histories):
    fire(aws_stack, "modelops-blue-5xx")  # the reason one rolls back

    status = switch(with_candidate, histories, "rollback", NEW_BENTO, None)

    assert status.live == "green" and histories.load().entries[-1].state == "done"


def test_a_promotion_with_quiet_alarms_switches(with_candidate: AwsTarget, histories) -> None:
    assert switch(with_candidate, histories, "promote", NEW_BENTO, None).live == "green"
