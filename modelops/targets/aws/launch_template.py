"""Launch template versions and instance refreshes: what a pool runs, and how a new version reaches its instances."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelops.errors import DeploymentError

# Instance refresh states (DescribeInstanceRefreshes): the ones that end it without success.
REFRESH_FAILED = frozenset({"Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"})


@dataclass(frozen=True)
class RefreshPreferences:
    """How a resize's instance refresh replaces instances: the stack's setting (refresh_preferences output)."""

    min_healthy_percentage: int = 100
    max_healthy_percentage: int = 200
    instance_warmup_s: int | None = None

    @classmethod
    def from_outputs(cls, exported: Any) -> RefreshPreferences:
        if not isinstance(exported, dict):
            return cls()  # outputs of a stack made before the setting was exported: launch before terminate
        warmup = exported.get("instance_warmup_s")
        return cls(
            min_healthy_percentage=int(exported.get("min_healthy_percentage", 100)),
            max_healthy_percentage=int(exported.get("max_healthy_percentage", 200)),
            instance_warmup_s=int(warmup) if warmup is not None else None,
        )

    def as_request(self) -> dict[str, Any]:
        request: dict[str, Any] = {
            "MinHealthyPercentage": self.min_healthy_percentage,
            "MaxHealthyPercentage": self.max_healthy_percentage,
            "SkipMatching": True,
            "AutoRollback": True,
            # A gate holds the candidate (Target.hold_scaling) with scale-in protection on its instances. AWS's
            # default (Wait) waits for protection to be lifted, up to an hour, and the resize times out; these
            # instances are ours to replace.
            "ScaleInProtectedInstances": "Refresh",
            "StandbyInstances": "Terminate",
        }
        if self.instance_warmup_s is not None:
            request["InstanceWarmup"] = self.instance_warmup_s
        return request


@dataclass(frozen=True)
class PoolSpec:
    """What a pool's pinned launch template version runs."""

    launch_template_id: str
    version: int
    data: dict[str, Any]
    script: str  # the decoded user data
    bento: str
    image: str
    workers: int  # 0: unknown (the boot script sets no BENTOML_CONFIG_OVERRIDES workers)


def start_and_wait_instance_refresh(
    autoscaling: Any,
    asg_name: str,
    launch_template_id: str,
    version: int,
    timeout_s: float,
    poll_s: float,
    preferences: RefreshPreferences | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Replace the ASG's instances with ``version`` of its launch template; block until AWS says it succeeded.

    DesiredConfiguration makes the switch atomic: AWS pins the ASG to the new version only when the refresh
    succeeds, so a failed or cancelled refresh leaves the group as it was. There is no boto3 waiter for instance
    refreshes, hence the poll with a deadline. Returns the refresh id.
    """
    started = autoscaling.start_instance_refresh(
        AutoScalingGroupName=asg_name,
        Strategy="Rolling",
        DesiredConfiguration={
            # Pin the number, never $Latest: a refresh compares versions, and $Latest hides which one runs.
            "LaunchTemplate": {"LaunchTemplateId": launch_template_id, "Version": str(version)}
        },
        # Launch before terminate by default (min 100 %, max 200 %): the pool never drops below its capacity while
        # being resized; a refresh whose new instances fail their health checks rolls back by itself.
        Preferences=(preferences or RefreshPreferences()).as_request(),
    )
    refresh_id = started["InstanceRefreshId"]
    deadline = clock() + timeout_s
    while True:
        refreshes = autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=asg_name, InstanceRefreshIds=[refresh_id]
        )["InstanceRefreshes"]
        refresh = refreshes[0] if refreshes else {"Status": "Unknown"}
        status = refresh["Status"]
        if status == "Successful":
            return refresh_id
        if status in REFRESH_FAILED:
            reason = refresh.get("StatusReason", "no reason given")
            raise DeploymentError(
                f"instance refresh {refresh_id} of {asg_name} ended {status}: {reason}. The group keeps its "
                f"previous launch template version; see `aws autoscaling describe-instance-refreshes "
                f"--auto-scaling-group-name {asg_name}`"
            )
        if clock() >= deadline:
            raise DeploymentError(
                f"instance refresh {refresh_id} of {asg_name} still {status} "
                f"({refresh.get('PercentageComplete', 0)} % done) after {timeout_s:g} s: follow it with "
                f"`aws autoscaling describe-instance-refreshes --auto-scaling-group-name {asg_name}`, "
                f"or cancel it with `aws autoscaling cancel-instance-refresh --auto-scaling-group-name {asg_name}`"
            )
        sleep(poll_s)


def as_request(ec2: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Launch template data as DescribeLaunchTemplateVersions returns it, reduced to what
    CreateLaunchTemplateVersion accepts (the response shape has a few read-only members)."""
    shape = ec2.meta.service_model.operation_model("CreateLaunchTemplateVersion").input_shape
    return fit_shape(data, shape.members["LaunchTemplateData"]) or {}


def fit_shape(value: Any, shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return None
        fitted = {k: fit_shape(v, shape.members[k]) for k, v in value.items() if k in shape.members}
        return {k: v for k, v in fitted.items() if v is not None}
    if kind == "list":
        if not isinstance(value, list):
            return None
        return [f for f in (fit_shape(v, shape.member) for v in value) if f is not None]
    if kind == "map":
        return {k: fit_shape(v, shape.value) for k, v in value.items()} if isinstance(value, dict) else None
    return value
