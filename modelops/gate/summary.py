"""summary.json: the one model of a gate run. Written in one place; the HTML report and the exit status are derived
from it, never computed twice."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from modelops.errors import ExitStatus
from modelops.monitor.resources import ReplicaUsage
from modelops.state import write_atomic
from stacks.config import GATE_SUITES

Verdict = Literal["promote", "reject", "inconclusive"]
SuiteStatus = Literal["pass", "fail", "inconclusive", "skipped"]

# The order suites run in, and which exit status a failure of each maps to (the first failure decides).
SUITES = GATE_SUITES
# Required whenever the live version came through the gate: the candidate is compared with it.
BASELINE_SUITE = "regression"
# Required whenever the live version has logged production traffic: the candidate is judged on it.
QUALITY_SUITE = "quality"
FAILED_STATUS = {
    "smoke": ExitStatus.SMOKE_FAILED,
    "quality": ExitStatus.QUALITY_FAILED,
    "slo": ExitStatus.SLO_FAILED,
    "horizontal": ExitStatus.HORIZONTAL_FAILED,
    "vertical": ExitStatus.VERTICAL_FAILED,
    "failover": ExitStatus.FAILOVER_FAILED,
    "robustness": ExitStatus.ROBUSTNESS_FAILED,
    "regression": ExitStatus.REGRESSION_FAILED,
    "autoscale": ExitStatus.AUTOSCALE_FAILED,
    "plan": ExitStatus.PLAN_FAILED,
    "soak": ExitStatus.SOAK_FAILED,
}
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


class Step(BaseModel):
    """One step of a step load, from its own window (its first second dropped while users start)."""

    users: int
    rps: float  # good answers per second: failed requests are never capacity
    p95_ms: float | None
    errors: int
    requests: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    generator_load: float | None = None  # the busiest Locust process: CPU used + time waiting for one, in cores
    generator_wait: float | None = None  # share of time the most delayed Locust process waited for a CPU
    machine_idle: float | None = None  # idle cores of the machine during the step
    throttled: float | None = None  # share of CPU periods in which the pool's replicas hit their budget
    distorted: str | None = None  # why this step measured the machine or the generator rather than the candidate

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class CpuWindow(BaseModel):
    """The load generator's and the machine's CPU over a suite or a step (means of 0.5-s samples)."""

    label: str
    generator_load: float | None  # busiest Locust process: (CPU + run-queue wait) / wall time, cores
    generator_cpu: float | None  # cores used by all Locust processes together
    generator_wait: float | None = None  # share of time the most delayed Locust process waited for a CPU
    machine_idle: float | None  # cores left idle
    processes: int = 1  # Locust processes that generated the load


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
    timeline: list[dict] = []  # [{t, rps, p95_ms, label}] per second of the measured part, for the plots
    steps: dict[str, list[Step]] = {}  # step-load curves by configuration (e.g. "replicas=2")
    cpu: list[CpuWindow] = []  # the generator's and the machine's CPU while the suite ran
    # Scaling suites: every round's curves by configuration (round 1: the whole step plans; later rounds: the compared
    # step only, on fresh processes), the figures each ratio's interval was computed from.
    rounds: list[dict[str, list[Step]]] = []
    resources: list[ReplicaUsage] = []  # memory and open files of each candidate replica process while it ran
    # Scaling suites: per curve in ``steps``, how many of its steps (from the first) met the SLO — its usable part
    # (capacity.read_curve). The report draws those apart from the rest and never judges a step itself.
    within_slo: dict[str, int] = {}


class HorizontalScaling(BaseModel):
    replicas: list[int] = []
    rps: list[float] = []  # clean capacity of each curve (good req/s)
    efficiency: list[float | None] = []  # None: not measured (no clean step, or too few usable rounds)
    exact: list[bool] = []  # False: the curve never reached its knee, its capacity is a lower bound
    # each efficiency's interval over the rounds ([low, high]; empty for the first configuration, or when unknown)
    efficiency_interval: list[list[float]] = []


class VerticalScaling(BaseModel):
    workers: list[int] = []
    rps: list[float] = []
    ratio: float | None = None
    exact: list[bool] = []
    ratio_interval: list[float] = []  # [low, high] of ``ratio`` over the rounds


class Scaling(BaseModel):
    horizontal: HorizontalScaling = HorizontalScaling()
    vertical: VerticalScaling = VerticalScaling()


class CapacityPlan(BaseModel):
    """Sizing from the 1-replica curve. kind/aws stacks read it only from a promoted run on their own stack, as
    req/s per vCPU scaled by their pod/instance size (stacks/capacity.py)."""

    rps_per_replica_at_slo: float | None = None
    recommended_min_replicas: int | None = None
    recommended_max_replicas: int | None = None
    asg_target_requests_per_target_per_minute: float | None = None
    hpa_target_cpu_utilization: int | None = None
    target_rps: float | None = None
    rps_per_vcpu_at_slo: float | None = Field(None, description="good req/s per vCPU of budget at the SLO")
    cpu_seconds_per_request: float | None = Field(None, description="CPU seconds a request cost the replicas")
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
    required_suites: list[str] = []  # what a promotion needed; a run missing any of them never promotes
    promoted: bool = False


def decide(suites: dict[str, SuiteResult], required: list[str] | tuple[str, ...]) -> tuple[Verdict, ExitStatus, str]:
    """The verdict, its exit status and the reason.

    A failed suite rejects (the first in SUITES order gives the exit status). Otherwise every required suite must
    have passed: one missing, skipped or inconclusive makes the run inconclusive — no evidence, no promotion.
    """
    for name in SUITES:
        suite = suites.get(name)
        if suite is not None and suite.status == "fail":
            return "reject", FAILED_STATUS[name], f"{name}: {suite.reason}"
    if not required:
        return "inconclusive", ExitStatus.INCONCLUSIVE, "no suite is required: nothing can justify a promotion"
    reasons = []
    missing = [name for name in required if name not in suites]
    if missing:
        reasons.append(f"partial run: {', '.join(missing)} did not run")
    for name in SUITES:
        suite = suites.get(name)
        if suite is not None and name in required and suite.status in ("inconclusive", "skipped"):
            reasons.append(f"{name}: {suite.status}: {suite.reason}")
    if reasons:
        return "inconclusive", ExitStatus.INCONCLUSIVE, "; ".join(reasons)
    return "promote", ExitStatus.OK, f"every required suite passed ({', '.join(required)})"


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
