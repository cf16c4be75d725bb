"""The statistics of the quality suite: is the candidate worse than the live version on the same labelled rows, and
is it any good on its own? Pure functions over per-row outcomes (unit-tested on fixed inputs:
tests/modelops/gate/test_quality_tests.py).

Every rule answers pass, fail or inconclusive from an interval, never from a point estimate alone:

- **paired, classification** (:func:`paired_classification`): McNemar's test. Only the rows where exactly one
  version is right say anything about which is better: ``b`` rows only the live version got right, ``c`` rows only
  the candidate got right (``n_d = b + c``). Conditional on ``n_d`` (as McNemar's exact test is), ``c`` is binomial
  with ``pi`` = P(candidate right | they differ), and the accuracy difference on these rows is
  ``delta = (n_d / n) (2 pi - 1)``. The mid-p interval of ``pi`` (closer to its nominal coverage than
  Clopper-Pearson's, which is conservative for the few discordant rows a gate sees) maps to an interval of
  ``delta``: **fail** when all of it is below ``-margin`` (worse beyond the margin, with confidence), **pass** when
  all of it is at or above ``-margin``, **inconclusive** when it straddles ``-margin`` (more labelled rows decide).
  Two versions that answer every row alike pass (``n_d = 0``), and so does a candidate whose discordant rows are
  too few to lose more than the margin even if it lost them all (``n_d / n <= margin``).
- **paired, regression** (:func:`paired_regression`): the candidate's mean absolute error over the live version's on
  the same rows, a percentile interval from a paired bootstrap (rows resampled together): **fail** when all of it is
  above ``1 + margin``, **pass** when all of it is at or below, else inconclusive.
- **alone, against a floor** (:func:`accuracy_floor`): the candidate's accuracy, mid-p interval against
  ``floor``: fail when all of it is below, pass when all of it is at or above, else inconclusive.
- **alone, against a constant answer** (:func:`better_than_constant`): a model must be shown better than always
  answering the labelled set's most frequent label (a model trained on shuffled labels is not): fail when its
  accuracy is no higher than that share, pass when the whole interval is above it, else inconclusive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats
from scipy.optimize import brentq

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Outcome:
    """One rule's verdict, its reason (with the figures that justify it) and the figures for the summary."""

    status: Status
    reason: str
    figures: dict[str, float | None]

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------- binomial
def midp_less(k: int, n: int, p: float) -> float:
    """Mid-p of "fewer successes than expected under p": P(X < k) + P(X = k) / 2."""
    return float(stats.binom.cdf(k - 1, n, p) + 0.5 * stats.binom.pmf(k, n, p))


def midp_greater(k: int, n: int, p: float) -> float:
    """Mid-p of "more successes than expected under p": P(X > k) + P(X = k) / 2."""
    return float(stats.binom.sf(k, n, p) + 0.5 * stats.binom.pmf(k, n, p))


def midp_interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided mid-p confidence interval of a binomial proportion (k successes in n)."""
    if n <= 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    eps = 1e-12
    # midp_greater grows with p, midp_less falls with p: each bound is the p where its tail equals ``tail``.
    lo = 0.0 if k == 0 else brentq(lambda p: midp_greater(k, n, p) - tail, eps, 1 - eps)
    hi = 1.0 if k == n else brentq(lambda p: midp_less(k, n, p) - tail, eps, 1 - eps)
    return float(lo), float(hi)


# ----------------------------------------------------------------------------------------------- paired tests
def paired_classification(
    candidate_right: Sequence[bool], live_right: Sequence[bool], margin: float, confidence: float
) -> Outcome:
    """McNemar on the same rows (see the module's docstring): is the candidate's accuracy more than ``margin``
    below the live version's?"""
    if len(candidate_right) != len(live_right):
        raise ValueError(f"rows differ: candidate {len(candidate_right)}, live {len(live_right)}")
    n = len(candidate_right)
    cand, live = np.asarray(candidate_right, dtype=bool), np.asarray(live_right, dtype=bool)
    b = int((live & ~cand).sum())  # only the live version right
    c = int((cand & ~live).sum())  # only the candidate right
    discordant = b + c
    figures: dict[str, float | None] = {
        "rows": float(n), "candidate_accuracy": float(cand.mean()) if n else None,
        "live_accuracy": float(live.mean()) if n else None, "only_live_right": float(b),
        "only_candidate_right": float(c), "margin": margin, "confidence": confidence,
    }  # fmt: skip
    if n == 0:
        return Outcome("inconclusive", "no labelled rows", figures)
    # Each version's own accuracy with its interval, for the report's side-by-side chart (the verdict rests on the
    # paired difference below, never on whether these two intervals overlap).
    for name, right in (("candidate", int(cand.sum())), ("live", int(live.sum()))):
        figures[f"{name}_accuracy_low"], figures[f"{name}_accuracy_high"] = midp_interval(right, n, confidence)
    delta = (c - b) / n
    if discordant == 0:
        lo = hi = 0.0
    else:
        pi_lo, pi_hi = midp_interval(c, discordant, confidence)
        share = discordant / n
        lo, hi = share * (2 * pi_lo - 1), share * (2 * pi_hi - 1)
    # McNemar's own question, for the record: how likely is this many rows against the candidate if both were equal?
    p_worse = midp_greater(b, discordant, 0.5) if discordant else 1.0
    figures |= {"delta": delta, "delta_low": lo, "delta_high": hi, "p_worse": p_worse}
    said = (
        f"candidate {cand.mean():.1%} vs live {live.mean():.1%} right on {n} rows (only the live version right on "
        f"{b}, only the candidate on {c}); accuracy difference {delta:+.1%}, {confidence:.0%} interval "
        f"[{lo:+.1%}, {hi:+.1%}] against the margin -{margin:.1%}"
    )
    if hi < -margin:
        return Outcome("fail", f"{said}: worse beyond the margin (McNemar mid-p {p_worse:.3g})", figures)
    if lo >= -margin - 1e-12:
        return Outcome("pass", said, figures)
    return Outcome("inconclusive", f"{said}: the interval straddles the margin (more labelled rows decide)", figures)


def paired_regression(
    candidate_error: Sequence[float],
    live_error: Sequence[float],
    margin: float,
    confidence: float,
    rounds: int = 2000,
    seed: int = 0,
) -> Outcome:
    """Paired bootstrap of the ratio of mean absolute errors (candidate / live) on the same rows."""
    cand, live = np.abs(np.asarray(candidate_error, dtype=float)), np.abs(np.asarray(live_error, dtype=float))
    if cand.shape != live.shape:
        raise ValueError(f"rows differ: candidate {cand.shape}, live {live.shape}")
    n = len(cand)
    figures: dict[str, float | None] = {"rows": float(n), "margin": margin, "confidence": confidence}
    if n == 0:
        return Outcome("inconclusive", "no labelled rows", figures)
    figures |= {"candidate_mae": float(cand.mean()), "live_mae": float(live.mean())}
    if live.sum() == 0:
        status: Status = "pass" if cand.sum() == 0 else "fail"
        return Outcome(status, f"the live version is exact on {n} rows; the candidate's MAE {cand.mean():.4g}", figures)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(rounds, n))
    ratios = cand[picks].mean(axis=1) / np.maximum(live[picks].mean(axis=1), 1e-300)
    tail = (1 - confidence) / 2
    lo, hi = (float(v) for v in np.quantile(ratios, [tail, 1 - tail]))
    ratio = float(cand.mean() / live.mean())
    figures |= {"mae_ratio": ratio, "mae_ratio_low": lo, "mae_ratio_high": hi}
    said = (
        f"mean absolute error candidate {cand.mean():.4g} vs live {live.mean():.4g} on {n} rows: ratio {ratio:.3f}, "
        f"{confidence:.0%} interval [{lo:.3f}, {hi:.3f}] against at most {1 + margin:.3f}"
    )
    if lo > 1 + margin:
        return Outcome("fail", f"{said}: worse beyond the margin", figures)
    if hi <= 1 + margin:
        return Outcome("pass", said, figures)
    return Outcome("inconclusive", f"{said}: the interval straddles the margin (more labelled rows decide)", figures)


# ------------------------------------------------------------------------------------------ the candidate alone
def accuracy_floor(right: int, rows: int, floor: float, confidence: float) -> Outcome:
    """The candidate's accuracy against an absolute floor (a setting)."""
    figures: dict[str, float | None] = {"rows": float(rows), "right": float(right), "floor": floor}
    if rows == 0:
        return Outcome("inconclusive", "no labelled rows", figures)
    lo, hi = midp_interval(right, rows, confidence)
    figures |= {"accuracy": right / rows, "accuracy_low": lo, "accuracy_high": hi}
    said = f"right on {right} of {rows} rows ({right / rows:.1%}, {confidence:.0%} interval [{lo:.1%}, {hi:.1%}])"
    if hi < floor:
        return Outcome("fail", f"{said}: below the floor {floor:.0%}", figures)
    if lo >= floor:
        return Outcome("pass", f"{said}: above the floor {floor:.0%}", figures)
    return Outcome("inconclusive", f"{said}: the interval straddles the floor {floor:.0%}", figures)


def better_than_constant(right: int, labels: Sequence[str], confidence: float) -> Outcome:
    """Is the candidate better than always answering the most frequent label of these rows?"""
    rows = len(labels)
    figures: dict[str, float | None] = {"rows": float(rows), "right": float(right)}
    if rows == 0:
        return Outcome("inconclusive", "no labelled rows", figures)
    label, count = Counter(labels).most_common(1)[0]
    share = count / rows
    lo, _ = midp_interval(right, rows, confidence)
    figures |= {"accuracy": right / rows, "accuracy_low": lo, "constant_share": share}
    said = f"right on {right} of {rows} rows ({right / rows:.1%}); always answering {label!r} is right on {share:.1%}"
    if right / rows <= share:
        return Outcome("fail", f"{said}: no better than a constant answer (labels shuffled or wrong?)", figures)
    if lo > share:
        return Outcome("pass", said, figures)
    return Outcome("inconclusive", f"{said}: not shown better at {confidence:.0%} (more labelled rows decide)", figures)


# ------------------------------------------------------------------------------------------------ smoke: golden
def golden_answers(
    answers: dict[int, dict[str, int]], labels: Sequence[str], floor: float, confidence: float
) -> Outcome:
    """The smoke suite's rule on the golden rows' answers (every answer to every check, from every replica):

    - **fail** when one row got different answers (the replicas do not serve one model);
    - **fail** when the served labels are right no more often than always answering the rows' most frequent label
      (:func:`better_than_constant`: a model that answers wrongly);
    - **fail** when the accuracy is below ``floor`` with confidence (:func:`accuracy_floor`; 0 turns it off);
    - **pass** otherwise: a handful of rows only rules out a model that answers wrongly; the quality suite judges
      the candidate against the live version on every labelled row.

    A row counts as right only if every answer to it was right; every wrong answer is counted in the figures."""
    rows = len(labels)
    answered = {i: served for i, served in answers.items() if 0 <= i < rows and served}
    total = sum(sum(served.values()) for served in answered.values())
    wrong = sum(c for i, served in answered.items() for label, c in served.items() if label != labels[i])
    right_rows = sum(1 for i, served in answered.items() if set(served) == {labels[i]})
    figures: dict[str, float | None] = {
        "golden_rows": float(rows), "golden_answers": float(total), "golden_wrong_answers": float(wrong),
        "golden_rows_right": float(right_rows),
    }  # fmt: skip
    if len(answered) < rows:
        return Outcome("inconclusive", f"only {len(answered)} of {rows} golden rows were answered", figures)
    counted = f"{wrong} wrong of {total} answers to {rows} golden rows (right on {right_rows} rows)"
    split = {i: served for i, served in answered.items() if len(served) > 1}
    if split:
        i, served = next(iter(split.items()))
        shown = ", ".join(f"{label!r} {count}x" for label, count in sorted(served.items()))
        reason = f"{counted}: golden row {i} was answered {shown} — the replicas do not serve one model"
        return Outcome("fail", reason, figures)
    constant = better_than_constant(right_rows, labels, confidence)
    if constant.status == "fail":
        return Outcome("fail", f"{counted}: {constant.reason}", figures | constant.figures)
    if floor > 0:
        floored = accuracy_floor(right_rows, rows, floor, confidence)
        if floored.status == "fail":
            return Outcome("fail", f"{counted}: {floored.reason}", figures | floored.figures)
    return Outcome("pass", counted, figures)
