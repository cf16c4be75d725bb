"""Drift: the training reference every drift judgement compares with, and the on-demand report's model.

The **verdict** is the drift monitor's detector (modelops/monitor/online.py: CUSUM per signal over chunks of the
prediction log, thresholds from ``monitor.drift``); `modelops drift` replays it over the log
(modelops/monitor/drift_view.py), so the command and the monitor say the same thing about the same rows.

Beside the verdict the report **describes** the newest logged rows (``monitor.window`` of them) against the
training sample — figures for a person, none of them a rule:

- per feature, the mean shift in training standard deviations with a 95 % interval that counts *both* samples'
  errors (the training sample is small: 133 rows for the wine model, so its own mean is known only to ±0.17 sd);
- the two-sample Kolmogorov-Smirnov distance D beside the D that sampling alone reaches in 95 % of pairs of
  samples of these sizes (with many recent rows that bound tends to 1.36/sqrt(training rows), the reference's own
  resolution, not to 0);
- histograms of the recent rows and the training sample on common bins;
- predicted class shares, recent and on the training rows, each with a Wilson 95 % interval.

What was removed, and why (issue 16): a feature counted as drifted when its PSI on 10 training-quantile bins and a
Bonferroni KS test both said so, predictions when PSI and a chi-square test did. PSI over bins of ~13 training rows
is mostly noise (normal traffic reached 0.38), the chi-square test treated class shares from 133 rows as exact, a
per-window test spends its false-alarm budget at every look, and the thresholds had been tuned on the seed that
then reported 0 false alarms in 100 windows.

Why scipy and not a drift library (checked against this project's pins, Python 3.11, 2027-01): ``alibi-detect``
does not install (every release pins ``numpy < 2``); ``evidently`` 0.7.23 installs but brings 31 more packages
(pandas, a 55 MB pyarrow, litestar, nltk, statsmodels, plotly, a telemetry client) into every environment that runs
``modelops``, for statistics scipy computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

Status = Literal["drift", "no_drift", "inconclusive"]
DRIFT, NO_DRIFT, INCONCLUSIVE = "drift", "no_drift", "inconclusive"
CONFIDENCE = 0.95  # of every interval the report shows
HISTOGRAM_BINS = 20


class DriftError(ValueError):
    """The reference or the window cannot be compared. The message says what is missing and how to get it."""


@dataclass(frozen=True)
class FeatureReference:
    name: str
    edges: np.ndarray  # quantile bin edges of the training data (len = bins + 1), as bento/train.py saves them
    counts: np.ndarray  # training rows per bin (the report draws its own common bins from the samples)
    sample: np.ndarray  # raw training values: the detector's reference rows, the report's figures


@dataclass(frozen=True)
class Reference:
    features: list[FeatureReference]
    classes: list[str]
    class_shares: dict[str, float] | None  # None: no prediction reference (no model to compute it with)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def rows(self) -> np.ndarray:
        """The training sample as rows. train.py takes every feature's sample from the same leading rows."""
        lengths = {len(f.sample) for f in self.features}
        if len(lengths) != 1:
            raise DriftError(
                f"the reference samples have different lengths {sorted(lengths)}: they are not whole rows; "
                "retrain the model with bento/train.py (`modelops build --retrain`)"
            )
        return np.column_stack([f.sample for f in self.features])


def reference_from_metadata(metadata: dict, predict: Callable[[np.ndarray], Sequence[str]] | None = None) -> Reference:
    """The drift reference of a model: its saved statistics, and the class shares ``predict`` gives its sample."""
    try:
        names = list(metadata["feature_names"])
        saved = metadata["reference_stats"]
        features = [
            FeatureReference(
                name=name,
                edges=np.asarray(saved[name]["histogram"]["edges"], dtype=float),
                counts=np.asarray(saved[name]["histogram"]["counts"], dtype=float),
                sample=np.asarray(saved[name]["sample"], dtype=float),
            )
            for name in names
        ]
        classes = [str(c) for c in metadata["classes"]]
    except (KeyError, TypeError) as exc:
        raise DriftError(
            f"the model's metadata has no usable reference statistics (missing {exc}): retrain it with "
            "bento/train.py (`modelops build --retrain`), which saves them"
        ) from None
    reference = Reference(features=features, classes=classes, class_shares=None)
    if predict is None:
        return reference
    labels = list(predict(reference.rows()))
    shares = {c: labels.count(c) / len(labels) for c in classes}
    return Reference(features=features, classes=classes, class_shares=shares)


# ------------------------------------------------------------------------------------------------ the report
class ChunkRecord(BaseModel):
    """One chunk the detector judged, and every signal's CUSUM after it."""

    model_config = ConfigDict(frozen=True)

    first_ts: float
    last_ts: float
    closes: float = Field(description="end of the chunk's last interval; for a look now, the time of the look")
    rows: int
    drifted: list[str]
    provisional: bool = Field(
        False, description="this view's own look at rows of intervals not closed yet (the monitor has not judged them)"
    )
    statistics: dict[str, float]


class SignalView(BaseModel):
    model_config = ConfigDict(frozen=True)

    signal: str
    cusum: float = Field(description="after the last chunk (drift above thresholds.h)")
    max_cusum: float = Field(description="highest after any chunk of the log")
    drifted: bool
    last_effect_sd: float = Field(description="the last chunk's mean, reference sds (the monitor's effect_sd)")


class FeatureView(BaseModel):
    """Descriptive figures of one feature on the recent rows (not a verdict: see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    feature: str
    recent_mean: float
    reference_mean: float
    reference_sd: float
    shift_sd: float = Field(description="recent mean minus training mean, in training sds")
    shift_low: float = Field(description="95 % interval of shift_sd, both samples' errors counted")
    shift_high: float
    ks_statistic: float = Field(description="two-sample Kolmogorov-Smirnov distance D, recent vs training")
    ks_sampling: float = Field(description="D reached by sampling alone in 95 % of pairs of samples of these sizes")
    bins: list[float] = Field(description="common histogram bin edges")
    recent_counts: list[int]
    reference_counts: list[int]


class ClassView(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    recent_share: float
    recent_low: float
    recent_high: float
    reference_share: float = Field(description="share the model predicts on its training sample")
    reference_low: float
    reference_high: float


class DriftReport(BaseModel):
    """The one result of `modelops drift`: the JSON file is this model; the HTML and the exit code derive from it."""

    model_config = ConfigDict(frozen=True)

    status: Status
    reason: str
    rows: int = Field(description="logged rows the detector judged")
    rows_waiting: int = Field(0, description="logged rows not judged: fewer than a chunk")
    model_version: str = ""
    first_ts: float | None = None
    last_ts: float | None = None
    looked_at: float | None = None
    thresholds: dict[str, Any] = Field(default_factory=dict)
    chunks: list[ChunkRecord] = []
    signals: list[SignalView] = []
    recent_rows: int = Field(0, description="newest logged rows the descriptive figures are computed on")
    reference_rows: int = 0
    features: list[FeatureView] = []
    classes: list[ClassView] = []

    @property
    def drifted_signals(self) -> list[str]:
        return [s.signal for s in self.signals if s.drifted]

    @property
    def drifted_features(self) -> list[str]:
        names = {f.feature for f in self.features}
        return [s for s in self.drifted_signals if s in names]


# ---------------------------------------------------------------------------------------- descriptive figures
def _z() -> float:
    return float(stats.norm.isf((1 - CONFIDENCE) / 2))


def describe_feature(name: str, reference: np.ndarray, recent: np.ndarray) -> FeatureView:
    reference, recent = np.asarray(reference, dtype=float), np.asarray(recent, dtype=float)
    m, n = len(reference), len(recent)
    ref_mean, ref_sd = float(reference.mean()), float(reference.std(ddof=1)) if m > 1 else 0.0
    scale = ref_sd if ref_sd > 0 else 1.0
    shift = (float(recent.mean()) - ref_mean) / scale
    # Both means are estimates: the reference's error is as real as the recent rows' (and with 133 training rows
    # often the larger one).
    error = float(np.sqrt((recent.var(ddof=1) if n > 1 else 0.0) / n + ref_sd**2 / m)) / scale
    bins = np.histogram_bin_edges(np.concatenate([reference, recent]), bins=HISTOGRAM_BINS)
    return FeatureView(
        feature=name,
        recent_mean=float(recent.mean()),
        reference_mean=ref_mean,
        reference_sd=ref_sd,
        shift_sd=shift,
        shift_low=shift - _z() * error,
        shift_high=shift + _z() * error,
        ks_statistic=float(stats.ks_2samp(recent, reference).statistic),
        ks_sampling=float(stats.kstwobign.isf(1 - CONFIDENCE) * np.sqrt((n + m) / (n * m))),
        bins=[float(b) for b in bins],
        recent_counts=[int(c) for c in np.histogram(recent, bins)[0]],
        reference_counts=[int(c) for c in np.histogram(reference, bins)[0]],
    )


def _wilson(count: int, total: int) -> tuple[float, float]:
    if total == 0:
        return 0.0, 1.0
    ci = stats.binomtest(int(count), int(total)).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def describe_classes(reference: Reference, predictions: Sequence[str]) -> list[ClassView]:
    if reference.class_shares is None:
        return []
    m, n = len(reference.rows()), len(predictions)
    views = []
    for c in reference.classes:
        count = sum(1 for p in predictions if p == c)
        share = reference.class_shares[c]
        views.append(
            ClassView(
                name=c,
                recent_share=count / n if n else 0.0,
                recent_low=_wilson(count, n)[0],
                recent_high=_wilson(count, n)[1],
                reference_share=share,
                reference_low=_wilson(round(share * m), m)[0],
                reference_high=_wilson(round(share * m), m)[1],
            )
        )
    return views
