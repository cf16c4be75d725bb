"""The Prometheus rules file: recording and alerting rules generated from the stack settings (slo + monitor).

One source of thresholds: ``modelops:slo`` (p95, error ratio) and ``modelops:monitor`` (windows, durations,
anomaly threshold) in ``stacks/Pulumi.<stack>.yaml``. Prometheus loads the file locally and on kind; the aws
stack's CloudWatch alarms read the same settings.

Metric names are the real ones (checked against a running deployment, BentoML 1.4.40 and HAProxy 2.6):

- every replica's ``/metrics``: ``bentoml_service_request_total`` and
  ``bentoml_service_request_duration_seconds_bucket`` with labels ``endpoint``, ``http_response_code``,
  ``service_name``, ``service_version``; scraped as job :data:`JOB_REPLICAS` with a ``replica`` and a ``colour``
  label per target;
- HAProxy's admin ``/metrics``: ``haproxy_frontend_http_responses_total{proxy="fe_live",code="5xx"}``,
  ``haproxy_server_status{proxy="be_blue",server="b1",state="DOWN"}``; job :data:`JOB_HAPROXY`;
- :data:`DRIFT_METRIC`, a gauge (1: drifted) per ``model_version`` that ``modelops drift`` publishes in a
  Prometheus text file (``drift.prom`` beside its report).

Annotations carry labels and thresholds, not ``$value``: ``promtool test rules`` compares them exactly.

    python -m modelops.monitor.rules --stack local -o .work/monitoring/rules.yml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from bento import prediction_log as plog
from modelops.monitor import concept
from stacks.config import StackConfig, load_stack_config

JOB_REPLICAS = "modelops-replicas"
JOB_HAPROXY = "modelops-haproxy"
PREDICT_ENDPOINT = "/predict"
LIVE_FRONTEND = "fe_live"
DRIFT_METRIC = "modelops_drift_detected"

# Recorded series (level:metric:operation), shared with the tests and with anything that queries Prometheus.
REQUEST_RATE = "modelops:predict_requests:rate"
ERROR_RATIO = "modelops:predict_errors:ratio"
LIVE_ERROR_RATIO = "modelops:live_errors:ratio"
P95 = "modelops:predict_latency_seconds:p95"
P99 = "modelops:predict_latency_seconds:p99"
P95_SCORE = "modelops:predict_latency_seconds:p95_robust_z"
ERROR_SCORE = "modelops:predict_errors:ratio_robust_z"

# Alerts.
P95_OVER_SLO = "PredictLatencyP95OverSLO"
ERROR_RATIO_OVER_LIMIT = "PredictErrorRatioOverLimit"
LIVE_ERROR_RATIO_OVER_LIMIT = "LiveErrorRatioOverLimit"
REPLICA_DOWN = "ReplicaDown"
REPLICA_OUT_OF_ROTATION = "ReplicaOutOfRotation"
DRIFT_DETECTED = "DriftDetected"
ANOMALY_FLAGGED = "AnomalyFlagged"
ALERTS = (
    P95_OVER_SLO,
    ERROR_RATIO_OVER_LIMIT,
    LIVE_ERROR_RATIO_OVER_LIMIT,
    REPLICA_DOWN,
    REPLICA_OUT_OF_ROTATION,
    DRIFT_DETECTED,
    ANOMALY_FLAGGED,
)

# Smallest spread the anomaly scores assume (a flat baseline has none): 1 ms of p95, 0.1 % of error ratio.
LATENCY_MIN_SCALE_S = 0.001
ERROR_RATIO_MIN_SCALE = 0.001
# IQR / 1.349 estimates a normal distribution's standard deviation (robust, like 1.4826 * MAD in anomaly.py).
IQR_TO_SIGMA = 1.349


def _duration(seconds: float) -> str:
    return f"{int(seconds)}s"


def _robust_z(series: str, baseline: str, min_scale: float) -> str:
    """PromQL: distance of ``series`` from its median over ``baseline``, in robust standard deviations (IQR)."""
    q = lambda p: f"quantile_over_time({p}, {series}[{baseline}])"  # noqa: E731
    return f"({series} - {q(0.5)}) / clamp_min(({q(0.75)} - {q(0.25)}) / {IQR_TO_SIGMA}, {min_scale})"


def render_rules(settings: StackConfig) -> dict:
    """The rules file as a dict (``yaml.safe_dump`` it)."""
    m, slo = settings.monitor, settings.slo
    window = _duration(m.rate_window_s)
    baseline = _duration(m.anomaly_window * m.scrape_interval_s)
    predict = f'job="{JOB_REPLICAS}",endpoint="{PREDICT_ENDPOINT}"'
    by = "service_version"
    rate = lambda selector: f"sum by ({by}) (rate({selector}[{window}]))"  # noqa: E731
    latency = lambda q: (  # noqa: E731
        f"histogram_quantile({q}, sum by ({by}, le) (rate(bentoml_service_request_duration_seconds_bucket"
        f"{{{predict}}}[{window}])))"
    )
    live = f'job="{JOB_HAPROXY}",proxy="{LIVE_FRONTEND}"'
    requests = f"bentoml_service_request_total{{{predict}}}"
    server_errors = f'bentoml_service_request_total{{{predict},http_response_code=~"5.."}}'
    recording = [
        {"record": REQUEST_RATE, "expr": rate(requests)},
        {"record": ERROR_RATIO, "expr": f"{rate(server_errors)} / {rate(requests)}"},
        {
            "record": LIVE_ERROR_RATIO,
            "expr": f'sum(rate(haproxy_frontend_http_responses_total{{{live},code="5xx"}}[{window}])) / '
            f"sum(rate(haproxy_frontend_http_responses_total{{{live}}}[{window}]))",
        },
        {"record": P95, "expr": latency(0.95)},
        {"record": P99, "expr": latency(0.99)},
        {"record": P95_SCORE, "expr": _robust_z(P95, baseline, LATENCY_MIN_SCALE_S)},
        {"record": ERROR_SCORE, "expr": _robust_z(ERROR_RATIO, baseline, ERROR_RATIO_MIN_SCALE)},
    ]
    slow_for, down_for = _duration(m.alert_for_s), _duration(m.replica_down_for_s)
    alerts = [
        _alert(
            P95_OVER_SLO,
            f"{P95} > {slo.p95_ms / 1000:g}",
            slow_for,
            "page",
            "p95 latency of {{ $labels.service_version }} is over the SLO of " + f"{slo.p95_ms:g} ms",
            f"modelops:slo.p95_ms; held for {slow_for} over a {window} window",
        ),
        _alert(
            ERROR_RATIO_OVER_LIMIT,
            f"{ERROR_RATIO} > {slo.max_error_ratio:g}",
            slow_for,
            "page",
            "5xx ratio of {{ $labels.service_version }} is over " + f"{slo.max_error_ratio:g}",
            f"modelops:slo.max_error_ratio; replicas' own responses, held for {slow_for}",
        ),
        _alert(
            LIVE_ERROR_RATIO_OVER_LIMIT,
            f"{LIVE_ERROR_RATIO} > {slo.max_error_ratio:g}",
            slow_for,
            "page",
            f"5xx ratio clients see at the load balancer is over {slo.max_error_ratio:g}",
            f"modelops:slo.max_error_ratio; HAProxy {LIVE_FRONTEND}, held for {slow_for}",
        ),
        _alert(
            REPLICA_DOWN,
            f'up{{job="{JOB_REPLICAS}"}} == 0',
            down_for,
            "page",
            "replica {{ $labels.replica }} ({{ $labels.instance }}) does not answer /metrics",
            f"modelops:monitor.replica_down_for_s; unreachable for {down_for}",
        ),
        _alert(
            REPLICA_OUT_OF_ROTATION,
            f'haproxy_server_status{{job="{JOB_HAPROXY}",state="DOWN"}} == 1',
            down_for,
            "page",
            "HAProxy took {{ $labels.proxy }}/{{ $labels.server }} out of rotation (health checks fail)",
            f"modelops:monitor.replica_down_for_s; /readyz failing for {down_for}",
        ),
        _alert(
            DRIFT_DETECTED,
            f"max by (model_version) ({DRIFT_METRIC}) == 1",
            "0s",
            "ticket",
            "inputs or predictions of {{ $labels.model_version }} drifted from the training data",
            "`modelops drift` flagged it: see its report; retrain on recent data",
        ),
        _alert(
            ANOMALY_FLAGGED,
            f"{P95_SCORE} > {m.anomaly_threshold:g} or {ERROR_SCORE} > {m.anomaly_threshold:g}",
            "0s",
            "ticket",
            "latency or errors of {{ $labels.service_version }} jumped away from their recent level",
            f"robust z-score over {m.anomaly_threshold:g} against the last {baseline} (modelops:monitor)",
        ),
    ]
    interval = _duration(m.scrape_interval_s)
    return {
        "groups": [
            {"name": "modelops-recording", "interval": interval, "rules": recording},
            {"name": "modelops-alerts", "interval": interval, "rules": alerts},
            *log_and_concept_groups(settings),
        ]
    }


# ---------------------------------------------------------------------------------- prediction log and concept
# Their own groups, apart from the latency/error/anomaly rules above: the log's health and the labelled outcomes.
LOG_ERRORS = "PredictionLogWriteErrors"
LOG_DROPPING = "PredictionLogDropping"
CONCEPT_DRIFT = "ConceptDriftDetected"
LOG_ALERTS = (LOG_ERRORS, LOG_DROPPING, CONCEPT_DRIFT)
LOG_GROUP, CONCEPT_GROUP = "modelops-prediction-log", "modelops-concept"


def log_and_concept_groups(settings: StackConfig) -> list[dict]:
    """Alerts on the prediction log's counters (every replica's /metrics, bento/prediction_log.py) and on the
    concept-drift gauge (modelops/monitor/concept.py's metrics, exported by the monitor process)."""
    m = settings.monitor
    window, hold = _duration(m.rate_window_s), _duration(m.alert_for_s)
    grows = lambda name: (  # noqa: E731
        f'sum by (replica) (increase({plog.METRIC_PREFIX}_{name}_total{{job="{JOB_REPLICAS}"}}[{window}])) > 0'
    )
    log_alerts = [
        _alert(
            LOG_ERRORS,
            grows(plog.ERRORS),
            hold,
            "ticket",
            "the prediction log of replica {{ $labels.replica }} keeps failing to write (disk full, directory gone?)",
            f"{plog.METRIC_PREFIX}_{plog.ERRORS}_total grew for {hold}; the replica serves on, drift and quality "
            "lose data: free space or fix modelops:monitor.log_dir",
        ),
        _alert(
            LOG_DROPPING,
            grows(plog.DROPPED),
            hold,
            "ticket",
            "the prediction log of replica {{ $labels.replica }} is dropping records",
            f"{plog.METRIC_PREFIX}_{plog.DROPPED}_total grew for {hold}: the disk is slower than the traffic or "
            "failing; raise modelops:monitor.log_queue_bytes or lower log_sample_rate",
        ),
    ]
    concept_alerts = [
        _alert(
            CONCEPT_DRIFT,
            f"max by (model_version) ({concept.DRIFT_DETECTED}) == 1",
            "0s",
            "ticket",
            "accuracy of {{ $labels.model_version }} on labelled requests dropped (ADWIN)",
            f"ADWIN at delta {m.concept_delta:g} (modelops:monitor.concept_delta) cut the labelled outcomes where "
            "accuracy fell: see `modelops quality`; retrain on recent labelled data",
        )
    ]
    interval = _duration(m.scrape_interval_s)
    return [
        {"name": LOG_GROUP, "interval": interval, "rules": log_alerts},
        {"name": CONCEPT_GROUP, "interval": interval, "rules": concept_alerts},
    ]


def _alert(name: str, expr: str, hold: str, severity: str, summary: str, description: str) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": hold,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def write_rules(settings: StackConfig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated by modelops/monitor/rules.py from stacks/Pulumi.{settings.stack}.yaml: edit the settings.\n"
    path.write_text(header + yaml.safe_dump(render_rules(settings), sort_keys=False, width=1000))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local", help="stack whose settings set the thresholds")
    parser.add_argument("-o", "--out", type=Path, required=True, help="rules file to write")
    args = parser.parse_args(argv)
    print(write_rules(load_stack_config(args.stack), args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
