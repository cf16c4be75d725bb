"""Data drift: does a window of logged inputs and predictions still look like the training data?

Pure functions over arrays; the reference comes from the model's metadata (``bento/train.py`` saves per-feature
quantile histograms and a raw sample of every feature).

Per feature, two measures, and a feature has drifted only when **both** say so:

- **PSI** (population stability index) of the window against the training histogram: an effect size. Alone it is
  noisy on small windows (its expected value with no drift at all is about ``(bins - 1) * (1/n + 1/m)``: 0.09 for a
  500-row window against the 133 training rows).
- **Two-sample Kolmogorov-Smirnov** (``scipy.stats.ks_2samp``) of the window against the saved raw sample: a
  significance test, Bonferroni-corrected over the features (13 tests per check). Alone it flags shifts too small
  to matter once windows are large.

Predictions: the predicted class shares against the shares the model gives the training sample — PSI plus a
chi-square goodness-of-fit test (``scipy.stats.chisquare``), both required, for the same reason.

Why scipy and not a drift library (checked against this project's pins, Python 3.11, 2027-01):

- ``alibi-detect`` does not install: every release pins ``numpy < 2`` and we pin numpy 2.4.6 (0.13.0's resolver
  error), and older releases fail to build.
- ``evidently`` 0.7.23 installs, but brings 31 more packages (pandas, a 55 MB pyarrow, litestar, nltk, statsmodels,
  plotly, a telemetry client) into every environment that runs ``modelops``. Its tabular drift preset computes the
  same two things here (KS for small numeric samples, PSI as an option) from the same scipy functions.

So the statistics come from scipy, which is pinned already, and the report is ours (JSON + HTML from one model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from stacks.config import MonitorSettings

# Proportions are floored at this before PSI's logarithm: an empty bin is "very rare", not "impossible".
PSI_EPSILON = 1e-4
Status = Literal["drift", "no_drift", "inconclusive"]
DRIFT, NO_DRIFT, INCONCLUSIVE = "drift", "no_drift", "inconclusive"


class DriftError(ValueError):
    """The reference or the window cannot be compared. The message says what is missing and how to get it."""


@dataclass(frozen=True)
class FeatureReference:
    name: str
    edges: np.ndarray  # quantile bin edges of the training data (len = bins + 1)
    counts: np.ndarray  # training rows per bin
    sample: np.ndarray  # raw training values (for the KS test)


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


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Values per reference bin; values outside the training range count in the first or last bin."""
    inner = edges[1:-1]
    # side="right" puts a value equal to an inner edge into the upper bin, as np.histogram does.
    index = np.searchsorted(inner, values, side="right")
    return np.bincount(index, minlength=len(edges) - 1).astype(float)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two count (or share) vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=float) / np.sum(expected), PSI_EPSILON)
    a = np.maximum(np.asarray(actual, dtype=float) / max(np.sum(actual), 1), PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


class FeatureDrift(BaseModel):
    model_config = ConfigDict(frozen=True)

    feature: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    drifted: bool
    window_mean: float
    reference_mean: float
    window_counts: list[int] = Field(description="window rows per reference bin")
    reference_shares: list[float] = Field(description="share of training rows per bin")


class PredictionDrift(BaseModel):
    model_config = ConfigDict(frozen=True)

    psi: float
    chi2_pvalue: float
    drifted: bool
    window_shares: dict[str, float]
    reference_shares: dict[str, float]


class DriftReport(BaseModel):
    """The one result of a drift check: the JSON file is this model; the HTML and the exit code derive from it."""

    model_config = ConfigDict(frozen=True)

    status: Status
    reason: str
    rows: int
    model_version: str = ""
    first_ts: float | None = None
    last_ts: float | None = None
    thresholds: dict[str, float]
    features: list[FeatureDrift] = []
    predictions: PredictionDrift | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]


def feature_drift(
    reference: FeatureReference, values: np.ndarray, settings: MonitorSettings, tests: int
) -> FeatureDrift:
    counts = bin_counts(values, reference.edges)
    value = psi(reference.counts, counts)
    ks = stats.ks_2samp(values, reference.sample)
    return FeatureDrift(
        feature=reference.name,
        psi=value,
        ks_statistic=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        drifted=bool(value >= settings.psi_threshold and ks.pvalue < settings.ks_alpha / tests),
        window_mean=float(np.mean(values)),
        reference_mean=float(np.mean(reference.sample)),
        window_counts=[int(c) for c in counts],
        reference_shares=[float(c) for c in reference.counts / reference.counts.sum()],
    )


def prediction_drift(
    reference_shares: dict[str, float], predictions: Sequence[str], settings: MonitorSettings
) -> PredictionDrift:
    classes = list(reference_shares)
    unknown = sorted(set(predictions) - set(classes))
    if unknown:
        raise DriftError(
            f"the window holds predictions {unknown} that are not classes of the reference model {classes}: "
            "compare the log with the model that wrote it (--model)"
        )
    observed = np.array([sum(1 for p in predictions if p == c) for c in classes], dtype=float)
    shares = np.maximum(np.array([reference_shares[c] for c in classes]), PSI_EPSILON)
    shares = shares / shares.sum()
    expected = shares * observed.sum()
    chi2 = stats.chisquare(observed, expected)
    value = psi(shares, observed)
    total = max(observed.sum(), 1)
    return PredictionDrift(
        psi=value,
        chi2_pvalue=float(chi2.pvalue),
        drifted=bool(value >= settings.prediction_psi_threshold and chi2.pvalue < settings.prediction_alpha),
        window_shares={c: float(n / total) for c, n in zip(classes, observed, strict=True)},
        reference_shares=dict(reference_shares),
    )


def check_drift(
    reference: Reference,
    rows: np.ndarray,
    predictions: Sequence[str] | None,
    settings: MonitorSettings,
    model_version: str = "",
    first_ts: float | None = None,
    last_ts: float | None = None,
) -> DriftReport:
    """Compare a window (rows by features, and the predictions made for them) with the reference."""
    thresholds = {
        "psi_threshold": settings.psi_threshold,
        "ks_alpha": settings.ks_alpha,
        "prediction_psi_threshold": settings.prediction_psi_threshold,
        "prediction_alpha": settings.prediction_alpha,
        "min_rows": settings.min_rows,
    }
    common = {"rows": len(rows), "model_version": model_version, "first_ts": first_ts, "last_ts": last_ts}
    if len(rows) < settings.min_rows:
        return DriftReport(
            status=INCONCLUSIVE,
            reason=f"only {len(rows)} logged rows, fewer than modelops:monitor.min_rows ({settings.min_rows}): "
            "send more traffic, raise the log's sample rate, or lower min_rows",
            thresholds=thresholds,
            **common,
        )
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2 or rows.shape[1] != len(reference.features):
        raise DriftError(
            f"window rows have shape {rows.shape}, the model has {len(reference.features)} features: "
            "compare the log with the model that wrote it (--model)"
        )
    features = [
        feature_drift(ref, rows[:, i], settings, tests=len(reference.features))
        for i, ref in enumerate(reference.features)
    ]
    predicted = None
    if predictions is not None and reference.class_shares is not None:
        predicted = prediction_drift(reference.class_shares, predictions, settings)
    drifted = [f.feature for f in features if f.drifted]
    parts = []
    if drifted:
        parts.append("inputs drifted: " + ", ".join(drifted))
    if predicted is not None and predicted.drifted:
        parts.append(f"predicted class shares drifted (PSI {predicted.psi:.2f})")
    if parts:
        status, reason = DRIFT, "; ".join(parts)
    else:
        worst = max(features, key=lambda f: f.psi)
        status, reason = NO_DRIFT, f"no drift in {len(rows)} rows (largest PSI {worst.psi:.2f}, {worst.feature})"
    return DriftReport(
        status=status, reason=reason, thresholds=thresholds, features=features, predictions=predicted, **common
    )
