"""Gate runs for the report's tests, made as a gate makes them: measured steps go through the judge (the same
functions a run calls), the summary is assembled as run.py assembles it, and canary.json is what modelops/canary.py
writes. The figures are known, so each chart can be checked against them."""

from __future__ import annotations

import math
from pathlib import Path

from modelops import canary
from modelops.canary_stats import Side
from modelops.errors import ExitStatus
from modelops.gate import judge
from modelops.gate.capacity import read_curve
from modelops.gate.labelled import LabelledSet, SetAnswers
from modelops.gate.run import scaling_of
from modelops.gate.suites import QualityRun, Sweep
from modelops.gate.summary import Step, SuiteResult, Summary
from modelops.state import write_json
from modelops.targets.base import CpuBudgets
from stacks.config import load_stack_config

SETTINGS = load_stack_config("local")  # slo p95 250 ms, p99 500 ms; horizontal [1, 2], vertical [1, 2] workers
SLO, GATE = SETTINGS.slo, SETTINGS.gate
BUDGETS = CpuBudgets(enforced=True, note="cgroup v1 cpu quota")

# (users, good req/s, p95 ms) of round 1's whole step plans. replicas=1 breaks the 250-ms SLO at 64 users: its
# compared step is 32 users (replicas=2 at 64). replicas=2's last step was distorted (a saturated generator).
HORIZONTAL_1 = [(8, 80.0, 20.0), (16, 150.0, 40.0), (32, 240.0, 90.0), (64, 250.0, 400.0)]
HORIZONTAL_2 = [(16, 160.0, 22.0), (32, 300.0, 45.0), (64, 480.0, 100.0), (128, 490.0, 120.0)]
LIVE_1 = (32, 245.0, 85.0)  # the live bento beside the candidate, at the compared step only
# Rounds 2 and 3 at the compared step: (replicas=1, replicas=2, live) good req/s and p95.
LATER = [((235.0, 95.0), (455.0, 105.0), (250.0, 80.0)), ((245.0, 88.0), (470.0, 98.0), (240.0, 92.0))]
# Vertical: workers=1 breaks the SLO at 32 users: compared at 16 (workers=2 at 32).
VERTICAL_1 = [(8, 70.0, 25.0), (16, 130.0, 60.0), (32, 150.0, 300.0)]
VERTICAL_2 = [(16, 140.0, 26.0), (32, 250.0, 62.0), (64, 290.0, 280.0)]
VERTICAL_LATER = [((125.0, 61.0), (240.0, 63.0)), ((135.0, 59.0), (245.0, 60.0))]
DISTORTED = "the load generator was saturated (0.95 of a core busy or waiting for a CPU, limit 0.85)"
TRUTH = ["class_0"] * 20 + ["class_1"] * 15 + ["class_2"] * 10  # 45 held-out rows, like wine's


def step(users: int, rps: float, p95: float, distorted: str | None = None) -> Step:
    return Step(users=users, rps=rps, p50_ms=p95 / 3, p95_ms=p95, p99_ms=1.5 * p95, errors=0, requests=int(rps * 4),
                distorted=distorted)  # fmt: skip


def _curve(label: str, points: list[tuple[int, float, float]], distorted_last: bool = False):
    steps = [step(*p) for p in points]
    if distorted_last:
        steps[-1] = steps[-1].model_copy(update={"distorted": DISTORTED})
    return read_curve(label, steps, SLO)


def horizontal_sweep(with_live: bool = True) -> Sweep:
    one, two = _curve("replicas=1", HORIZONTAL_1), _curve("replicas=2", HORIZONTAL_2, distorted_last=True)
    first = {"replicas=1": one, "replicas=2": two}
    if with_live:
        first["live replicas=1"] = _curve("live replicas=1", [LIVE_1])
    rounds = [first]
    for (r1, p1), (r2, p2), (rl, pl) in LATER:
        later = {"replicas=1": _curve("replicas=1", [(32, r1, p1)]), "replicas=2": _curve("replicas=2", [(64, r2, p2)])}
        if with_live:
            later["live replicas=1"] = _curve("live replicas=1", [(32, rl, pl)])
        rounds.append(later)
    live = "wine_classifier_service:v1" if with_live else None
    return Sweep(unit="replicas", values=[1, 2], curves=[one, two], reports=["horizontal-replicas-1.html"], cpu=[],
                 rounds=rounds, compared_users=32, reference=live)  # fmt: skip


def vertical_sweep() -> Sweep:
    one, two = _curve("workers=1", VERTICAL_1), _curve("workers=2", VERTICAL_2)
    rounds = [{"workers=1": one, "workers=2": two}]
    for (r1, p1), (r2, p2) in VERTICAL_LATER:
        rounds.append({"workers=1": _curve("workers=1", [(16, r1, p1)]),
                       "workers=2": _curve("workers=2", [(32, r2, p2)])})  # fmt: skip
    return Sweep(unit="workers", values=[1, 2], curves=[one, two], reports=[], cpu=[], rounds=rounds,
                 compared_users=16)  # fmt: skip


def answers(right: int, truth: list[str] = TRUTH) -> list[str]:
    """Right on the first ``right`` rows, the next class on the rest."""
    classes = sorted(set(truth))
    return [t if i < right else classes[(classes.index(t) + 1) % len(classes)] for i, t in enumerate(truth)]


def quality_run() -> QualityRun:
    """Both held-out sets answered by both versions: the candidate right on 44 and 44 of 45, the live one on 43 and
    45 (its own held-out rows)."""
    own = LabelledSet(name="the candidate's held-out set", source="candidate_holdout", rows=[[0.0]] * 45,
                      labels=TRUTH, recorded_right=44)  # fmt: skip
    theirs = LabelledSet(name="the live version's held-out set", source="live_holdout", rows=[[0.0]] * 45,
                         labels=TRUTH)  # fmt: skip
    sets = [SetAnswers(own, answers(44), answers(43)), SetAnswers(theirs, answers(44), answers(45))]
    return QualityRun(live_model="wine_classifier:v1", log_dir="/logs", figures=None, sets=sets)


def slo_suite() -> SuiteResult:
    timeline = [{"t": t / 2, "rps": 100.0 + t % 3, "p95_ms": 40.0 + t % 5, "label": "slo"} for t in range(40)]
    return SuiteResult(status="pass", reason="p95 44 ms", rps=100.0, p50_ms=15.0, p95_ms=44.0, p99_ms=60.0,
                       error_ratio=0.0, requests=2000, timeline=timeline, locust_reports=["slo.html"])  # fmt: skip


def autoscale_suite() -> SuiteResult:
    """The ramp as judge.autoscale_timeline records it: a second replica from 6 s, back to one after the load."""
    timeline = [{"t": float(t), "rps": 40.0 + 10 * min(t, 8), "p95_ms": 30.0, "label": "autoscale",
                 "replicas": 1 if t < 6 else 2, "serving": 1 if t < 7 else 2} for t in range(12)]  # fmt: skip
    timeline.append({"t": 20.0, "rps": 0.0, "p95_ms": None, "label": "after the load", "replicas": 1, "serving": 1})
    return SuiteResult(status="pass", reason="scaled out in 4 s, back to 1 replica 8 s after the load",
                       timeline=timeline)  # fmt: skip


def summary(suites: dict[str, SuiteResult], verdict: str = "promote", promoted: bool = True) -> Summary:
    return Summary(
        run_id="report-test", verdict=verdict, exit_status=0 if verdict == "promote" else 20, reason="as judged",
        candidate="wine_classifier_service:v2", baseline="wine_classifier_service:v1", target="local", stack="local",
        started=0.0, finished=900.0, suites=suites, scaling=scaling_of(suites, SETTINGS),
        settings=SETTINGS.model_dump(mode="json"), cpu_budgets=BUDGETS.note,
        required_suites=list(suites), promoted=promoted,
    )  # fmt: skip


def full_summary() -> Summary:
    """Every part the report draws: smoke, quality, slo, the scaling suites with their rounds, regression,
    autoscale."""
    sweep = horizontal_sweep()
    suites = {
        "smoke": SuiteResult(status="pass", reason="ok", p50_ms=10.0, p95_ms=20.0, p99_ms=30.0, requests=300),
        "quality": judge.judge_quality(quality_run(), GATE),
        "slo": slo_suite(),
        "horizontal": judge.judge_horizontal(sweep, GATE, SLO, BUDGETS),
        "vertical": judge.judge_vertical(vertical_sweep(), GATE, SLO, BUDGETS),
        "regression": judge.judge_regression(sweep, GATE, SLO),
        "autoscale": autoscale_suite(),
    }
    return summary(suites)


def bare_summary() -> Summary:
    """A run with none of the optional parts: no scaling suite, no regression, no quality, no canary."""
    return summary({"smoke": SuiteResult(status="pass", reason="ok", p50_ms=10.0, p95_ms=20.0, p99_ms=30.0),
                    "slo": slo_suite()}, verdict="inconclusive", promoted=False)  # fmt: skip


def buckets(p95_s: float, requests: int) -> dict[float, float]:
    """A cumulative latency histogram (seconds) whose 95th percentile lies in the bucket ending at ``p95_s``."""
    return {p95_s / 4: 0.5 * requests, p95_s / 2: 0.9 * requests, p95_s: 0.97 * requests, math.inf: float(requests)}


def canary_outcome(rolled_back: bool = False) -> canary.CanaryOutcome:
    """Judged steps as run_canary records them: 10 % passed; 50 % passed, or (``rolled_back``) failed slow."""
    settings = SETTINGS.canary
    steps = []
    plan = [(10, 200, 400, 0.025, 0.025), (50, 400, 400, 0.1 if rolled_back else 0.025, 0.025)]
    for weight, cand_n, live_n, cand_p95, live_p95 in plan:
        seen = canary.Observation(live=Side(live_n, 0, buckets(live_p95, live_n)),
                                  candidate=Side(cand_n, 1, buckets(cand_p95, cand_n)), new_alerts=None,
                                  source=canary.SOURCE_HAPROXY, seconds=30.0 + weight / 5)  # fmt: skip
        verdict = canary.judge(seen, settings)
        record = canary._StepRecord(weight)
        record.add(seen, verdict)
        steps.append(record.step(verdict.status == "pass"))
    if rolled_back:
        return canary.CanaryOutcome(False, ExitStatus.CANARY_ROLLED_BACK, "canary rolled back at 50 %", steps)
    return canary.CanaryOutcome(True, ExitStatus.OK, "canary passed 10 → 50 % and took 100 %", steps)


def write_canary(run_dir: Path, outcome: canary.CanaryOutcome) -> Path:
    path = run_dir / canary.CANARY_FILE
    write_json(path, outcome.to_dict())  # as canary.promote writes it beside summary.json
    return path
