"""Measure the drift check: its false-alarm rate on normal traffic and its detection delay on shifted traffic.

Normal traffic is what a client of the wine model sends: rows drawn from the data the model never saw (the
held-out split of ``bento/train.py``), with replacement. The held-out split has only 45 rows, so a long window of
exact copies is not a sample of a population but of 45 points (the KS test would be measuring the duplicates);
``jitter`` adds Gaussian noise of that many held-out standard deviations per feature (a smoothed bootstrap).
Both figures are reported by ``modelops drift --calibrate`` (``--jitter 0`` for exact copies).

Detection delay: a stream of one-row requests whose first ``window`` rows are normal, then every row has
``feature`` moved by ``shift_std`` training standard deviations; the check runs on the last ``window`` rows
every ``step`` requests, as a monitor polling the log would. The delay is the shifted requests until the first
check that says drift (None: not within ``max_requests``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from modelops.monitor.drift import DRIFT, DriftError, Reference, check_drift
from stacks.config import MonitorSettings

Predict = Callable[[np.ndarray], Sequence[str]]


def heldout_rows(metadata: dict) -> np.ndarray:
    """The rows bento/train.py held out from training (same data, seed and split), as a client would send them."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    data = load_wine()
    test_rows = int(metadata.get("metrics", {}).get("test_rows", 0))
    _, x_test, _, _ = train_test_split(
        data.data, data.target, test_size=test_rows or 0.25, random_state=metadata.get("seed", 1), stratify=data.target
    )
    if list(metadata.get("feature_names", [])) != [str(n) for n in data.feature_names]:
        raise DriftError(
            "calibration needs a model trained on sklearn's wine data (bento/train.py): got other features"
        )
    return x_test


def normal_traffic(heldout: np.ndarray, jitter: float, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    """A sampler of n normal rows: the smoothed bootstrap of the held-out rows that ``modelops traffic`` sends."""
    from modelops.monitor.traffic import smoothed_bootstrap

    def sample(n: int) -> np.ndarray:
        return smoothed_bootstrap(heldout, n, jitter, rng)[0]

    return sample


def false_alarms(
    reference: Reference, predict: Predict, sample: Callable[[int], np.ndarray], settings: MonitorSettings, windows: int
) -> int:
    """How many of ``windows`` independent windows of normal traffic the check calls drifted."""
    flagged = 0
    for _ in range(windows):
        rows = sample(settings.window)
        flagged += check_drift(reference, rows, predict(rows), settings).status == DRIFT
    return flagged


def detection_delay(
    reference: Reference,
    predict: Predict,
    sample: Callable[[int], np.ndarray],
    settings: MonitorSettings,
    feature: str,
    shift_std: float,
    step: int,
    max_requests: int,
) -> int | None:
    """Shifted one-row requests until the check first says drift (None: not within max_requests)."""
    names = reference.feature_names
    if feature not in names:
        raise DriftError(f"unknown feature {feature!r}: choose one of {', '.join(names)}")
    column = names.index(feature)
    shifted = sample(max_requests)
    shifted[:, column] += shift_std * reference.features[column].sample.std(ddof=1)
    stream = np.vstack([sample(settings.window), shifted])
    labels = list(predict(stream))  # one predict call for the whole stream: the model is deterministic
    for seen in range(step, max_requests + 1, step):
        end = settings.window + seen
        window = stream[end - settings.window : end]
        if check_drift(reference, window, labels[end - settings.window : end], settings).status == DRIFT:
            return seen
    return None


@dataclass(frozen=True)
class Calibration:
    window: int
    windows: int
    false_alarms: int
    false_alarm_rate: float
    jitter: float
    feature: str
    shift_std: float
    step: int
    max_requests: int
    delays: list[int | None]
    median_delay: float | None  # over the trials that detected the shift
    max_delay: int | None
    missed: int  # trials that never flagged the shift within max_requests

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(
    reference: Reference,
    predict: Predict,
    heldout: np.ndarray,
    settings: MonitorSettings,
    windows: int = 100,
    trials: int = 20,
    feature: str = "alcohol",
    shift_std: float = 1.0,
    jitter: float = 0.3,
    step: int = 10,
    max_requests: int | None = None,
    seed: int = 0,
) -> Calibration:
    rng = np.random.default_rng(seed)
    sample = normal_traffic(heldout, jitter, rng)
    limit = max_requests or 4 * settings.window
    alarms = false_alarms(reference, predict, sample, settings, windows)
    delays = [
        detection_delay(reference, predict, sample, settings, feature, shift_std, step, limit) for _ in range(trials)
    ]
    found = [d for d in delays if d is not None]
    return Calibration(
        window=settings.window,
        windows=windows,
        false_alarms=alarms,
        false_alarm_rate=alarms / windows,
        jitter=jitter,
        feature=feature,
        shift_std=shift_std,
        step=step,
        max_requests=limit,
        delays=delays,
        median_delay=float(np.median(found)) if found else None,
        max_delay=max(found) if found else None,
        missed=len(delays) - len(found),
    )
