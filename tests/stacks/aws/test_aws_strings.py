"""Every string argument of the rendered aws program that AWS constrains (names, descriptions, tags) meets the
documented character set and length: mocks accept anything, AWS answers InvalidParameterValue at `pulumi up`.
All renderings: the shipped file, the planned variant (HTTPS, test listeners, 3 AZs, budget), test listeners over
HTTP, and the GPU fleet."""

from __future__ import annotations

import pytest

from tests.stacks.aws.aws_strings import RULES, check, violations
from tests.stacks.aws.types import INGRESS

RENDERINGS = ["aws_rendering", "aws_planned", "aws_test_listeners", "aws_gpu"]


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_every_constrained_aws_string_meets_its_documented_character_set(request, rendering) -> None:
    stack = request.getfixturevalue(rendering)
    found = violations(stack.resources)
    assert not found, "\n".join(str(v) for v in found)


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_the_check_covers_every_rendered_resource_type_with_a_documented_rule(request, rendering) -> None:
    """A rule for a type the program no longer makes checks nothing: each rendering makes most of them."""
    stack = request.getfixturevalue(rendering)
    rendered = {r["type"] for r in stack.resources}
    covered = {type_ for type_, _ in RULES} & rendered
    assert len(covered) >= 15, sorted(covered)


def test_an_apostrophe_in_a_security_group_rule_description_is_caught() -> None:
    rule = {
        "type": INGRESS,
        "name": "lb-alb-in-test-blue-203-0-113-7-32",
        "inputs": {"description": "blue pool test listener, from the promotion gate's addresses"},
    }
    (violation,) = check(rule)
    assert violation.field == "description" and '["\'"]' in violation.why


@pytest.mark.parametrize(
    ("type_", "inputs", "field"),
    [
        ("aws:lb/targetGroup:TargetGroup", {"name": "modelops_blue"}, "name"),
        ("aws:ec2/launchTemplate:LaunchTemplate", {"name": "lt"}, "name"),
        ("aws:ec2/vpc:Vpc", {"tags": {"aws:owner": "me"}}, "tags"),
        ("aws:ec2/vpc:Vpc", {"tags": {"Name": "modelops (blue) #1"}}, "tags.value"),
        ("aws:iam/role:Role", {"name": "modelops role"}, "name"),
    ],
)
def test_other_documented_limits_are_caught(type_, inputs, field) -> None:
    found = check({"type": type_, "name": "x", "inputs": inputs})
    assert [v.field for v in found] == [field], found


def test_a_string_within_the_rules_passes() -> None:
    ok = {
        "type": INGRESS,
        "name": "lb-alb-in-80",
        "inputs": {"description": "blue pool test listener, from the promotion gate addresses (test_cidrs)"},
    }
    assert check(ok) == []
