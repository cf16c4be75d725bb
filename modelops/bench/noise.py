"""How sure a benchmark figure is: a value with its spread across rounds, and a verdict that can say "inconclusive".

The machine is shared, so one round's figure carries whatever else ran in that minute. Every figure that is judged
against a goal is therefore measured in several rounds and reported as

  value     the median over rounds (for a ratio of two variants: the median of the per-round ratios, each round's
            two variants measured minutes apart, so load that drifts over the run hits both alike)
  interval  a percentile-bootstrap confidence interval of that median (95 % by default). With 5 rounds or fewer it
            is the rounds' min-max; from 6 rounds on it narrows as rounds are added, so more rounds can settle it.
  verdict   met        the whole interval is on the goal's side of the threshold
            missed     the whole interval is on the other side
            inconclusive  the threshold is inside the interval: the spread is wider than the difference being
                       judged (and a single round never shows its spread, so it is always inconclusive)

`compare(a_rounds, b_rounds, goal)` judges a ratio a/b (batched vs no-op, HAProxy vs direct, a peer, a cache);
`spread(values, goal)` judges one figure (a p95). Both are pure: unit-tested on fixed numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Verdict = Literal["met", "missed", "inconclusive"]
CONFIDENCE = 0.95
RESAMPLES = 4000
SEED = 20261201  # a fixed seed: the same rounds always print the same interval


@dataclass(frozen=True)
class Goal:
    """``value >= threshold`` (op ">=") or ``value <= threshold`` (op "<=")."""

    op: Literal[">=", "<="]
    threshold: float

    @classmethod
    def at_least(cls, threshold: float) -> Goal:
        return cls(">=", threshold)

    @classmethod
    def at_most(cls, threshold: float) -> Goal:
        return cls("<=", threshold)

    def holds(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Estimate:
    value: float  # median over rounds
    low: float  # confidence interval of the median
    high: float
    samples: tuple[float, ...]  # one value per round, in round order
    goal: Goal | None = None
    verdict: Verdict | None = None  # None when there is no goal

    @property
    def rounds(self) -> int:
        return len(self.samples)

    @property
    def conclusive(self) -> bool:
        return self.verdict != "inconclusive"

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "rounds": self.rounds,
            "samples": list(self.samples),
            "goal": str(self.goal) if self.goal else None,
            "verdict": self.verdict,
        }


def judge(low: float, high: float, goal: Goal, rounds: int) -> Verdict:
    """met / missed when the whole interval is on one side of the threshold, else inconclusive."""
    if rounds < 2:
        return "inconclusive"
    if goal.holds(low) and goal.holds(high):
        return "met"
    if not goal.holds(low) and not goal.holds(high):
        return "missed"
    return "inconclusive"


def interval(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``samples`` (a point for fewer than two)."""
    values = np.asarray(samples, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,),
        np.median,
        confidence_level=confidence,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def spread(values: Sequence[float], goal: Goal | None = None, confidence: float = CONFIDENCE) -> Estimate:
    """One figure measured in several rounds (e.g. a p95 in ms): its median, interval and verdict."""
    if not values:
        raise ValueError("no rounds to judge: measure at least one round")
    if any(not np.isfinite(v) for v in values):
        raise ValueError(f"every round must be a finite number, got {list(values)}")
    low, high = interval(values, confidence)
    verdict = judge(low, high, goal, len(values)) if goal else None
    return Estimate(float(np.median(values)), low, high, tuple(float(v) for v in values), goal, verdict)


def compare(
    a_rounds: Sequence[float], b_rounds: Sequence[float], goal: Goal | None = None, confidence: float = CONFIDENCE
) -> Estimate:
    """The ratio a/b from paired rounds (a_rounds[i] and b_rounds[i] measured in the same round)."""
    if len(a_rounds) != len(b_rounds):
        raise ValueError(
            f"paired rounds needed: {len(a_rounds)} rounds of a vs {len(b_rounds)} of b; pass only the rounds in "
            "which both were measured"
        )
    if any(b <= 0 for b in b_rounds):
        raise ValueError(f"the denominator must be positive in every round, got {list(b_rounds)}")
    return spread([a / b for a, b in zip(a_rounds, b_rounds, strict=True)], goal, confidence)
