"""Who owns what after `pulumi up`, across a simulated `pulumi up --refresh`: the driver changes fields at run time
(a rejected colour emptied to MinSize 0, the live colour recorded in listener tags); a refresh reads them back, and
the following `up` writes every declared, not ignored field back to the program's value. The simulation applies
exactly that to a moto stack the driver has worked on: the rendered program's declared values for every field it
does not list in ``ignore_changes``. Pulumi's engine itself never runs here (no Pulumi CLI on these machines).
"""

from __future__ import annotations

from typing import Any

from stacks import outputs as keys
from stacks.names import COLOURS, LIVE_TAG, PREVIOUS_TAG
from tests.stacks.aws.types import ASG, LISTENER

# ASG inputs of the program -> UpdateAutoScalingGroup parameters.
ASG_FIELDS = {"minSize": "MinSize", "maxSize": "MaxSize", "desiredCapacity": "DesiredCapacity"}


def pulumi_up_after_refresh(rendering: Any, stack: Any) -> dict[str, Any]:
    """Write the program's declared values back where it does not ignore changes; returns what was written."""
    written: dict[str, Any] = {}
    for colour in COLOURS:
        asg = rendering.one(ASG, f"{colour}-asg")
        changes = {api: asg["inputs"][field] for field, api in ASG_FIELDS.items() if field not in asg["ignore_changes"]}
        if changes:
            stack.autoscaling.update_auto_scaling_group(
                AutoScalingGroupName=stack.outputs[keys.ASG_NAMES][colour], **changes
            )
            written[colour] = changes
    listener = rendering.one(LISTENER, "lb-live")
    if "tags" not in listener["ignore_changes"]:
        arn = stack.outputs[keys.LISTENER_ARN]
        declared = listener["inputs"].get("tags") or {}
        extra = [k for k in stack.listener_tags() if k not in declared]
        if extra:
            stack.elbv2.remove_tags(ResourceArns=[arn], TagKeys=extra)
        written["listener_tags"] = declared
    return written


def test_a_refresh_and_up_neither_boot_a_rejected_colour_nor_forget_the_live_colour(
    aws_rendering, aws_target, aws_stack
) -> None:
    aws_target.deploy_candidate("wine_classifier_service:v2", replicas=2, workers=2)
    aws_target.shift(100)  # green live, recorded in the listener's tags
    aws_target.retire_previous()  # blue emptied: MinSize 0
    assert aws_stack.asg("blue")["MinSize"] == 0 and aws_stack.in_service("blue") == []

    written = pulumi_up_after_refresh(aws_rendering, aws_stack)

    assert written == {}, f"`pulumi up` would write back fields the driver owns: {written}"
    assert aws_stack.asg("blue")["MinSize"] == 0 and aws_stack.in_service("blue") == []
    assert aws_stack.listener_tags()[LIVE_TAG] == "green" and aws_stack.listener_tags()[PREVIOUS_TAG] == "blue"
    assert aws_target.status().live == "green"


def test_the_simulation_would_show_what_a_program_without_those_ignores_does(aws_rendering, aws_target, aws_stack):
    """Not vacuous: with minSize declared and tags not ignored (the program before), the emptied colour boots the
    old bento again and the driver's record of the live colour is gone."""
    asg = aws_rendering.one(ASG, "blue-asg")
    listener = aws_rendering.one(LISTENER, "lb-live")
    old = type(aws_rendering)(aws_rendering.directory, {**aws_rendering.record})
    old.record["resources"] = [
        {**r, "ignore_changes": ["desiredCapacity", "launchTemplate"]} if r is asg
        else {**r, "ignore_changes": ["defaultActions[0].forward"]} if r is listener
        else r
        for r in aws_rendering.resources
    ]  # fmt: skip
    aws_target.deploy_candidate("wine_classifier_service:v2", replicas=2, workers=2)
    aws_target.shift(100)
    aws_target.retire_previous()

    pulumi_up_after_refresh(old, aws_stack)

    assert aws_stack.asg("blue")["MinSize"] == 2 and len(aws_stack.in_service("blue")) == 2
    assert LIVE_TAG not in aws_stack.listener_tags()
