"""Measure the drift monitor's detector (modelops/monitor/online.py), as `modelops drift --calibrate` reports it:
false alarms over simulated days of normal traffic, and how long shifts of 0.5, 1 and 2 sd on 1 and on 3 features
take to be found.

Normal traffic is what a client of the wine model sends: rows drawn from the data the model never saw (the
held-out split of ``bento/train.py``). The held-out split has only 45 rows, so a long stream of exact copies is not a
sample of a population but of 45 points; ``jitter`` adds noise shaped like their covariance (a smoothed bootstrap,
modelops/monitor/traffic.py). The thresholds come from the model's reference alone: no traffic is used to set them.

(The window check that `modelops drift` ran before it became the monitor's view — PSI and KS per 500-row window —
was measured here as a per-window rate; it is gone, and so is its calibration.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from modelops.monitor.drift import DriftError, Reference
from modelops.monitor.online import ChunkVerdict, Cusum, OnlineReference, thresholds
from stacks.config import DriftWatchSettings

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


SHIFTS_SD = (0.5, 1.0, 2.0)
FEATURE_COUNTS = (1, 3)


class _Stream:
    """The monitor's chunking (modelops/monitor/chunks.py): rows arrive at ``rate`` per second (Poisson per
    interval); a chunk is judged at the first interval end with at least min_chunk_rows rows pending."""

    def __init__(self, settings: DriftWatchSettings, rate: float, rng: np.random.Generator) -> None:
        self.settings, self.rate, self.rng = settings, rate, rng
        self.pending = 0

    def chunks(self, seconds: float) -> list[tuple[float, int]]:
        """(time of the look, rows judged) for each chunk in ``seconds`` of traffic."""
        out: list[tuple[float, int]] = []
        looks = int(seconds // self.settings.interval_s)
        arrivals = self.rng.poisson(self.rate * self.settings.interval_s, looks)
        for i, n in enumerate(arrivals):
            self.pending += int(n)
            if self.pending >= self.settings.min_chunk_rows:
                out.append(((i + 1) * self.settings.interval_s, self.pending))
                self.pending = 0
        return out


def _judge(cusum: Cusum, rows: np.ndarray, predict: Predict) -> ChunkVerdict:
    return cusum.update(rows, list(predict(rows)))


@dataclass(frozen=True)
class DayResult:
    days: float
    chunks: int
    rows: int
    false_alarms: int  # alarm starts (each would be one DriftDetected notification)
    alarm_signals: list[str]  # the signals of each false alarm


@dataclass(frozen=True)
class DelayResult:
    shift_sd: float
    features: list[str]
    delay_s: float | None  # None: not found within the horizon
    delay_rows: int | None


def simulate_days(
    reference: OnlineReference, predict: Predict, sample: Callable[[int], np.ndarray], settings: DriftWatchSettings,
    rate: float, days: float, rng: np.random.Generator,
) -> DayResult:  # fmt: skip
    """Normal traffic for ``days`` through a fresh detector: how many times does it start alarming?"""
    cusum = Cusum(reference, thresholds(reference, settings))
    stream = _Stream(settings, rate, rng)
    alarms: list[str] = []
    rows = chunks = 0
    alarmed = False
    # A simulated hour at a time: the model predicts many rows per call (cheap) without holding a day in memory.
    for _ in range(int(np.ceil(days * 24))):
        for _when, n in stream.chunks(3600):
            verdict = _judge(cusum, sample(n), predict)
            chunks, rows = chunks + 1, rows + n
            if verdict.drift and not alarmed:
                alarms.append("+".join(verdict.drifted))
            alarmed = verdict.drift
    return DayResult(days=days, chunks=chunks, rows=rows, false_alarms=len(alarms), alarm_signals=alarms)


def time_to_detect(
    reference: OnlineReference, predict: Predict, sample: Callable[[int], np.ndarray], settings: DriftWatchSettings,
    rate: float, columns: list[int], shift_sd: float, rng: np.random.Generator, warmup_s: float = 1800,
    horizon_s: float = 4 * 3600,
) -> DelayResult:  # fmt: skip
    """Normal traffic for ``warmup_s``, then every row with ``columns`` moved by ``shift_sd`` training sds: the
    seconds (and rows) from the first shifted row to the first chunk judged drifted."""
    cusum = Cusum(reference, thresholds(reference, settings))
    stream = _Stream(settings, rate, rng)
    for _when, n in stream.chunks(warmup_s):
        _judge(cusum, sample(n), predict)
    stream.pending = 0  # the shift starts at a look: the first shifted chunk holds shifted rows only
    names = [reference.features[c] for c in columns]
    seen = 0
    for when, n in stream.chunks(horizon_s):
        rows = sample(n)
        rows[:, columns] += shift_sd * reference.sd[columns]
        seen += n
        if _judge(cusum, rows, predict).drift:
            return DelayResult(shift_sd, names, float(when), seen)
    return DelayResult(shift_sd, names, None, None)


@dataclass(frozen=True)
class OnlineCalibration:
    model: str
    rate: float
    settings: dict
    thresholds: dict
    day: DayResult
    delays: list[DelayResult]

    def summary(self) -> list[dict]:
        """Per shift and feature count: found, missed, median and max delay (seconds)."""
        rows = []
        for shift in sorted({abs(d.shift_sd) for d in self.delays}):
            for count in sorted({len(d.features) for d in self.delays}):
                group = [d for d in self.delays if abs(d.shift_sd) == shift and len(d.features) == count]
                found = [d.delay_s for d in group if d.delay_s is not None]
                rows.append(
                    {
                        "shift_sd": shift,
                        "features": count,
                        "found": len(found),
                        "trials": len(group),
                        "median_delay_s": float(np.median(found)) if found else None,
                        "max_delay_s": max(found) if found else None,
                        "missed": [
                            f"{'+' if d.shift_sd > 0 else '-'}{','.join(d.features)}"
                            for d in group
                            if d.delay_s is None
                        ],
                    }
                )
        return rows

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary()}


def calibrate_online(
    reference: Reference, predict: Predict, heldout: np.ndarray, settings: DriftWatchSettings, model: str = "",
    rate: float = 10.0, days: float = 1.0, jitter: float = 0.3, seed: int = 0,
    shifts: Sequence[float] = SHIFTS_SD, counts: Sequence[int] = FEATURE_COUNTS,
) -> OnlineCalibration:  # fmt: skip
    """False alarms over ``days`` of normal traffic at ``rate`` rows/s, then one shifted stream per feature (and per
    run of 3 neighbouring features) and shift."""
    online = OnlineReference.of(reference, settings.pca_variance)
    rng = np.random.default_rng(seed)
    sample = normal_traffic(heldout, jitter, rng)
    day = simulate_days(online, predict, sample, settings, rate, days, rng)
    width = len(online.features)
    # Both directions: a feature whose traffic already sits a little below its reference mean is slow to show an
    # upward shift and quick to show a downward one; one direction alone would report that feature's luck.
    delays = [
        time_to_detect(
            online, predict, sample, settings, rate, [(j + k) % width for k in range(count)], sign * shift, rng
        )
        for shift in shifts
        for count in counts
        for sign in (1.0, -1.0)
        for j in range(width)
    ]
    return OnlineCalibration(
        model=model, rate=rate, settings=settings.model_dump(),
        thresholds=thresholds(online, settings).to_dict(), day=day, delays=delays,
    )  # fmt: skip
