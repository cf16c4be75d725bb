"""summary.json: the one model of a gate run. Written in one place; the HTML report and the exit status are derived
from it, never computed twice."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from modelops.errors import ExitStatus
from modelops.state import write_atomic

Verdict = Literal["promote", "reject", "inconclusive"]
SuiteStatus = Literal["pass", "fail", "inconclusive", "skipped"]

# The order suites run in, and which exit status a failure of each maps to (the first failure decides).
SUITES = ("smoke", "slo", "horizontal", "vertical", "failover", "regression")
FAILED_STATUS = {
    "smoke": ExitStatus.SMOKE_FAILED,
    "slo": ExitStatus.SLO_FAILED,
    "horizontal": ExitStatus.HORIZONTAL_FAILED,
    "vertical": ExitStatus.VERTICAL_FAILED,
    "failover": ExitStatus.FAILOVER_FAILED,
    "regression": ExitStatus.REGRESSION_FAILED,
}
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


class Step(BaseModel):
    users: int
    rps: float
    p95_ms: float | None
    errors: int


class SuiteResult(BaseModel):
    status: SuiteStatus
    reason: str
    rps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_ratio: float | None = None
    requests: int = 0
    thresholds: dict[str, float] = {}
    measured: dict[str, float | None] = {}  # suite-specific figures (efficiency, ratio, detection time …)
    locust_reports: list[str] = []  # Locust's own HTML reports, relative to the run folder
    timeline: list[dict] = []  # [{t, rps, p95_ms, users, label}] for the plots
    steps: dict[str, list[Step]] = {}  # step-load curves by configuration (e.g. "replicas=2")


class HorizontalScaling(BaseModel):
    replicas: list[int] = []
    rps: list[float] = []
    efficiency: list[float] = []


class VerticalScaling(BaseModel):
    workers: list[int] = []
    rps: list[float] = []
    ratio: float | None = None


class Scaling(BaseModel):
    horizontal: HorizontalScaling = HorizontalScaling()
    vertical: VerticalScaling = VerticalScaling()


class CapacityPlan(BaseModel):
    rps_per_replica_at_slo: float | None = None
    recommended_min_replicas: int | None = None
    recommended_max_replicas: int | None = None
    asg_target_requests_per_target_per_minute: float | None = None
    hpa_target_cpu_utilization: int | None = None
    target_rps: float | None = None
    cpu_per_vcpu_rps: float | None = Field(None, description="req/s per vCPU of budget at the SLO, for comparing")
    notes: list[str] = []


class Summary(BaseModel):
    run_id: str
    verdict: Verdict
    exit_status: int
    reason: str
    candidate: str
    baseline: str | None  # the live bento the candidate is compared with
    baseline_summary: str | None = None  # the summary recorded when the baseline was promoted
    target: str
    stack: str
    started: float
    finished: float
    suites: dict[str, SuiteResult]
    scaling: Scaling = Scaling()
    capacity_plan: CapacityPlan = CapacityPlan()
    settings: dict = {}
    cpu_budgets: str = ""
    promoted: bool = False


def decide(suites: dict[str, SuiteResult]) -> tuple[Verdict, ExitStatus, str]:
    """The verdict, its exit status and the reason, from the suites' outcomes (first failure in SUITES order)."""
    for name in SUITES:
        suite = suites.get(name)
        if suite is not None and suite.status == "fail":
            return "reject", FAILED_STATUS[name], f"{name}: {suite.reason}"
    unsure = [name for name in SUITES if name in suites and suites[name].status == "inconclusive"]
    if unsure:
        reasons = "; ".join(f"{n}: {suites[n].reason}" for n in unsure)
        return "inconclusive", ExitStatus.INCONCLUSIVE, reasons
    return "promote", ExitStatus.OK, "every suite passed"


def write(run_dir: Path, summary: Summary) -> Path:
    path = run_dir / SUMMARY_FILE
    write_atomic(path, summary.model_dump_json(indent=2) + "\n")
    return path


def read(path: Path) -> Summary:
    return Summary.model_validate_json(path.read_text())


def point_latest(reports: Path, run_dir: Path) -> None:
    """Make reports/latest point at ``run_dir`` (replaced atomically)."""
    link = reports / "latest"
    tmp = reports / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)
