"""Every scalar input of every AWS resource has the type pulumi-aws declares for it.

The mocks accept anything, so a string where the provider wants an integer (or the reverse) would only fail at
`pulumi up`. The SDK's own argument annotations are the reference here.
"""

from __future__ import annotations

import importlib
import inspect
import typing

import pytest

from modelops.render import snake

SCALARS = {int, float, str, bool}


def declared_scalar(type_token: str, prop: str) -> type | None:
    """The scalar Python type pulumi-aws declares for ``prop`` of the resource ``type_token`` (None: not scalar)."""
    _, path, cls = type_token.split(":")  # aws:lb/targetGroup:TargetGroup
    module, resource = path.split("/")
    source = importlib.import_module(f"pulumi_aws.{module}.{snake(resource)}")
    # Where a nested input type already has the name <Resource>Args, the resource's own is <Resource>InitArgs.
    args = getattr(source, f"{cls}InitArgs", None) or getattr(source, f"{cls}Args")
    parameter = inspect.signature(args.__init__).parameters.get(snake(prop))
    assert parameter is not None, f"{type_token} has no input {prop!r} ({snake(prop)})"
    first = typing.get_args(parameter.annotation)[0] if typing.get_args(parameter.annotation) else parameter.annotation
    return first if first in SCALARS else None


def matches(value: object, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # importing pulumi_aws.s3 warns about its V2 aliases
@pytest.mark.parametrize("rendering", ["aws_rendering", "aws_planned", "aws_test_listeners"])
def test_scalar_inputs_have_the_declared_types(request, rendering) -> None:
    stack = request.getfixturevalue(rendering)
    checked, wrong = 0, []
    for resource in stack.resources:
        if not resource["type"].startswith("aws:"):
            continue
        for prop, value in resource["inputs"].items():
            expected = declared_scalar(resource["type"], prop)
            if expected is not None:
                checked += 1
                if not matches(value, expected):
                    wrong.append(f"{resource['name']}.{prop}: {value!r} is not {expected.__name__}")
    assert not wrong, wrong
    assert checked > 100, f"only {checked} scalar inputs checked"
