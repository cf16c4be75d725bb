"""The promotion gate's capacity plan, as the stacks read it.

A gate run writes ``reports/<run-id>/summary.json`` (``reports/latest`` points at the newest). When the candidate
was measured well enough to plan capacity, the summary holds a ``capacity_plan`` object; the stacks size their
autoscalers from it:

- aws: ``capacity_plan.asg_target_requests_per_target_per_minute`` → the ASG target tracking value
- kind: ``capacity_plan.hpa_target_cpu_utilization`` → the HPA CPU utilization target (%)

No summary, or a summary without a plan (a rejected or inconclusive run), means "use the stack setting". A plan
that is present but unreadable is an error: silently ignoring what the gate measured would size the fleet from a
guess. Importing this module creates no resources and needs no Pulumi engine.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CAPACITY_PLAN = "capacity_plan"
ASG_TARGET_REQUESTS = "asg_target_requests_per_target_per_minute"
HPA_TARGET_CPU = "hpa_target_cpu_utilization"


class CapacityPlanError(ValueError):
    """The gate summary exists but its capacity plan cannot be used. The message names the file and the field."""


def capacity_plan_value(summary: str | Path, field: str, root: Path = PROJECT_ROOT) -> float | None:
    """``capacity_plan.<field>`` of the gate summary at ``summary`` (relative paths start at ``root``).

    Returns None when the file, the plan or the field is absent; raises :class:`CapacityPlanError` when the file
    is not JSON or the value is not a positive finite number.
    """
    path = Path(summary)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CapacityPlanError(f"{path} is not JSON ({exc}): rerun the gate or delete the file") from None
    plan = document.get(CAPACITY_PLAN) if isinstance(document, dict) else None
    if plan is None:
        return None
    if not isinstance(plan, dict):
        raise CapacityPlanError(f"{path}: {CAPACITY_PLAN} must be an object, got {type(plan).__name__}")
    value = plan.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise CapacityPlanError(
            f"{path}: {CAPACITY_PLAN}.{field} must be a positive number, got {value!r}: rerun the gate"
        )
    return float(value)
