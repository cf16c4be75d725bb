"""The AWS target driver: boto3 against what `pulumi up -s aws` made.

The stack makes one ALB listener whose default action forwards to two target groups (blue, green) with weights,
and one Auto Scaling Group per colour attached to its target group. This driver never creates or deletes
infrastructure (`pulumi up` / `pulumi destroy -s aws` do); it changes capacity, launch template versions and
listener weights, and reads health back.

State kept on AWS itself, so every command can run on a fresh machine:

- which colour is live, and which was live before the last full shift: tags on the listener
  (:data:`LIVE_TAG`, :data:`PREVIOUS_TAG`). Weights alone cannot say it: blue 40 / green 60 is either "green live,
  blue a 40 % candidate" or "blue live, green a 60 % canary".
- what a pool runs: its pinned launch template version. The image and the workers are settings of the stack's
  boot script (stacks/aws/user_data.sh), which new versions keep, changing only those; the bento tag is an
  instance tag (:data:`BENTO_TAG`) because an image digest cannot name it.

Capacity limits: an ASG's MaxSize is a spending ceiling set in stacks/Pulumi.aws.yaml, so :meth:`AwsTarget.scale`
refuses to go above it (the fix is to raise ``modelops:deploy.max_replicas`` and `pulumi up`). MinSize is only the floor
the autoscaler keeps: an explicit smaller request lowers it, otherwise a candidate could never be removed; and
:meth:`AwsTarget.release_scaling` (after every gate, and before the next one, which settles a crashed gate) puts
both groups back to the range the stack declares.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from botocore.parsers import ResponseParserError

from modelops.errors import DeploymentError, NotDeployedError, UsageError
from modelops.targets.aws import faults
from modelops.targets.aws.alarms import SETTLE_S, StackAlarms
from modelops.targets.aws.boot_script import boot_settings, retarget_boot_script
from modelops.targets.aws.launch_template import (
    PoolSpec,
    RefreshPreferences,
    as_request,
    start_and_wait_instance_refresh,
)
from modelops.targets.aws.registry import Images
from modelops.targets.base import (
    Colour,
    CpuBudgets,
    KilledReplica,
    Pool,
    PoolStatus,
    ReplicaStatus,
    TargetStatus,
    other,
)
from modelops.targets.common import ScalingRange, api_errors, by_colour, check_weight, colour_of
from modelops.targets.outputs import (
    BENTO_PORT,
    BENTOML_OVERRIDES_ENV,
    bento_name,
    check_outputs,
    workers_from_override,
)
from modelops.waiting import wait_until
from stacks import outputs as keys
from stacks.names import COLOURS, LIVE_TAG, PREVIOUS_TAG

REQUIRED_OUTPUTS = (keys.ENDPOINT_URL, keys.LISTENER_ARN, keys.TARGET_GROUP_ARNS, keys.ASG_NAMES)

BENTO_TAG = "modelops:bento"  # launch template instance tag: the bento a pool's instances serve

# ASG lifecycle states (prefixes) of instances leaving the pool (AWS deregisters them from the target group as they
# enter these) and of instances gone from it.
LEAVING = ("Terminating", "Detaching", "EnteringStandby", "Standby")
GONE = ("Terminated", "Detached", "Warmed")

# moto answers unimplemented calls with an HTML 500 that botocore cannot parse: not a BotoCoreError subclass.
AWS_ERRORS = (ClientError, BotoCoreError, ResponseParserError)

# Held for the gate's duration (Target.hold_scaling): target tracking acts through CloudWatch alarm notifications,
# and AZ rebalancing terminates instances to even out zones; either would change the pool being measured (the
# gate's own test-listener traffic counts toward ALBRequestCountPerTarget).
HELD_PROCESSES = ["AlarmNotification", "AZRebalance"]


def _describe_aws_error(action: str, exc: Exception) -> str | None:
    return f"aws {action} failed: {exc}" if isinstance(exc, AWS_ERRORS) else None


_aws_errors = api_errors(_describe_aws_error)


@dataclass(frozen=True)
class ListenerState:
    weights: dict[Colour, int]
    live: Colour
    previous: Colour | None
    stickiness: dict[str, Any] | None


class AwsTarget:
    """The Target interface over an ALB with blue/green target groups and one ASG per colour."""

    name = "aws"

    def __init__(
        self,
        outputs: dict[str, Any],
        session: Any,
        *,
        endpoint_url: str | None = None,
        client_config: Config | None = None,
        timeout_s: float = 900.0,
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        alarm_settle_s: float = SETTLE_S,
        scan_wait_s: float = 600.0,
    ) -> None:
        self.outputs = check_outputs(outputs, REQUIRED_OUTPUTS, source="the aws stack outputs", stack="aws")
        self.progress: Callable[[str], None] = lambda _message: None
        self._wall_clock = wall_clock
        self.target_groups = by_colour(outputs, keys.TARGET_GROUP_ARNS)
        self.asg_names = by_colour(outputs, keys.ASG_NAMES)
        self.listener_arn: str = outputs[keys.LISTENER_ARN]
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        config = client_config or Config(retries={"mode": "standard", "max_attempts": 5})
        self.ec2 = session.client("ec2", endpoint_url=endpoint_url, config=config)
        self.elbv2 = session.client("elbv2", endpoint_url=endpoint_url, config=config)
        self.autoscaling = session.client("autoscaling", endpoint_url=endpoint_url, config=config)
        self.cloudwatch = session.client("cloudwatch", endpoint_url=endpoint_url, config=config)
        self.ecr = session.client("ecr", endpoint_url=endpoint_url, config=config)
        self.ssm = session.client("ssm", endpoint_url=endpoint_url, config=config)
        self._ports: dict[Colour, int] = {}
        self.stack_alarms = StackAlarms(
            self.cloudwatch,
            outputs.get(keys.ALARM_NAMES) or {},
            settle_s=alarm_settle_s,
            poll_s=poll_s,
            clock=clock,
            sleep=sleep,
        )
        self.images = Images(
            self.ecr, outputs.get(keys.REPOSITORY_URL), scan_wait_s=scan_wait_s, poll_s=poll_s, clock=clock, sleep=sleep
        )
        self.refresh = RefreshPreferences.from_outputs(outputs.get(keys.REFRESH_PREFERENCES))

    # ---------------------------------------------------------------- reading

    @_aws_errors("status")
    def status(self) -> TargetStatus:
        state = self._listener_state()
        pools: dict[str, PoolStatus] = {colour: self._pool_status(colour, state) for colour in COLOURS}
        return TargetStatus(
            target=self.name,
            url=self.outputs[keys.ENDPOINT_URL],
            bento=pools[state.live].bento,
            live=state.live,
            pools=pools,
        )

    def _alarm_names(self, pool: Pool | None = None) -> list[str]:
        """The stack's alarm names: those of ``pool``'s colour and the load balancer's own, or all of them. The
        healthy-hosts alarm counts for a colour only while it takes all the traffic (stacks/aws/alarms.py)."""
        if pool is None:
            return self.stack_alarms.names()
        state = self._listener_state()
        colour = colour_of(pool, state.live)
        return self.stack_alarms.names(colour, live=colour == state.live and state.weights[colour] == 100)

    @_aws_errors("reading alarms")
    def alarms(self, pool: Pool | None = None) -> dict[str, str]:
        """{alarm name: OK | ALARM | INSUFFICIENT_DATA} for the stack's alarms (of ``pool``'s colour and the load
        balancer's own, or all); MISSING when one does not exist.

        Promotion reads them: a live colour in ALARM is no moment to start a switch, and a candidate that goes into
        ALARM during the switch window is rolled back."""
        return self.stack_alarms.states(self._alarm_names(pool))

    @_aws_errors("reading alarms")
    def firing_alarms(self, pool: Pool | None = None) -> list[str]:
        """The alarms of ``pool`` (and the load balancer's own; all with None) that are in ALARM state now.

        A pool that takes no traffic (a candidate before its switch) gets up to ``alarm_settle_s`` for its alarms to
        return to OK first: a fresh boot or the failover suite's killed replica leaves an alarm firing for the
        alarms' evaluation window after the pool is healthy again, and refusing the switch for it would reject a
        healthy candidate. Alarms that outlast the wait are reported; a pool with traffic is reported at once."""
        names = self._alarm_names(pool)
        idle = pool is not None and self._pool_weight(pool) == 0
        return self.stack_alarms.firing(names, wait=idle)

    def _pool_weight(self, pool: Pool) -> int:
        state = self._listener_state()
        return state.weights[colour_of(pool, state.live)]

    # ---------------------------------------------------------------- the Target operations

    @_aws_errors("up")
    def up(self, bento: str, replicas: int, workers: int) -> TargetStatus:
        """Run ``bento`` in the live pool. The infrastructure itself comes from `pulumi up -s aws`.

        Refuses to swap the bento of a live pool that is serving: that would skip the gate. Use
        deploy_candidate + shift for a new bento, resize for other workers."""
        live = self._listener_state().live
        spec = self._pool_spec(live)
        if (spec.bento, spec.workers) != (bento, workers):
            running = self._members(self._asg(live))
            if running:
                raise DeploymentError(
                    f"the live {live} pool already serves {spec.bento or 'an unknown bento'} with "
                    f"{spec.workers or '?'} worker(s) on {len(running)} instance(s): put {bento} live with "
                    "deploy_candidate then shift(100), or change workers with resize"
                )
            version = self._new_version(live, spec, bento=bento, image=self.image_for(bento), workers=workers)
            self._pin(live, spec.launch_template_id, version)
        self._scale(live, replicas)
        return self.status()

    @_aws_errors("down")
    def down(self) -> None:
        """Both pools to zero instances. The ALB, target groups and ASGs stay: `pulumi destroy -s aws` removes
        them (and stops their cost)."""
        for colour in COLOURS:
            self._protect(colour, False)  # a group still held by a crashed gate could not scale in
            self._set_capacity(colour, 0)
        for colour in COLOURS:
            self._wait_capacity(colour, 0)

    @_aws_errors("scale")
    def scale(self, replicas: int, pool: Pool = "candidate") -> PoolStatus:
        colour = self._colour_of(pool)
        self._scale(colour, replicas)
        return self._pool_status(colour)

    @_aws_errors("resize")
    def resize(
        self, workers: int, cpu: float | None = None, pool: Pool = "candidate", instance_type: str | None = None
    ) -> PoolStatus:
        """Vertical: ``workers`` BentoML workers per instance, on an instance type with at least ``cpu`` vCPUs
        (the smallest such size in the current family) or on ``instance_type``.

        A new launch template version carries the change; an instance refresh rolls it out (launch before
        terminate) and the call returns once the refresh succeeded and the pool's targets are healthy again."""
        colour = self._colour_of(pool)
        spec = self._pool_spec(colour)
        current_type = spec.data.get("InstanceType", "")
        if instance_type is None and cpu is not None:
            instance_type = self.instance_type_for(cpu, current_type)
        if not spec.image:
            raise DeploymentError(
                f"the {colour} pool's launch template version {spec.version} does not say which image it runs: "
                "deploy a bento onto it with deploy_candidate first"
            )
        if workers == spec.workers and instance_type in (None, current_type):
            # Nothing to change: a new version would make the refresh replace every instance for nothing.
            return self._pool_status(colour)
        version = self._new_version(
            colour, spec, bento=spec.bento, image=spec.image, workers=workers, instance_type=instance_type
        )
        asg = self.asg_names[colour]
        try:
            start_and_wait_instance_refresh(
                self.autoscaling,
                asg,
                spec.launch_template_id,
                version,
                preferences=self.refresh,
                timeout_s=self.timeout_s,
                poll_s=self.poll_s,
                clock=self._clock,
                sleep=self._sleep,
            )
        except AWS_ERRORS as exc:
            raise DeploymentError(
                f"aws resize: launch template {spec.launch_template_id} version {version} "
                f"({workers} worker(s), {instance_type or current_type}) was created, but the instance refresh "
                f"of {asg} failed: {exc}. Its instances still run version {spec.version}"
            ) from exc
        self._wait_capacity(colour, int(self._asg(colour)["DesiredCapacity"]))
        return self._pool_status(colour)

    @_aws_errors("deploy_candidate")
    def deploy_candidate(self, bento: str, replicas: int, workers: int, image: str | None = None) -> PoolStatus:
        """Run ``bento`` on ``replicas`` fresh instances of the colour that is not live; live traffic untouched."""
        state = self._listener_state()
        colour = other(state.live)
        if state.weights[colour] > 0:
            raise DeploymentError(
                f"the {colour} pool takes {state.weights[colour]} % of live traffic: finish that shift with "
                "shift(100) or undo it with shift(0) (`modelops rollback`) before deploying another candidate onto it"
            )
        image = image or self.image_for(bento)
        spec = self._pool_spec(colour)
        version = self._new_version(colour, spec, bento=bento, image=image, workers=workers)
        # Drain to zero, then scale up on the new version, instead of an instance refresh: the candidate takes no
        # traffic, so there is nothing to keep up while it is replaced, and the gate never measures a pool that
        # mixes the old and the new bento.
        if self._members(self._asg(colour)):
            self._scale(colour, 0)
        self._pin(colour, spec.launch_template_id, version)
        self._scale(colour, replicas)
        return self._pool_status(colour)

    @_aws_errors("remove_candidate")
    def remove_candidate(self) -> None:
        state = self._listener_state()
        colour = other(state.live)
        if state.weights[colour] > 0:
            raise DeploymentError(
                f"the {colour} candidate takes {state.weights[colour]} % of live traffic: move it back first "
                "(`modelops abort`, or shift(0)), or its share of requests would fail"
            )
        self._scale(colour, 0)

    @_aws_errors("abort")
    def abort(self) -> None:
        """The candidate's weight back to the live colour first (remove_candidate refuses while it has any), then its
        group to zero instances, each deregistered and drained."""
        state = self._listener_state()
        if state.weights[other(state.live)] > 0:
            self.shift(0)
        self.remove_candidate()

    def retire_previous(self) -> None:
        """After a full shift: the pool that lost the traffic goes to zero instances. Scale-in deregisters each
        instance first and waits out the target group's deregistration delay, so requests in flight finish."""
        self.remove_candidate()

    @_aws_errors("shift")
    def shift(self, weight: int) -> TargetStatus:
        """Send ``weight`` % of the listener's traffic to the candidate colour; 100 makes it live, and gives it the
        stack's declared scaling (a candidate ran with the floor and processes a gate left it): every promotion
        and rollback (deploy_candidate + shift(100)) ends with the live group autoscaling as declared."""
        check_weight(weight)
        declared = ScalingRange.from_outputs(self.outputs, "aws") if weight == 100 else None  # before any change
        state = self._listener_state()
        candidate = other(state.live)
        if weight > 0:
            self._require_healthy(candidate, "shift traffic to it")
            spec = self._pool_spec(candidate)
            if spec.image:
                # Before any traffic moves: the image's scan on push must be complete and free of blocking findings.
                self.images.check_scan(spec.image, spec.bento or candidate)
        self._set_weights({candidate: weight, state.live: 100 - weight}, state.stickiness)
        tags = {LIVE_TAG: candidate if weight == 100 else state.live}
        if weight == 100:
            tags[PREVIOUS_TAG] = state.live
        self._tag_listener(tags)
        if weight == 100:
            self.stack_alarms.follow_traffic(candidate)
            self._protect_image(candidate)
        if declared is not None:
            self._restore_scaling(candidate, declared, live=True)
        return self.status()

    def _protect_image(self, colour: Colour) -> None:
        """The image ``colour`` runs gets the protected tag the repository's lifecycle policy never expires."""
        spec = self._pool_spec(colour)
        if spec.image and "@sha256:" in spec.image and self.outputs.get(keys.REPOSITORY_URL):
            self.images.protect(spec.image, spec.bento.partition(":")[2])

    @_aws_errors("kill_replica")
    def kill_replica(self, pool: Pool = "candidate") -> KilledReplica:
        """Crash one in-service instance's bento abruptly (SIGKILL through SSM, else a forced stop): see
        modelops/targets/aws/faults.py for why not a graceful terminate."""
        colour = self._colour_of(pool)
        asg = self._asg(colour)
        members = {i["InstanceId"] for i in self._members(asg)}
        replicas = [r for r in self._replicas(colour, asg) if r.name in members]
        if not replicas:
            raise NotDeployedError(f"the {colour} pool ({self.asg_names[colour]}) has no instance to kill")
        victim = next((r for r in replicas if r.healthy), replicas[0])
        # Stamped right before the call: the failover suite measures from the moment the kill left (SSM delivers
        # it within seconds; that delay counts against the detection time, never in its favour).
        killed_at = self._wall_clock()
        how = faults.crash(self.ssm, self.ec2, victim.name)
        self.progress(f"killed the bento on {victim.name} ({how})")
        return KilledReplica(name=victim.name, url=victim.url, killed_at=killed_at)

    def cpu_seconds(self, pool: Pool = "candidate") -> float | None:
        """Not measurable from here: CloudWatch's CPUUtilization is a per-minute average of whole instances,
        too coarse for a suite of seconds."""
        return None

    def cpu_throttling(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """Not readable from here: an instance's CPU is the whole machine (no cgroup budget to hit), and CloudWatch
        has no throttling counter for it."""
        return None

    def cpu_budgets(self) -> CpuBudgets:
        return CpuBudgets(
            enforced=True,
            note="each replica is an EC2 instance: its CPU budget is the instance type's vCPUs",
        )

    def balancer_retries(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """An ALB does not retry a request on another target (it answers 502/504 instead), so it has no retries to
        count: a failed answer reaches the client, and the gate counts it there."""
        return None

    @_aws_errors("hold_scaling")
    def hold_scaling(self) -> None:
        """For the gate: the candidate's group stops reacting to its alarms (target tracking) and to AZ imbalance,
        and its instances, present and new, are protected from scale-in. :meth:`release_scaling` undoes it."""
        colour = other(self._listener_state().live)
        name = self.asg_names[colour]
        self.autoscaling.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=HELD_PROCESSES)
        self.autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, NewInstancesProtectedFromScaleIn=True)
        self._protect(colour, True)

    @_aws_errors("release_scaling")
    def release_scaling(self) -> None:
        """Both groups back to the stack's declared scaling: processes resumed, no scale-in protection, and
        MinSize/MaxSize as the stack declares them (stack output scaling_range).

        One exception, on purpose: a group that is not live and has no desired instances was emptied by
        remove_candidate/retire_previous (a rejected candidate, a retired pool); its MinSize stays 0, or AWS would
        boot the rejected bento again. Idempotent: it only ever sets the declared state."""
        declared = ScalingRange.from_outputs(self.outputs, "aws")
        live = self._listener_state().live
        for colour in COLOURS:
            self._restore_scaling(colour, declared, live=colour == live)
        # The stack's first image is live without a promotion: the first gate protects it too.
        self._protect_image(live)

    def _restore_scaling(self, colour: Colour, declared: ScalingRange, live: bool) -> None:
        name = self.asg_names[colour]
        asg = self._asg(colour)
        self.autoscaling.resume_processes(AutoScalingGroupName=name, ScalingProcesses=HELD_PROCESSES)
        protected = [i["InstanceId"] for i in asg.get("Instances", []) if i.get("ProtectedFromScaleIn")]
        if protected:
            self.autoscaling.set_instance_protection(
                AutoScalingGroupName=name, InstanceIds=protected, ProtectedFromScaleIn=False
            )
        emptied = not live and int(asg["DesiredCapacity"]) == 0
        low = 0 if emptied else declared.min
        desired = min(max(int(asg["DesiredCapacity"]), low), declared.max)
        self.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=low,
            MaxSize=declared.max,
            DesiredCapacity=desired,
            NewInstancesProtectedFromScaleIn=False,
        )

    # ---------------------------------------------------------------- images and sizing

    @_aws_errors("finding the bento's image")
    def image_for(self, bento: str) -> str:
        """The image reference, by digest, that runs ``bento``: the stack's own image for the stack's bento, else
        ``<repository>:<bento version>`` as stacks/aws/image.sh pushes it (tags there are immutable)."""
        if bento == self.outputs.get(keys.BENTO) and self.outputs.get(keys.IMAGE):
            return str(self.outputs[keys.IMAGE])
        bento_name(bento)  # a tag with a version, or a clear error
        return self.images.by_version(bento, bento.partition(":")[2])

    def _vcpus(self, instance_type: str) -> int | None:
        """The instance type's default vCPUs (each worker's thread pools get its share), None if EC2 does not say."""
        found = self.ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        return int(found[0]["VCpuInfo"]["DefaultVCpus"]) if found else None

    def instance_type_for(self, cpu: float, current_type: str) -> str:
        """The smallest non-metal size of ``current_type``'s family with at least ``cpu`` vCPUs."""
        if cpu <= 0:
            raise UsageError(f"cpu must be a positive number of vCPUs, got {cpu!r}")
        family = current_type.partition(".")[0]
        if not family:
            raise UsageError(f"cannot pick an instance size without a current instance type, got {current_type!r}")
        sizes: list[tuple[int, int, str]] = []
        paginator = self.ec2.get_paginator("describe_instance_types")
        for page in paginator.paginate(Filters=[{"Name": "instance-type", "Values": [f"{family}.*"]}]):
            for info in page["InstanceTypes"]:
                if info.get("BareMetal") or ".metal" in info["InstanceType"]:
                    continue
                sizes.append(
                    (
                        info["VCpuInfo"]["DefaultVCpus"],
                        info.get("MemoryInfo", {}).get("SizeInMiB", 0),
                        info["InstanceType"],
                    )
                )
        fitting = sorted(s for s in sizes if s[0] >= cpu)
        if not fitting:
            largest = max(sizes, default=(0, 0, "none"))
            raise UsageError(
                f"no {family} instance type has {cpu:g} vCPUs (largest: {largest[2]} with {largest[0]}): "
                "pass a smaller cpu or an explicit instance_type"
            )
        return fitting[0][2]

    # ---------------------------------------------------------------- internals: listener

    def _listener_state(self) -> ListenerState:
        listeners = self.elbv2.describe_listeners(ListenerArns=[self.listener_arn])["Listeners"]
        actions = [a for a in listeners[0]["DefaultActions"] if a["Type"] == "forward"]
        if not actions:
            raise DeploymentError(f"listener {self.listener_arn} has no forward default action: run `pulumi up -s aws`")
        action = actions[0]
        by_arn = {arn: colour for colour, arn in self.target_groups.items()}
        weights: dict[Colour, int] = dict.fromkeys(COLOURS, 0)
        forward = action.get("ForwardConfig")
        groups = forward["TargetGroups"] if forward else [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 100}]
        for group in groups:
            colour = by_arn.get(group["TargetGroupArn"])
            if colour is None:
                raise DeploymentError(
                    f"listener {self.listener_arn} forwards to {group['TargetGroupArn']}, which is neither the blue "
                    f"nor the green target group of these outputs: are the outputs from this stack?"
                )
            # A single target group without ForwardConfig weight takes everything (AWS's default weight is 1).
            weights[colour] = int(group.get("Weight", 100 if len(groups) == 1 else 1))
        tags = self._listener_tags()
        live = tags.get(LIVE_TAG)
        if live not in COLOURS:
            # No tag yet (as Pulumi made it): the colour with the larger share, ties to the stack's live colour.
            stack_live = self.outputs.get(keys.LIVE_COLOUR, "blue")
            live = max(COLOURS, key=lambda c: (weights[c], c == stack_live))
        previous = tags.get(PREVIOUS_TAG)
        return ListenerState(
            weights=weights,
            live=live,
            previous=previous if previous in COLOURS else None,
            stickiness=(forward or {}).get("TargetGroupStickinessConfig"),
        )

    def _listener_tags(self) -> dict[str, str]:
        described = self.elbv2.describe_tags(ResourceArns=[self.listener_arn])["TagDescriptions"]
        return {t["Key"]: t["Value"] for d in described for t in d.get("Tags", [])}

    def _tag_listener(self, tags: Mapping[str, str]) -> None:
        self.elbv2.add_tags(ResourceArns=[self.listener_arn], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def _set_weights(self, weights: dict[Colour, int], stickiness: dict[str, Any] | None) -> None:
        forward: dict[str, Any] = {
            "TargetGroups": [
                {"TargetGroupArn": self.target_groups[colour], "Weight": weights[colour]} for colour in COLOURS
            ]
        }
        if stickiness is not None:
            forward["TargetGroupStickinessConfig"] = stickiness
        self.elbv2.modify_listener(
            ListenerArn=self.listener_arn, DefaultActions=[{"Type": "forward", "ForwardConfig": forward}]
        )

    def _colour_of(self, pool: Pool) -> Colour:
        return colour_of(pool, self._listener_state().live)

    # ---------------------------------------------------------------- internals: pools

    def _asg(self, colour: Colour) -> dict[str, Any]:
        name = self.asg_names[colour]
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        if not groups:
            raise NotDeployedError(f"Auto Scaling Group {name} ({colour}) does not exist: run `pulumi up -s aws`")
        return groups[0]

    @staticmethod
    def _members(asg: dict[str, Any]) -> list[dict[str, Any]]:
        """The group's instances that are, or are becoming, part of the pool (not leaving it)."""
        return [i for i in asg.get("Instances", []) if not i["LifecycleState"].startswith(LEAVING + GONE)]

    def _port(self, colour: Colour) -> int:
        if colour not in self._ports:
            groups = self.elbv2.describe_target_groups(TargetGroupArns=[self.target_groups[colour]])["TargetGroups"]
            self._ports[colour] = int(groups[0].get("Port") or BENTO_PORT)
        return self._ports[colour]

    def _target_health(self, colour: Colour) -> dict[str, dict[str, Any]]:
        described = self.elbv2.describe_target_health(TargetGroupArn=self.target_groups[colour])
        return {d["Target"]["Id"]: d["TargetHealth"] for d in described["TargetHealthDescriptions"]}

    def _replicas(self, colour: Colour, asg: dict[str, Any], weight: int | None = None) -> list[ReplicaStatus]:
        """The pool's instances, with those leaving it (terminating, standby) until they are gone: a killed
        replica stays visible, unhealthy and out of rotation, while it drains.

        The ASG says which instances belong to the pool; the target group only says how healthy they are. It can
        still list instances that left the group (draining on AWS; moto keeps them "healthy"), which are not
        replicas."""
        instances = [i for i in asg.get("Instances", []) if not i["LifecycleState"].startswith(GONE)]
        if not instances:
            return []
        members = {i["InstanceId"] for i in self._members(asg)}
        ids = sorted(i["InstanceId"] for i in instances)
        health = self._target_health(colour)
        ips: dict[str, str] = {}
        for page in self.ec2.get_paginator("describe_instances").paginate(InstanceIds=ids):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    if instance.get("PrivateIpAddress"):
                        ips[instance["InstanceId"]] = instance["PrivateIpAddress"]
        port = self._port(colour)
        replicas = []
        for iid in ids:
            healthy = iid in members and health.get(iid, {}).get("State") == "healthy"
            replicas.append(
                ReplicaStatus(
                    name=iid,
                    url=f"http://{ips[iid]}:{port}" if iid in ips else "",
                    healthy=healthy,
                    # The ALB sends requests to healthy targets of the target groups the listener weights above 0.
                    in_rotation=None if weight is None else healthy and weight > 0,
                )
            )
        return replicas

    def _pool_spec(self, colour: Colour) -> PoolSpec:
        pinned = self._asg(colour).get("LaunchTemplate")
        if not pinned:
            raise DeploymentError(
                f"Auto Scaling Group {self.asg_names[colour]} has no launch template (a launch configuration or "
                "mixed instances policy?): the aws stack gives each colour one launch template"
            )
        return self._template_version(pinned["LaunchTemplateId"], str(pinned["Version"]))

    def _template_version(self, launch_template_id: str, version: str) -> PoolSpec:
        """What one version of a launch template runs (``version``: a number, or "$Default")."""
        versions = self.ec2.describe_launch_template_versions(LaunchTemplateId=launch_template_id, Versions=[version])[
            "LaunchTemplateVersions"
        ]
        found = versions[0]
        data = found.get("LaunchTemplateData", {})
        script = base64.b64decode(data.get("UserData") or "").decode(errors="replace")
        settings = boot_settings(script)
        image = settings.get("IMAGE", "")
        tags = {
            t["Key"]: t["Value"]
            for spec in data.get("TagSpecifications", [])
            if spec.get("ResourceType") == "instance"
            for t in spec.get("Tags", [])
        }
        # The boot script says what runs; a digest cannot say which bento it was built from, so versions made
        # here carry a tag, and the stack's own versions run the stack's image.
        bento = tags.get(BENTO_TAG) or (
            self.outputs.get(keys.BENTO, "") if image == self.outputs.get(keys.IMAGE) else ""
        )
        return PoolSpec(
            launch_template_id=found["LaunchTemplateId"],
            version=int(found["VersionNumber"]),
            data=data,
            script=script,
            bento=bento,
            image=image,
            workers=workers_from_override(settings.get(BENTOML_OVERRIDES_ENV)) or 0,
        )

    def _pool_status(self, colour: Colour, state: ListenerState | None = None) -> PoolStatus:
        state = state or self._listener_state()
        spec = self._pool_spec(colour)
        return PoolStatus(
            colour=colour,
            bento=spec.bento,
            url=self._pool_url(colour, state.weights[colour]),
            replicas=self._replicas(colour, self._asg(colour), state.weights[colour]),
            workers=spec.workers,
            weight=state.weights[colour],
        )

    def _pool_url(self, colour: Colour, weight: int) -> str:
        """The colour's own test listener (stack output pool_urls, made when modelops:aws.test_cidrs is set).
        Without one, the live listener is the only way in: it reaches this pool alone only while the pool has all
        the weight; otherwise the pool has no URL (each replica's private-IP URL works inside the VPC only)."""
        own = (self.outputs.get(keys.POOL_URLS) or {}).get(colour)
        if own:
            return str(own)
        return self.outputs[keys.ENDPOINT_URL] if weight == 100 else ""

    def _require_healthy(self, colour: Colour, purpose: str) -> None:
        if not any(r.healthy for r in self._replicas(colour, self._asg(colour))):
            raise DeploymentError(
                f"the {colour} pool ({self.asg_names[colour]}) has no healthy target, so it cannot {purpose}: "
                "deploy_candidate or scale it up first"
            )

    def _new_version(
        self,
        colour: Colour,
        source: PoolSpec,
        *,
        bento: str,
        image: str,
        workers: int,
        instance_type: str | None = None,
    ) -> int:
        """A new launch template version running ``bento``: the stack's current shape (the template's default
        version, which `pulumi up` advances: boot script, AMI, volumes) with the image, workers, thread pools, bento
        tag and instance type of this pool.

        The stack never rolls a group onto its new versions itself (the ASG ignores launchTemplate changes after
        creation): a changed shape reaches a pool with its next candidate, through the gate."""
        chosen_type = instance_type or source.data.get("InstanceType")
        source = self._template_version(source.launch_template_id, "$Default")
        user_data = retarget_boot_script(
            source.script, image, bento, workers, vcpus=self._vcpus(chosen_type) if chosen_type else None
        )
        tag_specs = [s for s in source.data.get("TagSpecifications", []) if s.get("ResourceType") != "instance"]
        instance_tags = [
            t
            for s in source.data.get("TagSpecifications", [])
            if s.get("ResourceType") == "instance"
            for t in s.get("Tags", [])
            if t["Key"] != BENTO_TAG
        ]
        tag_specs.append({"ResourceType": "instance", "Tags": [*instance_tags, {"Key": BENTO_TAG, "Value": bento}]})
        # SourceVersion alone would inherit the rest on AWS; the full source data is passed too so that the new
        # version is complete wherever inheritance is not implemented (moto 5.2 keeps only the given fields).
        data = as_request(self.ec2, source.data)
        data.update(UserData=base64.b64encode(user_data.encode()).decode(), TagSpecifications=tag_specs)
        if chosen_type:
            data["InstanceType"] = chosen_type
        created = self.ec2.create_launch_template_version(
            LaunchTemplateId=source.launch_template_id,
            SourceVersion=str(source.version),
            VersionDescription=f"modelops {colour}: {bento}, {workers} worker(s)"[:255],
            LaunchTemplateData=data,
        )
        return int(created["LaunchTemplateVersion"]["VersionNumber"])

    def _pin(self, colour: Colour, launch_template_id: str, version: int) -> None:
        # Pin the number, not $Latest: the ASG then says exactly which version its instances run.
        self.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=self.asg_names[colour],
            LaunchTemplate={"LaunchTemplateId": launch_template_id, "Version": str(version)},
        )

    def _scale(self, colour: Colour, replicas: int) -> None:
        """Exactly ``replicas`` in-service, healthy instances. A group held for a gate (hold_scaling) protects its
        instances from scale-in, which also blocks a scale-in asked for here: the protection is lifted for this
        change and put back on every instance afterwards."""
        held = bool(self._asg(colour).get("NewInstancesProtectedFromScaleIn"))
        if held:
            self._protect(colour, False)
        self._set_capacity(colour, replicas)
        self._wait_capacity(colour, replicas)
        if held:
            self._protect(colour, True)

    def _protect(self, colour: Colour, protected: bool) -> None:
        """Scale-in protection on or off for the group's instances (those not leaving it)."""
        members = [
            m["InstanceId"] for m in self._members(self._asg(colour)) if m.get("ProtectedFromScaleIn") != protected
        ]
        if members:
            self.autoscaling.set_instance_protection(
                AutoScalingGroupName=self.asg_names[colour], InstanceIds=members, ProtectedFromScaleIn=protected
            )

    def _set_capacity(self, colour: Colour, replicas: int) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise UsageError(f"replicas must be a whole number >= 0, got {replicas!r}")
        asg = self._asg(colour)
        name = self.asg_names[colour]
        if replicas > asg["MaxSize"]:
            raise UsageError(
                f"{replicas} replicas exceed the {colour} group's MaxSize {asg['MaxSize']} ({name}), the spending "
                "ceiling: raise modelops:deploy.max_replicas in stacks/Pulumi.aws.yaml and run `pulumi up -s aws`"
            )
        if replicas < asg["MinSize"]:
            # MinSize only stops the autoscaler from going lower; an explicit request for fewer lowers it.
            self.autoscaling.update_auto_scaling_group(
                AutoScalingGroupName=name, MinSize=replicas, DesiredCapacity=replicas
            )
        else:
            self.autoscaling.set_desired_capacity(
                AutoScalingGroupName=name, DesiredCapacity=replicas, HonorCooldown=False
            )

    def _wait_capacity(self, colour: Colour, replicas: int) -> None:
        """Block until the ASG has exactly ``replicas`` in-service instances and all of them are healthy targets.

        The autoscaling API has no waiter, so the group is polled with a deadline; target health then uses the
        elbv2 ``target_in_service`` waiter on exactly those instances."""
        name = self.asg_names[colour]
        started = time.monotonic()
        members: list[dict[str, Any]] = []

        def in_service() -> bool:
            members[:] = self._members(self._asg(colour))
            return len(members) == replicas and all(m["LifecycleState"] == "InService" for m in members)

        if not wait_until(in_service, self.timeout_s, self.poll_s):
            states = ", ".join(f"{m['InstanceId']} {m['LifecycleState']}" for m in members) or "no instances"
            raise DeploymentError(
                f"{name} did not reach {replicas} in-service instance(s) within {self.timeout_s:g} s ({states}): "
                f"see `aws autoscaling describe-scaling-activities --auto-scaling-group-name {name}`"
            )
        if replicas == 0:
            return
        port = self._port(colour)
        remaining = max(self.timeout_s - (time.monotonic() - started), self.poll_s)
        try:
            self.elbv2.get_waiter("target_in_service").wait(
                TargetGroupArn=self.target_groups[colour],
                Targets=[{"Id": m["InstanceId"], "Port": port} for m in members],
                WaiterConfig={"Delay": self.poll_s, "MaxAttempts": max(1, math.ceil(remaining / self.poll_s))},
            )
        except WaiterError as exc:
            health = self._target_health(colour)
            unhealthy = ", ".join(
                f"{m['InstanceId']} {health.get(m['InstanceId'], {}).get('State', 'not registered')}"
                f" ({health.get(m['InstanceId'], {}).get('Reason', '-')})"
                for m in members
                if health.get(m["InstanceId"], {}).get("State") != "healthy"
            )
            raise DeploymentError(
                f"the {colour} target group did not report {replicas} healthy target(s) within "
                f"{self.timeout_s:g} s: {unhealthy or exc}. Check the instances' boot logs and /readyz"
            ) from exc
