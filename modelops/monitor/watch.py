"""The drift monitor: a process beside the deployment that judges the prediction log on its own and exports what it
sees as Prometheus metrics (started by ``modelops up --monitoring``, stopped by ``modelops down``).

Every ``monitor.drift.interval_s`` (just after each interval closes) it reads the rows logged since its last look
(modelops/monitor/logread.py) and judges the live model's rows in chunks with the online detector
(modelops/monitor/online.py): an interval's rows join the pending chunk, which is judged once it holds at least
``min_chunk_rows`` rows. Intervals are cut by the rows' own log times (modelops/monitor/chunks.py), so `modelops
drift` replays the same chunks from the log and says what this monitor says. Rows of another model version than
the newest are set aside: a promotion starts a new detector against the new model's own reference. It serves on
127.0.0.1:

- ``modelops_drift_detected{model_version}`` (1 while any signal's CUSUM is over its threshold: ``DriftDetected``),
  per signal its CUSUM, whether it drifted, and the last chunk's mean shift in reference sds; the threshold h;
- ``modelops_drift_data_age_seconds``: now minus the newest row judged (the monitor's uptime before the first chunk),
  rows and chunks judged;
- ``modelops_predicted_class_share{model_version,class}``: the last chunk's class mix (an anomaly signal);
- the prediction log's counters as the writers publish them, and what this reader read and could not parse.

It also writes ``status.json`` (the last verdict, thresholds and counters) in its directory, for `modelops status`
readers and for the start-up handshake (like the autoscaler's state file).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from types import FrameType

import numpy as np
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelops.errors import ModelopsError
from modelops.monitor import chunks, logread
from modelops.monitor.drift import DriftError, Reference
from modelops.monitor.online import ChunkVerdict, Cusum, OnlineReference, Thresholds, thresholds
from modelops.state import write_json
from stacks import alerting
from stacks.config import StackConfig, validate_settings

STATUS_FILE = "status.json"
# How the deployment starts the monitor (arguments follow). `-c`, not `-m`: runpy would import this module twice.
COMMAND = [sys.executable, "-c", "import sys; from modelops.monitor.watch import main; sys.exit(main())"]

LoadReference = Callable[[str], Reference]
MetricsUrls = Callable[[], dict[str, str]]


class Watch:
    """The monitor's state and one look at the log. Thread-safe for readers (the metrics endpoint)."""

    def __init__(
        self,
        settings: StackConfig,
        log_dir: Path,
        load_reference: LoadReference,
        metrics_urls: MetricsUrls | None = None,
        clock: Callable[[], float] = time.time,
        since: float | None = None,
    ) -> None:
        self.settings = settings
        self.drift_settings = settings.monitor.drift
        self.log_dir = Path(log_dir)
        self.load_reference = load_reference
        self.metrics_urls = metrics_urls
        self.clock = clock
        self.started = clock()
        self.tail = logread.LogTail(self.log_dir, since=self.started if since is None else since)
        self._lock = threading.Lock()
        self.model_version = ""
        self.cusum: Cusum | None = None
        self.limits: Thresholds | None = None
        self.chunker: chunks.Chunker[logread.Row] | None = None
        self.last: ChunkVerdict | None = None
        self.last_judged_ts: float | None = None
        self.rows_judged = 0
        self.chunks = 0
        self.records_read = 0
        self.malformed = 0
        self.set_aside = 0  # rows of another model version than the live one
        self.late = 0  # rows that reached the log after their interval was judged (judged with the next chunk)
        self.log_counters: dict[str, dict[str, float]] = {}
        self.error = ""

    # --- one look
    def look(self) -> ChunkVerdict | None:
        """Read what was logged, judge every chunk completed by the intervals closed now; the last verdict."""
        batch = self.tail.read()
        counters = logread.writer_counters(self.log_dir, self.metrics_urls() if self.metrics_urls else None)
        with self._lock:
            self.records_read += batch.records
            self.malformed += batch.malformed
            self.log_counters = counters or self.log_counters
            if batch.rows:
                newest = batch.rows[-1].model_version
                if newest != self.model_version:
                    self._switch(newest, batch.rows[0].ts)
                kept = [r for r in batch.rows if r.model_version == self.model_version]
                self.set_aside += len(batch.rows) - len(kept)
                if self.chunker is not None:
                    self.chunker.add(kept)
            if self.cusum is None or self.chunker is None:
                return None
            verdict = None
            for chunk in self.chunker.close(chunks.closed_until(self.clock(), self.drift_settings.interval_s)):
                verdict = self.cusum.update(
                    np.asarray([r.features for r in chunk], dtype=float),
                    [r.prediction for r in chunk],
                    first_ts=chunk[0].ts,
                    last_ts=chunk[-1].ts,
                )
                self.last, self.last_judged_ts = verdict, chunk[-1].ts
                self.rows_judged += verdict.rows
                self.chunks += 1
            self.late = self.chunker.late
            return verdict

    def _switch(self, version: str, start: float) -> None:
        """A new live model: a detector against its own reference; rows of the old one are set aside."""
        self.set_aside += self.chunker.waiting if self.chunker else 0
        self.last, self.cusum, self.limits, self.chunker, self.error = None, None, None, None, ""
        self.model_version = version
        try:
            reference = OnlineReference.of(self.load_reference(version), self.drift_settings.pca_variance)
        except (DriftError, ModelopsError) as exc:
            self.error = f"no reference for {version}: {exc}"
            return
        self.limits = thresholds(reference, self.drift_settings)
        self.cusum = Cusum(reference, self.limits)
        settings = self.drift_settings
        self.chunker = chunks.Chunker(settings.interval_s, settings.min_chunk_rows, start=start)

    # --- what it exports
    def data_age(self) -> float:
        return self.clock() - (self.last_judged_ts if self.last_judged_ts is not None else self.started)

    def status(self) -> dict:
        with self._lock:
            last = asdict(self.last) if self.last else None
            return {
                "updated": self.clock(),
                "model_version": self.model_version,
                "drift": bool(self.last and self.last.drift),
                "last_chunk": last,
                "thresholds": self.limits.to_dict() if self.limits else None,
                "data_age_s": round(self.data_age(), 3),
                "rows_judged": self.rows_judged,
                "chunks": self.chunks,
                "pending_rows": self.chunker.waiting if self.chunker else 0,
                "late_rows": self.late,
                "records_read": self.records_read,
                "malformed_lines": self.malformed,
                "rows_set_aside": self.set_aside,
                "log_counters": self.log_counters,
                "error": self.error,
            }

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            version = self.model_version
            age = GaugeMetricFamily(alerting.DRIFT_DATA_AGE, "Seconds since the newest row the monitor judged")
            age.add_metric([], self.data_age())
            yield age
            rows = CounterMetricFamily(alerting.DRIFT_ROWS, "Logged rows judged for drift", labels=["model_version"])
            chunks = CounterMetricFamily(alerting.DRIFT_CHUNKS, "Chunks judged for drift", labels=["model_version"])
            rows.add_metric([version], self.rows_judged)
            chunks.add_metric([version], self.chunks)
            yield rows
            yield chunks
            read = CounterMetricFamily(alerting.LOG_RECORDS_READ, "Prediction-log records the monitor read")
            read.add_metric([], self.records_read)
            yield read
            bad = CounterMetricFamily(alerting.LOG_MALFORMED, "Prediction-log lines that were not a record")
            bad.add_metric([], self.malformed)
            yield bad
            for name, key in ((alerting.LOG_WRITTEN, "written"), (alerting.LOG_DROPPED, "dropped"),
                              (alerting.LOG_ERRORS, "errors")):  # fmt: skip
                family = CounterMetricFamily(name, f"Prediction-log records {key}, as its writers report them",
                                             labels=["writer"])  # fmt: skip
                for writer, values in sorted(self.log_counters.items()):
                    if key in values:
                        family.add_metric([writer], values[key])
                yield family
            if not version or self.limits is None:
                return
            detected = GaugeMetricFamily(alerting.DRIFT_METRIC, "1 while the online detector says drift",
                                         labels=["model_version"])  # fmt: skip
            detected.add_metric([version], float(bool(self.last and self.last.drift)))
            yield detected
            h = GaugeMetricFamily(alerting.DRIFT_THRESHOLD, "The CUSUM's alarm level h", labels=["model_version"])
            h.add_metric([version], self.limits.h)
            yield h
            if self.last is None:
                return
            labels = ["model_version", "signal"]
            cusum = GaugeMetricFamily(alerting.DRIFT_STATISTIC, "CUSUM per signal (drift above h)", labels=labels)
            effect = GaugeMetricFamily(alerting.DRIFT_EFFECT, "Last chunk's mean shift, reference sds", labels=labels)
            drifted = GaugeMetricFamily(alerting.DRIFT_SIGNAL_DRIFTED, "1 while the signal drifted", labels=labels)
            for name, value in self.last.statistics.items():
                cusum.add_metric([version, name], value)
                effect.add_metric([version, name], self.last.effects[name])
                drifted.add_metric([version, name], float(name in self.last.drifted))
            yield cusum
            yield effect
            yield drifted
            shares = GaugeMetricFamily(alerting.CLASS_SHARE, "Predicted class shares of the last chunk",
                                       labels=["model_version", "class"])  # fmt: skip
            for cls, share in self.last.class_shares.items():
                shares.add_metric([version, cls], share)
            yield shares


class _Collector(Collector):
    def __init__(self, watch: Watch) -> None:
        self.watch = watch

    def collect(self) -> Iterator[Metric]:
        return self.watch.collect()


def registry_for(watch: Watch) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(watch))
    return registry


def _store_reference(version: str) -> Reference:
    from modelops.monitor.drift_report import store_reference

    return store_reference(version)


def _replica_metrics(settings: StackConfig, state_dir: Path) -> MetricsUrls:
    def urls() -> dict[str, str]:
        from modelops.targets.local.target import LocalTarget

        state = LocalTarget(settings, state_dir=state_dir).load()
        if state is None:
            return {}
        return {f"{colour}-{r.slot}": f"{r.url}/metrics" for colour, pool in state.pools.items() for r in pool.replicas}

    return urls


def main(argv: list[str] | None = None) -> int:
    from prometheus_client import start_http_server

    parser = argparse.ArgumentParser(description="the drift monitor of a deployment (started by `modelops up`)")
    parser.add_argument("--settings", type=Path, required=True, help="the deployment's settings, JSON")
    parser.add_argument("--log-dir", type=Path, required=True, help="the prediction log directory")
    parser.add_argument("--dir", type=Path, required=True, help="where to write status.json")
    parser.add_argument("--port", type=int, required=True, help="metrics port on 127.0.0.1")
    parser.add_argument("--state-dir", type=Path, help="the local target's state (replicas' /metrics for counters)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = validate_settings(json.loads(args.settings.read_text()), source=str(args.settings))
    urls = _replica_metrics(settings, args.state_dir) if args.state_dir else None
    watch = Watch(settings, args.log_dir, _store_reference, metrics_urls=urls)
    stop = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    server, thread = start_http_server(args.port, addr="127.0.0.1", registry=registry_for(watch))
    status = args.dir / STATUS_FILE
    try:
        while True:
            try:
                watch.look()
            except Exception as exc:  # a watcher outlives one bad look: it is said in status.json and the log
                watch.error = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                sys.stderr.flush()
            write_json(status, watch.status())
            # Wake when the next interval closes (chunks.py): a look then judges it whole.
            if stop.wait(max(0.0, chunks.next_look(time.time(), settings.monitor.drift.interval_s) - time.time())):
                break
    finally:
        server.shutdown()
        thread.join(5)
    return 0
