"""The promotion gate's capacity plan, as the stacks read it: only from the run that promoted what is live here.

A gate run writes ``reports/<run-id>/summary.json`` whatever its verdict, and ``reports/latest`` points at the
newest run — a rejected candidate, another stack's run or a local 0.5-core replica included. Sizing a fleet from
that would size it from a guess. So the kind and aws programs read the promotion history of *their own* stack
(``.work/<stack>/history.json``, written by modelops/promotion.py), take the live version (the last entry with
state ``done``), and use a plan only when that entry is a promotion whose summary says ``verdict: promote``,
``promoted: true``, this stack and this target. Anything else keeps the stack's configured defaults, and the
program says why (``pulumi.log.warn``).

The plan's figures are per vCPU, so a plan measured at one CPU budget sizes any instance or pod:

- aws: ASG target tracking (ALBRequestCountPerTarget, per minute) = ``rps_per_vcpu_at_slo`` x instance vCPUs x
  :data:`HEADROOM` x 60
- kind: HPA CPU utilization target (%) = 100 x :data:`HEADROOM` x ``cpu_seconds_per_request`` x
  ``rps_per_vcpu_at_slo`` — the CPU a pod uses, relative to its CPU request, when it serves 70 % of what it can
  serve at the SLO (the pod's CPU request cancels out).

This module reads JSON directly (``stacks`` never imports ``modelops``), creates no resources and needs no Pulumi
engine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks.names import PROJECT_ROOT, history_path

CAPACITY_PLAN = "capacity_plan"
RPS_PER_VCPU_AT_SLO = "rps_per_vcpu_at_slo"  # good req/s per vCPU of CPU budget at the SLO
CPU_SECONDS_PER_REQUEST = "cpu_seconds_per_request"  # measured CPU seconds per request
# Written by the gate for people reading the summary; the stacks derive their own values from the per-vCPU
# figures above (a replica's figure is only valid at the budget it was measured with).
ASG_TARGET_REQUESTS = "asg_target_requests_per_target_per_minute"
HPA_TARGET_CPU = "hpa_target_cpu_utilization"

HEADROOM = 0.7  # scale out at 70 % of measured capacity: room for the minutes a new instance/pod needs
HPA_MIN_UTILIZATION = 1  # Kubernetes accepts any averageUtilization >= 1 (it may exceed 100: it is of the request)


class CapacityPlanError(ValueError):
    """A promotion history or gate summary exists but cannot be read. The message names the file and the fix."""


@dataclass(frozen=True)
class PromotedPlan:
    """The capacity plan of the gate run that promoted the live version of this stack."""

    summary: Path
    bento: str
    rps_per_vcpu_at_slo: float | None
    cpu_seconds_per_request: float | None


@dataclass(frozen=True)
class NoPlan:
    """Why the stack keeps its configured defaults."""

    reason: str


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CapacityPlanError(f"{path} ({what}) is not JSON ({exc}): restore it or delete it") from None


def _figure(plan: dict[str, Any], field: str, path: Path) -> float | None:
    value = plan.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise CapacityPlanError(
            f"{path}: {CAPACITY_PLAN}.{field} must be a positive number or null, got {value!r}: rerun the gate"
        )
    return float(value)


def promoted_plan(
    stack: str, target: str, work_dir: Path | None = None, root: Path = PROJECT_ROOT
) -> PromotedPlan | NoPlan:
    """The plan of the promotion that made this stack's live version, or why there is none.

    ``work_dir`` holds ``<stack>/history.json`` (default: the project's .work); relative summary paths in the
    history start at ``root``. Raises :class:`CapacityPlanError` for a file that exists but is not JSON or a
    figure that is not a positive number."""
    history = history_path(stack, work_dir)
    if not history.is_file():
        return NoPlan(f"no promotion history at {history}: nothing has been promoted on stack {stack!r} yet")
    document = _read_json(history, "promotion history")
    entries = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise CapacityPlanError(f"{history} has no 'entries' list: it is not a modelops promotion history")
    live = next((e for e in reversed(entries) if isinstance(e, dict) and e.get("state") == "done"), None)
    if live is None:
        return NoPlan(f"{history} records no completed promotion (no entry with state 'done')")
    label = f"the live version {live.get('bento')!r} (history entry {live.get('id')})"
    if live.get("action") != "promote":
        return NoPlan(f"{label} came from {live.get('action')!r}, not from a gate promotion")
    if not live.get("summary"):
        return NoPlan(f"{label} records no gate summary")
    summary = Path(str(live["summary"]))
    summary = summary if summary.is_absolute() else root / summary
    if not summary.is_file():
        return NoPlan(f"the gate summary of {label}, {summary}, no longer exists")
    report = _read_json(summary, "gate summary")
    if not isinstance(report, dict):
        raise CapacityPlanError(f"{summary} must hold a JSON object (a gate summary)")
    checks = (
        ("verdict", report.get("verdict") == "promote", "promote"),
        ("promoted", report.get("promoted") is True, True),
        ("stack", report.get("stack") == stack, stack),
        ("target", report.get("target") == target, target),
    )
    wrong = [f"{key} is {report.get(key)!r}, not {want!r}" for key, ok, want in checks if not ok]
    if wrong:
        return NoPlan(f"the gate summary {summary} of {label} cannot size this stack: {'; '.join(wrong)}")
    plan = report.get(CAPACITY_PLAN)
    if not isinstance(plan, dict):
        return NoPlan(f"the gate summary {summary} of {label} has no {CAPACITY_PLAN}")
    return PromotedPlan(
        summary=summary,
        bento=str(live.get("bento") or ""),
        rps_per_vcpu_at_slo=_figure(plan, RPS_PER_VCPU_AT_SLO, summary),
        cpu_seconds_per_request=_figure(plan, CPU_SECONDS_PER_REQUEST, summary),
    )


def asg_target_requests_per_minute(rps_per_vcpu_at_slo: float, vcpus: float) -> float:
    """ALBRequestCountPerTarget target value: requests per instance per minute at 70 % of measured capacity."""
    return round(rps_per_vcpu_at_slo * vcpus * HEADROOM * 60, 1)


def hpa_cpu_utilization(cpu_seconds_per_request: float, rps_per_vcpu_at_slo: float) -> float:
    """HPA averageUtilization (%, of the CPU request) of a pod serving 70 % of its capacity at the SLO."""
    return 100 * HEADROOM * cpu_seconds_per_request * rps_per_vcpu_at_slo
