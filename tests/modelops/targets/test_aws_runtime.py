"""The AWS driver at run time, against a real moto server: a failover kill that is a crash, alarms that settle
before a switch and follow the traffic, the image scan a promotion must pass, the protected tag every live image
gets, the refresh preferences from the stack, and recovery from a half-done canary (shift to 0, then remove).

moto 5.2.5 has no StartInstanceRefresh (the refresh's preferences are checked against botocore's API model in
test_aws.py) and no CompleteLifecycleAction (the boot script's side is run in tests/stacks/aws/test_boot_script.py).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import boto3
import pytest

from modelops.errors import DeploymentError
from modelops.targets.aws import AwsTarget
from modelops.targets.aws.faults import KILL_COMMAND
from modelops.targets.aws.launch_template import RefreshPreferences
from stacks import outputs as keys
from stacks.names import PROTECTED_TAG_PREFIX

from .conftest import REGION, AwsStack

NEW_BENTO = "wine_classifier_service:v2"


@pytest.fixture
def with_candidate(aws_target: AwsTarget) -> AwsTarget:
    aws_target.deploy_candidate(NEW_BENTO, replicas=2, workers=2)
    return aws_target


def fire(stack: AwsStack, *names: str, state: str = "ALARM") -> None:
    for name in names:
        stack.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def client(session: boto3.Session, moto_url: str, service: str) -> Any:
    return session.client(service, endpoint_url=moto_url)


def image_tags(ecr: Any, digest: str) -> list[str]:
    found = ecr.describe_images(repositoryName="modelops", imageIds=[{"imageDigest": digest}])["imageDetails"]
    return sorted(found[0].get("imageTags", []))


# ---------------------------------------------------------------------------------------------- failover kill


def test_kill_replica_crashes_the_bento_through_ssm_and_leaves_the_instance_in_the_group(
    with_candidate: AwsTarget, aws_stack: AwsStack, aws_session: boto3.Session, moto_url: str
) -> None:
    before = aws_stack.in_service("green")

    killed = with_candidate.kill_replica("candidate")

    # Not a graceful terminate: the instance stays in service (no deregistration, no draining); its bento dies.
    assert killed.name in before and aws_stack.in_service("green") == before
    commands = client(aws_session, moto_url, "ssm").list_commands()["Commands"]
    # moto 5.2.5 adds every instance of the account to InstanceIds when a command has no Targets (its filter of no
    # filters matches all), so the read-back can only show that the victim is among them, in one command.
    assert [(c["DocumentName"], c["Parameters"]["commands"], c["Targets"]) for c in commands] == [
        ("AWS-RunShellScript", [KILL_COMMAND], [])
    ]
    assert killed.name in commands[0]["InstanceIds"]
    assert "kill -KILL" in KILL_COMMAND and "docker kill" not in KILL_COMMAND  # docker kill disables the restart


# ---------------------------------------------------------------------------------------------- alarms


def test_an_idle_candidate_s_alarm_that_clears_within_the_settle_time_does_not_block_the_switch(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    fire(aws_stack, "modelops-green-unhealthy")  # the failover suite's killed replica, one minute ago
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        fire(aws_stack, "modelops-green-unhealthy", state="OK")  # the alarm's evaluation window passes

    with_candidate.stack_alarms._sleep = sleep
    assert with_candidate.firing_alarms("candidate") == []
    assert slept, "the driver reported without waiting"


def test_an_idle_candidate_s_alarm_that_outlasts_the_settle_time_is_reported(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    fire(aws_stack, "modelops-green-5xx")
    now = [0.0]
    with_candidate.stack_alarms._clock = lambda: now[0]
    with_candidate.stack_alarms._sleep = lambda s: now.__setitem__(0, now[0] + s)
    with_candidate.stack_alarms.settle_s = 240

    assert with_candidate.firing_alarms("candidate") == ["modelops-green-5xx"]
    assert 240 <= now[0] < 240 + with_candidate.poll_s * 2, "waited the settle time, and no longer"


def test_alarms_of_a_pool_with_traffic_are_reported_at_once(aws_target: AwsTarget, aws_stack: AwsStack) -> None:
    fire(aws_stack, "modelops-blue-p95")
    aws_target.stack_alarms._sleep = lambda _s: pytest.fail("a pool taking traffic must not wait")
    assert aws_target.firing_alarms("live") == ["modelops-blue-p95"]


def test_the_healthy_hosts_alarm_counts_for_the_live_colour_only(with_candidate: AwsTarget, aws_stack) -> None:
    fire(aws_stack, "modelops-green-healthy", "modelops-blue-healthy")  # green has 0 hosts while idle: by design
    with_candidate.stack_alarms.settle_s = 0

    assert with_candidate.firing_alarms("candidate") == []
    assert with_candidate.firing_alarms("live") == ["modelops-blue-healthy"]


def test_a_full_shift_moves_the_healthy_hosts_alarm_actions_with_the_traffic(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    def actions() -> dict[str, bool]:
        names = ["modelops-blue-healthy", "modelops-green-healthy"]
        found = aws_stack.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
        return {a["AlarmName"]: a["ActionsEnabled"] for a in found}

    assert actions() == {"modelops-blue-healthy": True, "modelops-green-healthy": False}
    with_candidate.shift(50)
    assert actions() == {"modelops-blue-healthy": True, "modelops-green-healthy": False}, "only at 100 %"
    with_candidate.shift(100)
    assert actions() == {"modelops-blue-healthy": False, "modelops-green-healthy": True}


# ---------------------------------------------------------------------------------------------- ECR


def set_scan(moto_url: str, digest: str, counts: dict[str, int], status: str = "COMPLETE") -> None:
    """moto's API for canned scan results (moto.ecr describe_image_scan_findings)."""
    result = {
        "registryId": "123456789012",
        "repositoryName": "modelops",
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": status, "description": "canned"},
        "imageScanFindings": {"findingSeverityCounts": counts, "findings": []},
    }
    body = json.dumps({"results": [result], "region": REGION}).encode()
    request = urllib.request.Request(
        f"{moto_url}/moto-api/static/ecr/scan-finding-results", data=body, method="POST",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10):
        pass


def test_a_candidate_whose_image_scan_found_critical_vulnerabilities_never_takes_traffic(
    with_candidate: AwsTarget, aws_stack: AwsStack, moto_url: str
) -> None:
    set_scan(moto_url, aws_stack.digests["v2"], {"CRITICAL": 2, "HIGH": 1})

    with pytest.raises(DeploymentError, match=r"scan found 2 CRITICAL vulnerabilities"):
        with_candidate.shift(10)
    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}


def test_a_candidate_whose_scan_is_not_complete_is_refused_after_the_wait(
    with_candidate: AwsTarget, aws_stack: AwsStack, moto_url: str
) -> None:
    set_scan(moto_url, aws_stack.digests["v2"], {}, status="IN_PROGRESS")

    with pytest.raises(DeploymentError, match=r"scan of .* is IN_PROGRESS"):
        with_candidate.shift(100)
    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}


def test_a_candidate_with_findings_below_the_blocking_severity_is_promoted(
    with_candidate: AwsTarget, aws_stack: AwsStack, moto_url: str
) -> None:
    set_scan(moto_url, aws_stack.digests["v2"], {"HIGH": 3, "MEDIUM": 7})

    assert with_candidate.shift(100).live == "green"


def test_every_image_put_live_gets_the_protected_tag_the_lifecycle_policy_keeps(
    with_candidate: AwsTarget, aws_stack: AwsStack, aws_session: boto3.Session, moto_url: str
) -> None:
    ecr = client(aws_session, moto_url, "ecr")
    digest = aws_stack.digests["v2"]
    assert image_tags(ecr, digest) == ["v2"]

    with_candidate.shift(100)
    with_candidate.release_scaling()  # idempotent: it protects the live image again

    assert image_tags(ecr, digest) == sorted(["v2", f"{PROTECTED_TAG_PREFIX}v2"])


# ---------------------------------------------------------------------------------------------- recovery, refresh


def test_a_half_done_canary_is_recovered_by_shifting_to_zero_first_then_removing(
    with_candidate: AwsTarget, aws_stack: AwsStack
) -> None:
    with_candidate.shift(50)  # a canary step, then the promoting process died
    with pytest.raises(DeploymentError, match=r"modelops abort"):
        with_candidate.remove_candidate()

    with_candidate.shift(0)
    with_candidate.remove_candidate()

    assert aws_stack.listener_weights() == {"blue": 100, "green": 0}
    assert aws_stack.in_service("green") == [] and aws_stack.listener_tags()["modelops:live-colour"] == "blue"


def test_resize_uses_the_stack_s_refresh_preferences(aws_stack: AwsStack, aws_session, moto_url: str) -> None:
    exported = {"min_healthy_percentage": 50, "max_healthy_percentage": 150, "instance_warmup_s": 120}
    target = AwsTarget({**aws_stack.outputs, keys.REFRESH_PREFERENCES: exported}, aws_session, endpoint_url=moto_url)
    preferences = target.refresh.as_request()
    assert (preferences["MinHealthyPercentage"], preferences["MaxHealthyPercentage"]) == (50, 150)
    assert preferences["InstanceWarmup"] == 120 and preferences["ScaleInProtectedInstances"] == "Refresh"
    assert RefreshPreferences.from_outputs(None).as_request()["MinHealthyPercentage"] == 100
