"""`modelops monitor --calibrate`: the AnomalyFlagged rule's false alarms over simulated days of normal operation.

The rule is one method in PromQL and Python (modelops/monitor/anomaly.py; a test shows they fire identically), so
the Python side run over simulated series measures the rule Prometheus evaluates. The series are what Prometheus
would record, at the scrape interval, from traffic that did nothing unusual:

- requests: Poisson arrivals at ``rate`` req/s with a daily swing of ±50 % (busy afternoons, quiet nights);
- latency: log-normal per request (median 5 ms, sigma 0.4), counted in BentoML's default histogram buckets and
  turned into a p95 over the rate window with Prometheus' ``histogram_quantile`` (linear within a bucket);
- 5xx: each request fails with probability 1e-4; 4xx (clients' invalid rows): 0.5 %;
- class mix: the drift monitor's chunk shares (one chunk per look, multinomial with the model's shares).

Every alert start is a false alarm: nothing happened. These are synthetic series (no replica was measured): the
figure says what the rule does with noise of this shape, and the tests show what it does with real anomalies.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
from rich.console import Console
from rich.table import Table

from modelops.canary import histogram_quantile
from modelops.errors import UsageError
from modelops.monitor import anomaly
from stacks import alerting
from stacks.config import StackConfig

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, float("inf"))
LATENCY_MEDIAN_S, LATENCY_SIGMA = 0.005, 0.4
SERVER_ERROR_P, CLIENT_ERROR_P = 1e-4, 0.005
CLASS_SHARE = 0.33


@dataclass(frozen=True)
class SignalDay:
    signal: str
    false_alarms: int
    points: int
    condition_points: int  # points where the condition held (before for:)


@dataclass(frozen=True)
class AnomalyDay:
    days: float
    rate: float
    step_s: int
    settings: dict
    signals: list[SignalDay]

    @property
    def false_alarms(self) -> int:
        return sum(s.false_alarms for s in self.signals)

    def to_dict(self) -> dict:
        return {**asdict(self), "false_alarms": self.false_alarms}


def _windowed(per_step: np.ndarray, steps: int) -> np.ndarray:
    """Sums over the last ``steps`` steps (axis 0), like increase() over the rate window."""
    cumulative = np.cumsum(per_step, axis=0)
    shifted = np.zeros_like(cumulative)
    shifted[steps:] = cumulative[:-steps]
    return cumulative - shifted


def simulate(settings: StackConfig, rate: float = 10.0, days: float = 1.0, seed: int = 0) -> AnomalyDay:
    m = settings.monitor
    step = m.scrape_interval_s
    n = int(days * 86_400 / step)
    window = max(1, m.rate_window_s // step)
    rng = np.random.default_rng(seed)
    t = np.arange(n) * step
    arrivals = rng.poisson(rate * (1 + 0.5 * np.sin(2 * np.pi * t / 86_400)) * step)
    # Latency: each step's requests spread over the buckets (a multinomial over the log-normal's bucket shares).
    edges = np.log(np.array(BUCKETS[:-1]) / LATENCY_MEDIAN_S) / LATENCY_SIGMA
    from scipy import stats

    cdf = np.r_[stats.norm.cdf(edges), 1.0]
    shares = np.diff(np.r_[0.0, cdf])
    per_bucket = np.array([rng.multinomial(k, shares) for k in arrivals])
    in_window = _windowed(per_bucket, window)
    cumulative = np.cumsum(in_window, axis=1)
    p95 = np.array([histogram_quantile(0.95, dict(zip(BUCKETS, row, strict=True))) or np.nan for row in cumulative])
    requests = _windowed(arrivals, window).astype(float)
    server = _windowed(rng.binomial(arrivals, SERVER_ERROR_P), window).astype(float)
    client = _windowed(rng.binomial(arrivals, CLIENT_ERROR_P), window).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        server_ratio, client_ratio = server / requests, client / requests
    # Class mix: one chunk per drift look (at least min_chunk_rows rows), held until the next.
    look = max(1, m.drift.interval_s // step)
    chunk_rows = np.maximum(_windowed(arrivals, look)[::look], m.drift.min_chunk_rows)
    share = np.repeat(rng.binomial(chunk_rows, CLASS_SHARE) / chunk_rows, look)[:n]
    hold = m.anomaly_for_s // step
    judged = {
        alerting.SIGNAL_P95: anomaly.condition(p95, m.anomaly_window, m.anomaly_threshold,
                                               alerting.LATENCY_MIN_SCALE_S, "up"),
        alerting.SIGNAL_5XX: anomaly.condition(server_ratio, m.anomaly_window, m.anomaly_threshold,
                                               alerting.ERROR_RATIO_MIN_SCALE, "up", events=server,
                                               min_events=m.anomaly_min_events),
        alerting.SIGNAL_4XX: anomaly.condition(client_ratio, m.anomaly_window, m.anomaly_threshold,
                                               alerting.ERROR_RATIO_MIN_SCALE, "up", events=client,
                                               min_events=m.anomaly_min_events),
        alerting.SIGNAL_TRAFFIC: anomaly.condition(requests / m.rate_window_s, m.anomaly_window, m.anomaly_threshold,
                                                   alerting.traffic_min_scale(settings), "down",
                                                   min_events=m.anomaly_min_events, baseline_events=m.rate_window_s),
        alerting.SIGNAL_CLASS_MIX: anomaly.condition(share, m.anomaly_window, m.anomaly_threshold,
                                                     alerting.CLASS_SHARE_MIN_SCALE, "both"),
    }  # fmt: skip
    signals = [
        SignalDay(name, len(anomaly.alert_starts(anomaly.firing(held, hold))), n, int(held.sum()))
        for name, held in judged.items()
    ]
    keys = ("scrape_interval_s", "rate_window_s", "anomaly_window", "anomaly_threshold", "anomaly_for_s",
            "anomaly_min_events")  # fmt: skip
    return AnomalyDay(days, rate, step, {k: getattr(m, k) for k in keys}, signals)


def run_and_print(out: Console, settings: StackConfig, rate: float, days: float, seed: int, as_json: bool) -> None:
    if rate <= 0 or days <= 0:
        raise UsageError(f"--rate and --days must be positive, got {rate} and {days}")
    result = simulate(settings, rate, days, seed)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return
    s = result.settings
    table = Table("signal", "false alarms", "points with the condition (before for:)",
                  title=f"AnomalyFlagged on {days:g} simulated day(s) of normal traffic at {rate:g} req/s "
                  f"(z > {s['anomaly_threshold']:g} against {s['anomaly_window']} points, for {s['anomaly_for_s']} s, "
                  f">= {s['anomaly_min_events']} events)")  # fmt: skip
    for signal in result.signals:
        table.add_row(signal.signal, str(signal.false_alarms), f"{signal.condition_points} of {signal.points}")
    out.print(table)
    out.print(f"false alarms in all: [bold]{result.false_alarms}[/] ({result.false_alarms / days:.2f} a day)")
