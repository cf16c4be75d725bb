"""What `modelops monitor` shows: one sample of a running deployment, per colour and per replica.

Where each figure comes from:

- req/s, errors (5xx) and p50/p95/p99 per replica: the replica's own ``/metrics`` (BentoML's request counter and
  duration histogram for ``/predict``), read twice ``interval`` seconds apart and differenced — figures for that
  interval, not since start; a colour's figures merge its replicas' counters and buckets;
- whether HAProxy sends a replica requests: the target's status (HAProxy's runtime API locally);
- what clients see at the load balancer (local): HAProxy's ``fe_live`` frontend counters, differenced the same way;
- firing alerts: the deployment's Prometheus (``modelops up --monitoring``), else reported as not evaluated;
- anomalies: Prometheus' ``AnomalyFlagged`` alert when it runs; the live view also scores each colour's p95 over
  its own refreshes (modelops/monitor/anomaly.py, the same rolling median/MAD rule);
- drift: the newest ``drift.json`` under ``reports/drift/`` (written by `modelops drift`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelops.canary import DURATION_BUCKETS, PREDICT_ENDPOINT, histogram_quantile
from modelops.monitor import anomaly
from modelops.monitor.prometheus import query
from modelops.monitor.rules import ANOMALY_FLAGGED
from modelops.targets.base import Target, TargetStatus

REQUESTS = "bentoml_service_request_total"


@dataclass(frozen=True)
class Counters:
    """Cumulative /predict counters of one replica: requests, 5xx, and duration buckets {upper bound: count}."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    reachable: bool = True

    def minus(self, before: Counters) -> Counters:
        buckets = {b: c - before.buckets.get(b, 0.0) for b, c in self.buckets.items()}
        return Counters(self.requests - before.requests, self.errors - before.errors, buckets, self.reachable)

    def plus(self, other: Counters) -> Counters:
        buckets = dict(self.buckets)
        for bound, count in other.buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
        return Counters(self.requests + other.requests, self.errors + other.errors, buckets, self.reachable)


def parse_metrics(text: str) -> Counters:
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("endpoint") != PREDICT_ENDPOINT:
                continue
            if family.name == REQUESTS.removesuffix("_total") and sample.name == REQUESTS:
                requests += sample.value
                if sample.labels.get("http_response_code", "").startswith("5"):
                    errors += sample.value
            elif family.name == DURATION_BUCKETS and sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Counters(requests, errors, buckets)


def read_counters(url: str, client: httpx.Client) -> Counters:
    try:
        return parse_metrics(client.get(url + "/metrics").text)
    except httpx.HTTPError:
        return Counters(reachable=False)


@dataclass(frozen=True)
class Figures:
    rps: float
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(cls, delta: Counters, seconds: float) -> Figures:
        q = lambda p: (lambda v: round(v * 1000, 1) if v is not None else None)(histogram_quantile(p, delta.buckets))  # noqa: E731
        return cls(round(delta.requests / seconds, 1), round(delta.errors), q(0.5), q(0.95), q(0.99))


@dataclass(frozen=True)
class ReplicaView:
    name: str
    colour: str
    url: str
    healthy: bool
    in_rotation: bool | None
    reachable: bool
    figures: Figures


@dataclass(frozen=True)
class ColourView:
    colour: str
    bento: str
    weight: int
    live: bool
    figures: Figures


@dataclass
class Snapshot:
    time: float
    interval_s: float
    target: str
    url: str
    live_bento: str
    colours: list[ColourView]
    replicas: list[ReplicaView]
    balancer: dict | None  # what clients saw at the live frontend (local): requests/s, 5xx
    alerts: list[str] | None  # None: not evaluated (no Prometheus)
    prometheus: str | None
    anomaly: str
    drift: dict | None
    sources: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def latest_drift(reports: Path) -> dict | None:
    """Status, reason and time of the newest drift check's report, if any."""
    found = sorted(reports.glob("drift/*/drift.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    data = json.loads(found[-1].read_text())
    return {"status": data.get("status"), "reason": data.get("reason"), "report": str(found[-1])}


def _frontend(stats: Callable[[], list[dict[str, str]]] | None) -> tuple[float, float] | None:
    if stats is None:
        return None
    for row in stats():
        if row["pxname"] == "fe_live" and row["svname"] == "FRONTEND":
            return float(row.get("req_tot") or 0), float(row.get("hrsp_5xx") or 0)
    return None


def sample(
    target: Target,
    interval_s: float,
    prometheus_url: str | None,
    reports: Path,
    wait: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Snapshot:
    """Read every replica's counters, wait ``interval_s``, read again: the figures are that interval's."""
    status: TargetStatus = target.status()
    api = getattr(target, "api", None)
    stats = api.stats if api is not None and hasattr(api, "stats") else None
    replicas = [(colour, r) for colour, pool in status.pools.items() for r in pool.replicas]
    with httpx.Client(timeout=2.0) as client:
        before, fe_before, started = [read_counters(r.url, client) for _, r in replicas], _frontend(stats), clock()
        wait(interval_s)
        after, fe_after = [read_counters(r.url, client) for _, r in replicas], _frontend(stats)
    seconds = max(clock() - started, 1e-3)
    deltas = [a.minus(b) for a, b in zip(after, before, strict=True)]
    replica_views = [
        ReplicaView(r.name, colour, r.url, r.healthy, r.in_rotation, d.reachable, Figures.of(d, seconds))
        for (colour, r), d in zip(replicas, deltas, strict=True)
    ]
    colours = []
    for colour, pool in status.pools.items():
        merged = Counters()
        for (c, _), d in zip(replicas, deltas, strict=True):
            if c == colour:
                merged = merged.plus(d)
        colours.append(ColourView(colour, pool.bento, pool.weight, colour == status.live, Figures.of(merged, seconds)))
    balancer = None
    if fe_before is not None and fe_after is not None:
        balancer = {
            "rps": round((fe_after[0] - fe_before[0]) / seconds, 1),
            "errors_5xx": int(fe_after[1] - fe_before[1]),
        }
    alerts = None
    anomaly_status = "not evaluated: no Prometheus (`modelops up --monitoring`)"
    if prometheus_url:
        rows = query(prometheus_url, 'ALERTS{alertstate="firing"}')
        alerts = sorted(
            r["metric"]["alertname"] + "".join(f" {k}={v}" for k, v in sorted(r["metric"].items())
                                               if k in ("colour", "replica", "service_version", "proxy", "server"))
            for r in rows
        )  # fmt: skip
        flagged = [a for a in alerts if a.startswith(ANOMALY_FLAGGED)]
        anomaly_status = ("flagged: " + "; ".join(flagged)) if flagged else "none flagged (Prometheus)"
    sources = {
        "figures": "replicas' /metrics, differenced over the interval",
        "rotation": "HAProxy runtime API" if stats else f"{status.target} target status",
        "alerts": f"Prometheus at {prometheus_url}" if prometheus_url else "not evaluated (no Prometheus)",
    }
    return Snapshot(
        time=time.time(), interval_s=round(seconds, 2), target=status.target, url=status.url,
        live_bento=status.bento, colours=colours, replicas=replica_views, balancer=balancer, alerts=alerts,
        prometheus=prometheus_url, anomaly=anomaly_status, drift=latest_drift(reports), sources=sources,
    )  # fmt: skip


@dataclass
class P95History:
    """Each colour's p95 over the live view's refreshes, scored with the monitor's robust rule."""

    window: int
    threshold: float
    series: dict[str, list[float]] = field(default_factory=dict)

    def add(self, snapshot: Snapshot) -> str:
        flagged = []
        for view in snapshot.colours:
            if view.figures.p95_ms is None or math.isnan(view.figures.p95_ms):
                continue
            points = self.series.setdefault(view.colour, [])
            points.append(view.figures.p95_ms)
            hits = anomaly.detect(points, window=self.window, threshold=self.threshold, min_scale=1.0)
            if hits and hits[-1].index == len(points) - 1:
                flagged.append(f"{view.colour} p95 {hits[-1].value:.0f} ms (median {hits[-1].baseline:.0f} ms)")
        if flagged:
            return "flagged: " + "; ".join(flagged)
        shortest = min((len(p) for p in self.series.values()), default=0)
        if shortest <= self.window:
            return f"collecting p95 history ({shortest}/{self.window + 1} refreshes)"
        return "none flagged (p95 over the last refreshes)"


def render(snapshot: Snapshot):
    """The live view: colours, replicas, balancer, alerts, anomaly and drift lines (a rich renderable)."""
    from rich.console import Group, RenderableType
    from rich.table import Table
    from rich.text import Text

    ms = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    colours = Table("colour", "bento", "weight", "req/s", "p50 ms", "p95 ms", "p99 ms", "5xx", title="per colour")
    for c in snapshot.colours:
        f = c.figures
        name = f"{c.colour} (live)" if c.live else c.colour
        colours.add_row(name, c.bento, f"{c.weight}%", f"{f.rps:.1f}", ms(f.p50_ms), ms(f.p95_ms), ms(f.p99_ms),
                        f"[red]{f.errors}[/]" if f.errors else "0")  # fmt: skip
    replicas = Table("replica", "url", "in rotation", "req/s", "p50 ms", "p95 ms", "p99 ms", "5xx", title="per replica")
    for r in snapshot.replicas:
        f = r.figures
        rotation = {True: "[green]yes[/]", False: "[red]no[/]", None: "?"}[r.in_rotation]
        if not r.reachable:
            rotation += " [red](/metrics unreachable)[/]"
        replicas.add_row(r.name, r.url, rotation, f"{f.rps:.1f}", ms(f.p50_ms), ms(f.p95_ms), ms(f.p99_ms),
                         f"[red]{f.errors}[/]" if f.errors else "0")  # fmt: skip
    lines: list[RenderableType] = [
        Text.from_markup(
            f"[bold]{snapshot.target}[/] {snapshot.url}  live: {snapshot.live_bento}  (last {snapshot.interval_s:g} s)"
        ),
        colours,
        replicas,
    ]
    if snapshot.balancer is not None:
        b = snapshot.balancer
        lines.append(Text(f"clients at the load balancer: {b['rps']:.1f} req/s, {b['errors_5xx']} 5xx"))
    alerts = "not evaluated (no Prometheus: `modelops up --monitoring`)" if snapshot.alerts is None else (
        ", ".join(snapshot.alerts) or "none firing")  # fmt: skip
    lines.append(Text(f"alerts: {alerts}", style="red" if snapshot.alerts else ""))
    lines.append(Text(f"anomaly: {snapshot.anomaly}", style="red" if snapshot.anomaly.startswith("flagged") else ""))
    drift = snapshot.drift
    text = f"{drift['status']} — {drift['reason']}" if drift else "no check yet (`modelops drift`)"
    lines.append(Text("drift: " + text, style="red" if drift and drift["status"] == "drift" else ""))
    return Group(*lines)
