"""Online drift detection over chunks of traffic, with a false-alarm rate per day chosen by the user.

**Signals.** Every logged row becomes a vector of standardised signals, each with mean 0 and sd 1 on the training
data: the 13 features ``(x - mean) / sd``; one indicator per predicted class ``(1[pred == c] - q_c) / sd_c`` (q_c:
the share the model predicts on its training rows); and the row's **PCA reconstruction error** (NannyML's
multivariate check: standardise, project on the components that keep ``pca_variance`` of the variance, measure what
the projection loses) — it rises when the features' joint structure changes even if no single feature moves. Its mean
and sd come from 5-fold cross-validation on the training rows: in-sample errors of a PCA fitted on the same rows are
too small, and would make every new row look drifted.

**Detector.** A chunk (the rows logged since the last look, at least ``min_chunk_rows``) gives each signal its mean
``e`` in reference sds. A two-sided CUSUM per signal (one-sided, upwards, for the reconstruction error) accumulates
``sqrt(n) * (|e| - k)``, floored at 0; a signal has drifted while its sum is above ``h``.

- ``k`` (the allowance) sits halfway between what the reference cannot tell apart and the shift to find. A reference
  of M rows knows each signal's mean to ``1/sqrt(M)`` sds; with S statistics, ``r = z(1 - 0.05/(2S)) / sqrt(M)``
  bounds every one of their errors at once in 95 % of references (r = 0.28 sd for the wine model's 133 rows). That
  much offset is not evidence of drift, however much traffic shows it. The shift to find is
  ``min_shift_sd`` (default 0.5 sd), so ``k = (r + min_shift_sd) / 2``.
- ``h`` is set from ``max_false_alarms_per_day``: at ``86400 / interval_s`` chunks a day and S one-sided CUSUMs
  (Bonferroni across them), each must run on average ``S * chunks_per_day / max_false_alarms_per_day`` chunks
  before it crosses ``h`` on traffic that did not drift. The average run length comes from Siegmund's
  approximation for a CUSUM of normal increments, taken at the worst case the allowance accepts (a reference off
  by ``r``) and at the smallest chunk (``min_chunk_rows``): more rows per chunk only lengthen it.

Why CUSUM and not a window test repeated (today's ``modelops drift``): a test per window spends its false-alarm
budget on every look, so at 1,440 looks a day its per-look threshold must be extreme, and it forgets the evidence
of the previous window. CUSUM is the sequential test with the shortest detection delay for a given average run
length between false alarms (Lorden/Moustakides), it accumulates small shifts over chunks, and its threshold is a
closed form of the run length the user asks for. Why an allowance instead of an exact null: with a 133-row
reference, "no drift" can only mean "within what the reference can resolve"; an exact null is rejected by any day
of traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from modelops.monitor.drift import DriftError, Reference
from stacks.config import DriftWatchSettings

RECONSTRUCTION = "reconstruction_error"
CLASS_PREFIX = "class:"
SECONDS_PER_DAY = 86_400.0
REFERENCE_CONFIDENCE = 0.95  # every signal's reference error within r in this share of references
CV_FOLDS = 5
SIEGMUND_CORRECTION = 1.166  # Siegmund (1985): the overshoot of a normal random walk over its boundary


# ------------------------------------------------------------------------------------------------ reference
@dataclass(frozen=True)
class Pca:
    centre: np.ndarray  # mean of the standardised fitting rows
    components: np.ndarray  # k x features

    @classmethod
    def fit(cls, z: np.ndarray, variance: float) -> Pca:
        centre = z.mean(axis=0)
        _, singular, vt = np.linalg.svd(z - centre, full_matrices=False)
        explained = singular**2 / np.sum(singular**2)
        keep = int(np.searchsorted(np.cumsum(explained), variance) + 1)
        return cls(centre, vt[: min(keep, len(vt))])

    def errors(self, z: np.ndarray) -> np.ndarray:
        centred = z - self.centre
        return np.linalg.norm(centred - centred @ self.components.T @ self.components, axis=1)


@dataclass(frozen=True)
class OnlineReference:
    """What a chunk is compared with: per-signal means and sds, the PCA, and the reference size."""

    features: list[str]
    classes: list[str]
    mean: np.ndarray
    sd: np.ndarray
    shares: np.ndarray  # predicted class shares on the training rows
    pca: Pca
    error_mean: float  # cross-validated reconstruction error
    error_sd: float
    rows: int  # M

    @property
    def signals(self) -> list[str]:
        return [*self.features, *(CLASS_PREFIX + c for c in self.classes), RECONSTRUCTION]

    @property
    def two_sided(self) -> np.ndarray:
        """Which signals are judged in both directions (all but the reconstruction error: only a rise is drift)."""
        return np.array([True] * (len(self.features) + len(self.classes)) + [False])

    @property
    def statistics(self) -> int:
        """One-sided CUSUMs in all: the S of the Bonferroni correction."""
        return int(self.two_sided.sum() * 2 + (~self.two_sided).sum())

    @classmethod
    def of(cls, reference: Reference, variance: float = 0.65, seed: int = 0) -> OnlineReference:
        if reference.class_shares is None:
            raise DriftError("the online detector needs the model's predicted class shares on its training rows")
        x = reference.rows()
        m = len(x)
        if m < 2 * CV_FOLDS:
            raise DriftError(f"the reference holds {m} rows: at least {2 * CV_FOLDS} are needed to judge drift")
        mean, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
        sd = np.where(sd > 0, sd, 1.0)  # a constant feature: any change is a change of at least 1 unit
        z = (x - mean) / sd
        pca = Pca.fit(z, variance)
        folds = np.array_split(np.random.default_rng(seed).permutation(m), CV_FOLDS)
        held = np.concatenate(
            [Pca.fit(z[np.setdiff1d(np.arange(m), fold)], variance).errors(z[fold]) for fold in folds]
        )
        # A class the model never predicts on its own training rows still gets a share: half a row's worth.
        shares = np.clip([reference.class_shares[c] for c in reference.classes], 0.5 / m, 1 - 0.5 / m)
        return cls(
            features=reference.feature_names,
            classes=list(reference.classes),
            mean=mean,
            sd=sd,
            shares=np.asarray(shares, dtype=float),
            pca=pca,
            error_mean=float(held.mean()),
            error_sd=float(max(held.std(ddof=1), 1e-9)),
            rows=m,
        )

    def standardise(self, rows: np.ndarray, predictions: Sequence[str]) -> np.ndarray:
        """Rows x signals, each signal with mean 0 and sd 1 on traffic like the training data."""
        x = np.asarray(rows, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise DriftError(
                f"rows have shape {x.shape}, the model has {len(self.features)} features: the log was written by "
                "another model"
            )
        z = (x - self.mean) / self.sd
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(predictions) - set(index))
        if unknown:
            raise DriftError(f"predictions {unknown} are not classes of the reference model {self.classes}")
        onehot = np.zeros((len(x), len(self.classes)))
        onehot[np.arange(len(x)), [index[p] for p in predictions]] = 1.0
        classes = (onehot - self.shares) / np.sqrt(self.shares * (1 - self.shares))
        error = (self.pca.errors(z) - self.error_mean) / self.error_sd
        return np.column_stack([z, classes, error])


# ----------------------------------------------------------------------------------------------- thresholds
def log_average_run_length(drift: float, h: float) -> float:
    """The log of Siegmund's approximation of a one-sided CUSUM's average run length (steps until it passes ``h``)
    when its increments are normal with mean ``drift`` (< 0 when nothing changed) and sd 1:
    ``(exp(-2 drift b) + 2 drift b - 1) / (2 drift²)`` with ``b = h + 1.166``. In logs: it overflows a float for
    the run lengths a strongly negative drift gives."""
    b = h + SIEGMUND_CORRECTION
    if abs(drift) < 1e-9:
        return 2 * math.log(b)
    a = -2 * drift * b
    rest = 2 * drift * b - 1
    if a > 30:  # exp(a) dwarfs the rest
        return a + math.log1p(rest * math.exp(-a)) - math.log(2 * drift * drift)
    return math.log(math.exp(a) + rest) - math.log(2 * drift * drift)


def average_run_length(drift: float, h: float) -> float:
    return math.exp(min(log_average_run_length(drift, h), 700.0))


@dataclass(frozen=True)
class Thresholds:
    resolution: float  # r: reference error accepted, sds
    shift: float  # the shift tuned for, sds (min_shift_sd, raised to 1.5 r when set below what r allows)
    allowance: float  # k
    h: float
    statistics: int  # S
    chunks_per_day: float
    target_run_length: float  # chunks, per statistic
    note: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def thresholds(reference: OnlineReference, settings: DriftWatchSettings) -> Thresholds:
    s = reference.statistics
    r = float(stats.norm.isf((1 - REFERENCE_CONFIDENCE) / (2 * s)) / math.sqrt(reference.rows))
    shift, note = settings.min_shift_sd, ""
    if shift < 1.5 * r:
        shift = 1.5 * r
        note = (
            f"min_shift_sd {settings.min_shift_sd:g} is within what a {reference.rows}-row reference can resolve "
            f"(r = {r:.2f} sd): tuned for {shift:.2f} sd instead; a larger training sample lowers r"
        )
    k = (r + shift) / 2
    chunks_per_day = SECONDS_PER_DAY / settings.interval_s
    target = s * chunks_per_day / settings.max_false_alarms_per_day
    drift = -(k - r) * math.sqrt(settings.min_chunk_rows)
    h = float(optimize.brentq(lambda x: log_average_run_length(drift, x) - math.log(target), 1e-6, 1e3))
    return Thresholds(r, shift, k, h, s, chunks_per_day, target, note)


# ------------------------------------------------------------------------------------------------- detector
@dataclass(frozen=True)
class ChunkVerdict:
    rows: int
    effects: dict[str, float]  # chunk mean per signal, reference sds
    statistics: dict[str, float]  # max(upper, lower) CUSUM per signal
    drifted: list[str]
    drift: bool
    class_shares: dict[str, float]
    first_ts: float | None = None
    last_ts: float | None = None


@dataclass
class Cusum:
    """The two-sided CUSUMs of one model version's signals. Sums are capped at ``CAP`` x h, so a drift that ends is
    forgotten within a bounded number of chunks (and the alert resolves)."""

    reference: OnlineReference
    limits: Thresholds
    upper: np.ndarray = field(init=False)
    lower: np.ndarray = field(init=False)
    CAP = 2.0

    def __post_init__(self) -> None:
        size = len(self.reference.signals)
        self.upper, self.lower = np.zeros(size), np.zeros(size)

    def update(
        self, rows: np.ndarray, predictions: Sequence[str], first_ts: float | None = None,
        last_ts: float | None = None,
    ) -> ChunkVerdict:  # fmt: skip
        signals = self.reference.standardise(rows, predictions)
        n = len(signals)
        e = signals.mean(axis=0)
        k, h, root = self.limits.allowance, self.limits.h, math.sqrt(n)
        cap = self.CAP * h
        self.upper = np.clip(self.upper + root * (e - k), 0.0, cap)
        self.lower = np.where(self.reference.two_sided, np.clip(self.lower + root * (-e - k), 0.0, cap), 0.0)
        both = np.maximum(self.upper, self.lower)
        names = self.reference.signals
        drifted = [name for name, value in zip(names, both, strict=True) if value > h]
        counts = {c: 0 for c in self.reference.classes}
        for p in predictions:
            counts[p] += 1
        return ChunkVerdict(
            rows=n,
            effects={name: float(v) for name, v in zip(names, e, strict=True)},
            statistics={name: float(v) for name, v in zip(names, both, strict=True)},
            drifted=drifted,
            drift=bool(drifted),
            class_shares={c: counts[c] / n for c in self.reference.classes},
            first_ts=first_ts,
            last_ts=last_ts,
        )
