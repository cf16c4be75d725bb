"""Promotion histories and gate summaries as modelops writes them, for the capacity-plan tests.

The shapes follow modelops/promotion.py (History/Entry) and the gate summary's top-level fields; the stacks read
them as plain JSON (stacks never import modelops)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stacks.capacity import CAPACITY_PLAN, CPU_SECONDS_PER_REQUEST, RPS_PER_VCPU_AT_SLO
from stacks.names import history_path

# 50 good req/s per vCPU at the SLO, 16 ms of CPU per request: a pod at 70 % of capacity uses 56 % of its request.
PLAN = {RPS_PER_VCPU_AT_SLO: 50.0, CPU_SECONDS_PER_REQUEST: 0.016}
PLANNED_HPA_TARGET = 56  # 100 x 0.7 x 0.016 x 50
PLANNED_ASG_TARGET_C7I_LARGE = 4200.0  # 50 x 2 vCPUs x 0.7 x 60


def gate_summary(stack: str, target: str, /, **changes: Any) -> dict[str, Any]:
    return {
        "run_id": "20261201-120000",
        "stack": stack,
        "target": target,
        "verdict": "promote",
        "promoted": True,
        CAPACITY_PLAN: dict(PLAN),
        **changes,
    }


def write_history(
    work_dir: Path,
    stack: str,
    summary: dict[str, Any] | None,
    *,
    action: str = "promote",
    state: str = "done",
    later: list[dict[str, Any]] | None = None,
) -> Path:
    """``work_dir/<stack>/history.json`` whose last entry is ``action``/``state`` and points at ``summary`` (written
    beside it), after one earlier `up`; ``later`` entries are appended as given."""
    path = history_path(stack, work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary_path = None
    if summary is not None:
        summary_file = path.parent / "reports" / "summary.json"
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(summary))
        summary_path = str(summary_file)
    entries = [
        {"id": 1, "time": 1.0, "action": "up", "bento": "svc:v1", "previous": None, "summary": None,
         "state": "done", "note": ""},
        {"id": 2, "time": 2.0, "action": action, "bento": "svc:v2", "previous": "svc:v1", "summary": summary_path,
         "state": state, "note": ""},
        *(later or []),
    ]  # fmt: skip
    path.write_text(json.dumps({"entries": entries}))
    return path
