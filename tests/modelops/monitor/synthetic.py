"""A synthetic model for the drift monitor's tests: four features (a, b, c correlated; d independent) and a fixed
rule that predicts low / mid / high from a and d."""

from __future__ import annotations

import numpy as np

from modelops.monitor.drift import FeatureReference, Reference
from modelops.monitor.online import OnlineReference

NAMES = ["a", "b", "c", "d"]
COV = np.array([[1.0, 0.8, 0.6, 0.0], [0.8, 1.0, 0.7, 0.0], [0.6, 0.7, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
MEAN = np.array([10.0, 5.0, -2.0, 100.0])
SD = np.array([2.0, 1.0, 0.5, 10.0])


def draw(rng: np.random.Generator, n: int) -> np.ndarray:
    return MEAN + rng.multivariate_normal(np.zeros(4), COV, n) * SD


def predict(rows: np.ndarray) -> list[str]:
    z = (np.asarray(rows) - MEAN) / SD
    return ["low" if v < -0.5 else "high" if v > 0.5 else "mid" for v in z[:, 0] + z[:, 3]]


def reference(size: int = 2000) -> Reference:
    """The training reference: ``size`` rows (the online detector reads the raw sample; the histogram is unused)."""
    rows = draw(np.random.default_rng(0), size)
    labels = predict(rows)
    return Reference(
        features=[FeatureReference(n, np.array([0.0, 1.0]), np.array([1.0]), rows[:, i]) for i, n in enumerate(NAMES)],
        classes=["low", "mid", "high"],
        class_shares={c: labels.count(c) / len(labels) for c in ("low", "mid", "high")},
    )


def online_reference() -> OnlineReference:
    return OnlineReference.of(reference())
