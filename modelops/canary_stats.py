"""The canary's statistics: is the candidate colour worse than the live colour over the same interval of live
traffic? Pure functions (tests/modelops/test_canary_stats.py runs them on fixed inputs with real spread).

Per interval, two tests, each one-sided (is the candidate *worse*?), each gated by a practical threshold so that a
significant but harmless difference does not roll back:

- **errors** — Fisher's exact test on the 2x2 table (candidate errors / requests vs live errors / requests);
  fails when p < alpha *and* the candidate's error ratio is over ``max_error_ratio``;
- **latency** — Mann-Whitney U on the two latency distributions (as Kayenta compares canary and baseline),
  from the replicas' duration histograms: the U test needs only ranks, so each request is the index of its bucket
  (requests in one bucket are ties; scipy's tie-corrected normal approximation). Fails when p < alpha *and* the
  candidate's p95 is over the live colour's by more than ``max_p95_rise`` and ``min_p95_rise_ms``.

**How many requests an interval needs** (per side, :func:`min_requests`), from the tests' power:

- errors: against a live colour with no errors, Fisher's p for ``k`` candidate errors out of ``n`` (and 0 of ``n``)
  is C(n, k) / C(2n, k) (about 2^-k), so it rejects from ``k_crit(n)`` errors on; ``n`` is the smallest number for
  which a candidate whose true error ratio is ``detect_error_ratio`` shows at least ``k_crit(n)`` errors with
  probability ``power``: P(Binomial(n, detect_error_ratio) >= k_crit(n)) >= power. (alpha 0.01, power 0.8:
  180 requests for a 5 % error ratio, 301 for 3 %.)
- latency: Noether's formula for the U test with equal groups, n = (z_(1-alpha) + z_power)^2 / (6 (theta - 1/2)^2),
  theta = ``detect_slower_share``, the probability that a candidate request is slower than a live one (0.75:
  27 requests at alpha 0.01, power 0.8).

The larger of the two (and at least ``min_requests``) is the interval's size. An interval is judged when both
colours reached it; a clear failure may end it earlier (**early abort**): before the interval is full, a test fails
only at alpha divided by the number of looks an interval can have (Bonferroni: the early looks together spend at
most alpha). Missing data (a colour's latencies could not be read, too few requests when the interval's time is up)
is *inconclusive*, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import stats

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Side:
    """One colour over one interval: requests, failed ones, and latency bucket counts (cumulative by upper bound, in
    seconds, as Prometheus histograms are) — None when they could not be read (``missing`` says why)."""

    requests: int
    errors: int
    buckets: Mapping[float, float] | None
    missing: str | None = None
    counted: bool = True  # False: the request and error counts could not be read (missing data)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.01
    power: float = 0.8
    detect_error_ratio: float = 0.05
    detect_slower_share: float = 0.75
    max_error_ratio: float = 0.01
    max_p95_rise: float = 0.5
    min_p95_rise_ms: float = 25.0
    min_requests: int = 20


@dataclass(frozen=True)
class Verdict:
    status: Status
    rules: dict[str, str]  # rule -> "pass" | "fail" | "inconclusive: <why>"
    reasons: list[str] = field(default_factory=list)  # one sentence per failed or inconclusive rule
    figures: dict[str, float | None] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ sample sizes
def fisher_p_against_clean(k: int, n: int) -> float:
    """Fisher's one-sided p for k errors of n candidate requests against 0 of n live ones: C(n, k) / C(2n, k)."""
    return math.exp(math.lgamma(n + 1) - math.lgamma(n - k + 1) - math.lgamma(2 * n + 1) + math.lgamma(2 * n - k + 1))


def critical_errors(n: int, alpha: float) -> int | None:
    """Fewest candidate errors of n that Fisher's test flags at alpha against a clean live colour."""
    for k in range(1, n + 1):
        if fisher_p_against_clean(k, n) < alpha:
            return k
    return None


@lru_cache(maxsize=64)
def min_requests_errors(detect: float, alpha: float, power: float, limit: int = 1_000_000) -> int:
    n = 2
    while n <= limit:
        k = critical_errors(n, alpha)
        if k is not None and stats.binom.sf(k - 1, n, detect) >= power:
            return n
        n = n + 1 if n < 20_000 else int(n * 1.01) + 1  # exact below 20,000 requests
    return limit


def min_requests_latency(slower_share: float, alpha: float, power: float) -> int:
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return math.ceil(z**2 / (6 * (slower_share - 0.5) ** 2))


def min_requests(t: Thresholds) -> int:
    """Requests per colour an interval needs (module docstring: the formula)."""
    return max(t.min_requests, min_requests_errors(t.detect_error_ratio, t.alpha, t.power),
               min_requests_latency(t.detect_slower_share, t.alpha, t.power))  # fmt: skip


# ------------------------------------------------------------------------------------------------------ tests
def counts_per_bucket(buckets: Mapping[float, float]) -> tuple[list[float], np.ndarray]:
    """Cumulative {upper bound: count} → (bounds, non-negative count in each bucket)."""
    bounds = sorted(buckets)
    cumulative = np.array([max(0.0, buckets[b]) for b in bounds])
    counts = np.diff(np.concatenate([[0.0], np.maximum.accumulate(cumulative)]))
    return bounds, np.rint(counts).astype(int)


def quantile_ms(buckets: Mapping[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile (linear within a bucket), in ms."""
    bounds, counts = counts_per_bucket(buckets)
    total = counts.sum()
    if total <= 0:
        return None
    rank, below, lower = q * total, 0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if below + count >= rank and count > 0:
            if math.isinf(bound):
                return lower * 1000
            return (lower + (bound - lower) * (rank - below) / count) * 1000
        below += count
        lower = bound if not math.isinf(bound) else lower
    return lower * 1000


def mann_whitney_slower(candidate: Mapping[float, float], live: Mapping[float, float]) -> tuple[float, float] | None:
    """(one-sided p that candidate latencies are stochastically greater, P(candidate slower) + ties / 2), on bucket
    indices; None when either side has no request."""
    bounds = sorted(set(candidate) | set(live))

    def samples(buckets: Mapping[float, float]) -> np.ndarray:
        filled = {b: buckets.get(b, 0.0) for b in bounds}
        # A bound one side lacks holds its cumulative count from the bound below.
        last = 0.0
        for b in bounds:
            if b in buckets:
                last = buckets[b]
            filled[b] = last
        _, counts = counts_per_bucket(filled)
        return np.repeat(np.arange(len(bounds)), counts)

    x, y = samples(candidate), samples(live)
    if len(x) == 0 or len(y) == 0:
        return None
    if np.all(x == x[0]) and np.all(y == x[0]):
        return 1.0, 0.5  # every request of both colours in one bucket: no difference to see
    result = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")
    return float(result.pvalue), float(result.statistic) / (len(x) * len(y))


def fisher_more_errors(candidate: Side, live: Side) -> float:
    table = [[candidate.errors, candidate.requests - candidate.errors], [live.errors, live.requests - live.errors]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


# --------------------------------------------------------------------------------------------- one interval
def judge_interval(candidate: Side, live: Side, t: Thresholds, full: bool, looks: int = 1) -> Verdict:
    """One interval, candidate vs live over the same time. ``full``: both colours reached :func:`min_requests`, or
    the interval's time is up (then too few requests is inconclusive); before that (``full`` False, an early look)
    a rule fails only at alpha / ``looks`` and nothing passes yet."""
    needed = min_requests(t)
    alpha = t.alpha if full else t.alpha / max(1, looks)
    rules: dict[str, str] = {}
    reasons: list[str] = []
    if not (candidate.counted and live.counted):
        why = (candidate.missing if not candidate.counted else live.missing) or "the counts could not be read"
        return Verdict("inconclusive", {"errors": f"inconclusive: {why}", "latency": f"inconclusive: {why}"},
                       [f"nothing judged (missing data): {why}"], {"needed_per_side": float(needed)})  # fmt: skip
    figures: dict[str, float | None] = {
        "needed_per_side": float(needed), "candidate_requests": float(candidate.requests),
        "candidate_errors": float(candidate.errors), "live_requests": float(live.requests),
        "live_errors": float(live.errors), "alpha": alpha,
    }  # fmt: skip

    # errors
    p_err = fisher_more_errors(candidate, live) if candidate.requests and live.requests else None
    figures["errors_p"] = p_err
    if p_err is not None and p_err < alpha and candidate.error_ratio > t.max_error_ratio:
        rules["errors"] = "fail"
        reasons.append(
            f"the candidate failed {candidate.errors} of {candidate.requests} requests ({candidate.error_ratio:.2%}) "
            f"against the live colour's {live.errors} of {live.requests} (Fisher p {p_err:.2g} < {alpha:.2g}; over "
            f"modelops:canary.max_error_ratio {t.max_error_ratio:.2%})"
        )
    else:
        rules["errors"] = "pass"

    # latency
    if candidate.buckets is None or live.buckets is None:
        why = candidate.missing or live.missing or "no latency histogram"
        rules["latency"] = f"inconclusive: {why}"
        reasons.append(f"latency not judged (missing data): {why}")
    else:
        tested = mann_whitney_slower(candidate.buckets, live.buckets)
        cand_p95, live_p95 = quantile_ms(candidate.buckets, 0.95), quantile_ms(live.buckets, 0.95)
        figures |= {"candidate_p95_ms": cand_p95, "live_p95_ms": live_p95}
        if tested is None or cand_p95 is None or live_p95 is None:
            rules["latency"] = "inconclusive: no finished request in a colour's histogram"
            reasons.append("latency not judged (missing data): a colour finished no request in the interval")
        else:
            p_lat, slower = tested
            figures |= {"latency_p": p_lat, "candidate_slower_share": slower}
            rise = cand_p95 - live_p95
            if p_lat < alpha and rise > t.min_p95_rise_ms and cand_p95 > live_p95 * (1 + t.max_p95_rise):
                rules["latency"] = "fail"
                reasons.append(
                    f"the candidate is slower: p95 {cand_p95:.0f} ms against the live colour's {live_p95:.0f} ms, a "
                    f"candidate request slower than a live one {slower:.0%} of the time (Mann-Whitney p {p_lat:.2g} "
                    f"< {alpha:.2g}; over modelops:canary.max_p95_rise {t.max_p95_rise:.0%} and min_p95_rise_ms "
                    f"{t.min_p95_rise_ms:g})"
                )
            else:
                rules["latency"] = "pass"

    if "fail" in rules.values():
        return Verdict("fail", rules, [r for r in reasons if "not judged" not in r], figures)
    few = [f"{name} {side.requests}" for name, side in (("candidate", candidate), ("live", live))
           if side.requests < needed]  # fmt: skip
    if few:
        rules["traffic"] = f"inconclusive: {', '.join(few)} requests of {needed} per colour"
        if full:
            reasons.append(
                f"too few requests to judge ({', '.join(few)} of the {needed} per colour the tests' power needs): send "
                "more live traffic, or lengthen modelops:canary.window_s"
            )
        return Verdict("inconclusive", rules, reasons, figures)
    rules["traffic"] = "pass"
    if any(v.startswith("inconclusive") for v in rules.values()):
        return Verdict("inconclusive", rules, reasons, figures)
    return Verdict("pass", rules, [], figures)
