"""What the kind and aws drivers share: API errors turned into DeploymentErrors, the per-colour stack outputs, the
pool → colour mapping, the weight check and the declared scaling range."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from modelops.errors import DeploymentError, UsageError
from modelops.targets.base import Colour, Pool, other
from stacks import outputs as keys
from stacks.names import COLOURS

F = TypeVar("F", bound=Callable[..., Any])


def api_errors(describe: Callable[[str, Exception], str | None]) -> Callable[[str], Callable[[F], F]]:
    """A decorator factory: ``@errors("scale")`` turns an exception that ``describe(action, exc)`` recognises (it
    returns the message) into a DeploymentError saying what was being done; anything else propagates unchanged."""

    def for_action(action: str) -> Callable[[F], F]:
        def decorate(method: F) -> F:
            @functools.wraps(method)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return method(*args, **kwargs)
                except Exception as exc:
                    message = None if isinstance(exc, DeploymentError | UsageError) else describe(action, exc)
                    if message is None:
                        raise
                    raise DeploymentError(message) from exc

            return wrapper  # type: ignore[return-value]

        return decorate

    return for_action


def by_colour(outputs: dict[str, Any], key: str) -> dict[Colour, str]:
    """A ``{"blue": ..., "green": ...}`` stack output, both colours present."""
    value = outputs.get(key)
    if not isinstance(value, dict) or any(not value.get(colour) for colour in COLOURS):
        raise UsageError(f"stack output {key!r} must map 'blue' and 'green' to names/ARNs, got {value!r}")
    return {colour: str(value[colour]) for colour in COLOURS}


def colour_of(pool: Pool, live: Colour) -> Colour:
    """The colour of ``pool`` when ``live`` takes the traffic."""
    if pool not in ("live", "candidate"):
        raise UsageError(f"pool must be 'live' or 'candidate', got {pool!r}")
    return live if pool == "live" else other(live)


def check_weight(weight: object) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise UsageError(f"weight must be an integer percentage from 0 to 100, got {weight!r}")
    return weight


@dataclass(frozen=True)
class ScalingRange:
    """Each colour's autoscaling range as the stack declares it (stack output ``scaling_range``)."""

    min: int
    max: int

    @classmethod
    def from_outputs(cls, outputs: dict[str, Any], stack: str) -> ScalingRange:
        value = outputs.get(keys.SCALING_RANGE)
        try:
            low, high = int(value["min"]), int(value["max"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise UsageError(
                f"the stack outputs have no {keys.SCALING_RANGE!r} ({{'min': n, 'max': n}}), so the autoscaling "
                f"range to restore after a gate is unknown: run `pulumi up -s {stack}`, then "
                f"`pulumi stack output --json -s {stack} > outputs.json` and pass that file"
            ) from None
        if not 0 <= low <= high:
            raise UsageError(f"stack output {keys.SCALING_RANGE!r} must have 0 <= min <= max, got {value!r}")
        return cls(low, high)
