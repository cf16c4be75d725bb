"""Verdicts that know their noise: a ratio of two configurations measured in interleaved rounds, with its interval.

The scaling suites and the regression check compare two configurations (1 vs 2 replicas, 1 vs 2 workers, the live
version vs the candidate). On a shared machine one measurement of each is not enough: the same pool shape measured
twice in one gate differed by 10 %, and a single sagging step once made E(2) = 1.36 look like a pass. So every
configuration runs in each of several rounds, on fresh processes, interleaved (A/B, B/A, A/B: adjacent in time, so
load that drifts over the run hits both alike, and alternating, so a steady drift cancels), and a ratio is judged
by its interval over the rounds:

- pass or fail only when the whole interval is on one side of the threshold; otherwise inconclusive, naming the
  spread;
- a ratio whose whole interval lies above its physical bound (E(N) above 1, a vertical ratio above the ratio of
  workers and CPU) is inconclusive, never a pass: the smaller configuration was held back (noise), or the candidate
  does more per CPU when it has more (a worker's batches grow with the requests waiting), and one run cannot tell
  which. ``gate.bound_tolerance`` (default 0) accepts a stated margin above the bound for the second case.

Pure functions over measured steps, unit-tested on fixed numbers (tests/modelops/gate/test_rounds.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modelops.bench.noise import Estimate, Goal, compare
from modelops.gate.capacity import Curve, latency_breach, slo_breach
from modelops.gate.summary import Step
from stacks.config import SloSettings

Status = Literal["pass", "fail", "inconclusive"]
# A label prefix for the live version measured beside the candidate (regression): "live replicas=1".
LIVE = "live "


@dataclass(frozen=True)
class Paired:
    """One figure of two configurations at their compared step, round by round (only rounds in which both ran)."""

    a: list[Step]  # the reference configuration (the smaller one, or the live version)
    b: list[Step]  # the configuration judged against it
    rounds: list[int]  # 1-based numbers of the rounds used
    dropped: list[str]  # rounds left out, and why
    failing: str | None  # ``b`` failed more requests than the SLO allows in some round
    slo_misses: list[str]  # rounds in which ``a`` was outside the SLO at the compared step (said, not hidden)
    b_misses: list[str] = field(default_factory=list)  # rounds in which ``b``'s latency broke the SLO there


def paired(
    rounds: list[dict[str, Curve]], a_label: str, b_label: str, a_users: int, b_users: int, slo: SloSettings
) -> Paired:
    """``a`` at ``a_users`` and ``b`` at ``b_users`` in every round where both ran that step undistorted."""
    a_steps: list[Step] = []
    b_steps: list[Step] = []
    used: list[int] = []
    dropped: list[str] = []
    misses: list[str] = []
    b_misses: list[str] = []
    failing = None
    for number, curves in enumerate(rounds, start=1):
        a_curve, b_curve = curves.get(a_label), curves.get(b_label)
        a = a_curve.at_users(a_users) if a_curve else None
        b = b_curve.at_users(b_users) if b_curve else None
        if a is None or b is None:
            dropped.append(f"round {number}: {a_label if a is None else b_label} did not run the compared step")
            continue
        if a.distorted or b.distorted:
            dropped.append(f"round {number}: {a.distorted or b.distorted}")
            continue
        if b.error_ratio > slo.max_error_ratio and failing is None:
            failing = (
                f"{b_label} failed {b.error_ratio:.1%} of requests at {b.users} users in round {number} (limit "
                f"{slo.max_error_ratio:.1%})"
            )
        miss = slo_breach(a, slo)
        if miss:
            misses.append(f"round {number}: {a_label} {miss}")
        late = latency_breach(b, slo)
        if late:
            b_misses.append(f"round {number}: {late}")
        a_steps.append(a)
        b_steps.append(b)
        used.append(number)
    return Paired(a_steps, b_steps, used, dropped, failing, misses, b_misses)


def rps_ratio(pair: Paired, scale: float, goal: Goal) -> Estimate | None:
    """b's good req/s over ``scale`` x a's, per round, with its interval; None when a round measured no answer.

    Why rounds, and why this bootstrap: the unit that is independent is the round (fresh processes, its own minute
    of the machine), not the half-second windows inside a step, which are autocorrelated (a busy neighbour slows
    several in a row) and would give an interval far too narrow. Each round's two configurations ran next to each
    other, so the per-round ratio is paired; its median over rounds with a percentile bootstrap
    (modelops/bench/noise.py, scipy.stats.bootstrap) is robust to one odd round, and with 5 rounds or fewer the
    interval is simply the rounds' range: as wide as the measured noise, never narrower."""
    if len(pair.a) < 1 or any(s.rps <= 0 for s in pair.a):
        return None
    return compare([s.rps for s in pair.b], [scale * s.rps for s in pair.a], goal)


def p95_ratio(pair: Paired, goal: Goal) -> Estimate | None:
    """b's p95 over a's, per round, with its interval (as rps_ratio); None without a p95 in every round."""
    if not pair.a or any(s.p95_ms is None or s.p95_ms <= 0 for s in pair.a) or any(s.p95_ms is None for s in pair.b):
        return None
    return compare([float(s.p95_ms or 0) for s in pair.b], [float(s.p95_ms or 0) for s in pair.a], goal)


def describe(name: str, estimate: Estimate) -> str:
    rounds = ", ".join(f"{v:.2f}" for v in estimate.samples)
    interval = f"[{estimate.low:.2f}, {estimate.high:.2f}]"
    return f"{name}={estimate.value:.2f} {interval} over {estimate.rounds} rounds ({rounds})"


def judge_ratio(
    name: str, estimate: Estimate, minimum: float, bound: float | None, tolerance: float = 0.0
) -> tuple[Status, str]:
    """At least ``minimum``, judged on the whole interval; wholly above ``bound`` (the physical limit) by more than
    ``tolerance`` (a fraction of it): inconclusive, whatever the threshold says."""
    text = describe(name, estimate)
    spread = estimate.high - estimate.low
    if estimate.rounds < 2:
        return "inconclusive", f"{text}: one round shows no spread, so it cannot tell noise from the candidate"
    if bound is not None and estimate.low > bound * (1 + tolerance):
        margin = f" by more than the {tolerance:.0%} allowed" if tolerance else ""
        return "inconclusive", (
            f"{text}: the whole interval is above the physical bound {bound:g}{margin}. Either the noise exceeds the "
            "effect (the smaller configuration was held back), or the candidate does more per CPU when it has more "
            "(larger batches); one run cannot tell which. Run again on a quieter machine, or state the margin you "
            "expect (modelops:gate.bound_tolerance)"
        )
    if estimate.high < minimum:
        return "fail", f"{text}: the whole interval is below {minimum:g}"
    if estimate.low >= minimum:
        return "pass", text
    return "inconclusive", (
        f"{text}: the interval (spread {spread:.2f}) contains the threshold {minimum:g}: the noise is larger than "
        "the difference being judged; run again on a quieter machine, or with more rounds (modelops:gate.rounds)"
    )
