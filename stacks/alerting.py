"""What is watched and who is told: the Prometheus rules and the Alertmanager configuration, from the stack settings.

One definition read by both sides of the house: ``modelops`` (the local target's Prometheus and Alertmanager,
modelops/monitor/) and the Pulumi program (the kind stack renders the same files into a ConfigMap). It lives in
``stacks/`` because provisioning must not import operating code (ARCHITECTURE.md: ``stacks ↛ modelops``).

Thresholds come from ``modelops:slo`` (p95, error ratio) and ``modelops:monitor`` (windows, durations, anomaly and
data-quality thresholds, the webhook). Metric names are the real ones (checked against a running deployment,
BentoML 1.4.40 and HAProxy 2.6):

- every replica's ``/metrics``: ``bentoml_service_request_total`` and
  ``bentoml_service_request_duration_seconds_bucket`` with labels ``endpoint``, ``http_response_code``,
  ``service_name``, ``service_version``; scraped as job :data:`JOB_REPLICAS` with a ``replica`` and a ``colour``
  label per target;
- HAProxy's admin ``/metrics``: ``haproxy_frontend_http_responses_total{proxy="fe_live",code="5xx"}``,
  ``haproxy_server_status{proxy="be_blue",server="b1",state="DOWN"}``; job :data:`JOB_HAPROXY`;
- the monitor process (modelops/monitor/watch.py), job :data:`JOB_MONITOR`: :data:`DRIFT_METRIC` (1: the online
  detector says drift) per ``model_version``, the detector's statistics, the age of the data it judged, the
  predicted class shares of its last chunk and the prediction log's counters.

Anomalies (:data:`ANOMALY_FLAGGED`, label ``signal``): one method, written twice — here in PromQL and in
modelops/monitor/anomaly.py in Python — and a test runs both on the same series. A point's robust z-score is its
distance from the median of the ``anomaly_window`` points *before* it (``offset`` one step: the point never judges
itself), in units of their interquartile range / 1.349 (a normal distribution's sd), floored. Error ratios also need
``anomaly_min_events`` errors in the rate window (one 5xx at 1 req/s is not an incident), a traffic drop needs a
baseline of that many requests, and every signal must hold for ``anomaly_for_s``.

Annotations carry labels and thresholds, not ``$value``: ``promtool test rules`` compares them exactly.
"""

from __future__ import annotations

from bento import prediction_log as plog
from stacks.config import StackConfig

JOB_REPLICAS = "modelops-replicas"
JOB_HAPROXY = "modelops-haproxy"
JOB_MONITOR = "modelops-monitor"
PREDICT_ENDPOINT = "/predict"
LIVE_FRONTEND = "fe_live"

# Series the monitor process exports (modelops/monitor/watch.py writes them, these rules read them).
DRIFT_METRIC = "modelops_drift_detected"
DRIFT_STATISTIC = "modelops_drift_cusum"  # {model_version, signal, side}: the CUSUM, in its threshold's units
DRIFT_THRESHOLD = "modelops_drift_threshold"  # {model_version}: h, the CUSUM's alarm level
DRIFT_EFFECT = "modelops_drift_effect_sd"  # {model_version, signal}: last chunk's mean shift, reference sds
DRIFT_SIGNAL_DRIFTED = "modelops_drift_signal_drifted"  # {model_version, signal}: 1 while over the threshold
DRIFT_DATA_AGE = "modelops_drift_data_age_seconds"  # now - newest row judged (uptime when none judged yet)
DRIFT_ROWS = "modelops_drift_rows_judged_total"
DRIFT_CHUNKS = "modelops_drift_chunks_total"
CLASS_SHARE = "modelops_predicted_class_share"  # {model_version, class}: the last judged chunk's shares
LOG_WRITTEN = "modelops_monitor_log_written_total"  # {writer}: the prediction log's own counters, as read
LOG_DROPPED = "modelops_monitor_log_dropped_total"
LOG_ERRORS = "modelops_monitor_log_errors_total"
LOG_RECORDS_READ = "modelops_monitor_log_records_read_total"
LOG_MALFORMED = "modelops_monitor_log_malformed_lines_total"

# Recorded series (level:metric:operation), shared with the tests and with anything that queries Prometheus.
REQUEST_RATE = "modelops:predict_requests:rate"
ERROR_RATIO = "modelops:predict_errors:ratio"
CLIENT_ERROR_RATIO = "modelops:predict_client_errors:ratio"
INVALID_RATIO = "modelops:predict_invalid_input:ratio"
LIVE_ERROR_RATIO = "modelops:live_errors:ratio"
P95 = "modelops:predict_latency_seconds:p95"
P99 = "modelops:predict_latency_seconds:p99"
ERRORS_IN_WINDOW = "modelops:predict_errors:increase"
CLIENT_ERRORS_IN_WINDOW = "modelops:predict_client_errors:increase"
P95_SCORE = "modelops:predict_latency_seconds:p95_robust_z"
ERROR_SCORE = "modelops:predict_errors:ratio_robust_z"
CLIENT_ERROR_SCORE = "modelops:predict_client_errors:ratio_robust_z"
TRAFFIC_SCORE = "modelops:predict_requests:rate_robust_z"
CLASS_SHARE_SCORE = "modelops:predicted_class_share:robust_z"

# Alerts.
P95_OVER_SLO = "PredictLatencyP95OverSLO"
ERROR_RATIO_OVER_LIMIT = "PredictErrorRatioOverLimit"
LIVE_ERROR_RATIO_OVER_LIMIT = "LiveErrorRatioOverLimit"
REPLICA_DOWN = "ReplicaDown"
REPLICA_OUT_OF_ROTATION = "ReplicaOutOfRotation"
DRIFT_DETECTED = "DriftDetected"
DRIFT_DATA_STALE = "DriftDataStale"
MONITOR_DOWN = "MonitorDown"
INVALID_INPUT_RATIO = "InvalidInputRatio"
ANOMALY_FLAGGED = "AnomalyFlagged"
ALERTS = (
    P95_OVER_SLO,
    ERROR_RATIO_OVER_LIMIT,
    LIVE_ERROR_RATIO_OVER_LIMIT,
    REPLICA_DOWN,
    REPLICA_OUT_OF_ROTATION,
    DRIFT_DETECTED,
    DRIFT_DATA_STALE,
    MONITOR_DOWN,
    INVALID_INPUT_RATIO,
    ANOMALY_FLAGGED,
)

# Severities: Alertmanager routes each to its receiver (a page wakes someone; a ticket waits for working hours).
PAGE, TICKET = "page", "ticket"
SEVERITIES = (PAGE, TICKET)

# The anomaly signals (value of the alert's ``signal`` label) and how each is judged.
SIGNAL_P95, SIGNAL_5XX, SIGNAL_4XX, SIGNAL_TRAFFIC, SIGNAL_CLASS_MIX = (
    "p95",
    "5xx_ratio",
    "4xx_ratio",
    "traffic_drop",
    "class_mix",
)
# Smallest spread the anomaly scores assume (a flat baseline has none), in each signal's unit.
LATENCY_MIN_SCALE_S = 0.001
ERROR_RATIO_MIN_SCALE = 0.001
CLASS_SHARE_MIN_SCALE = 0.02
# IQR / 1.349 estimates a normal distribution's standard deviation; Python's side uses the same constant.
IQR_TO_SIGMA = 1.349


def duration(seconds: float) -> str:
    return f"{int(seconds)}s"


def baseline_range(points: int, step_s: int) -> str:
    """The range that, ``offset`` one step, holds exactly ``points`` earlier samples: Prometheus 2 range selectors
    include both ends, so [t - points*step, t - step] holds points t-step … t-points*step."""
    return duration((points - 1) * step_s)


def robust_z(series: str, points: int, step_s: int, min_scale: float) -> str:
    """PromQL: distance of ``series`` from the median of its ``points`` previous samples, in robust sds (IQR).
    Defined only once that many earlier samples exist: a baseline of two points is no baseline."""
    window, offset = baseline_range(points, step_s), duration(step_s)
    q = lambda p: f"quantile_over_time({p}, {series}[{window}] offset {offset})"  # noqa: E731
    score = f"({series} - {q(0.5)}) / clamp_min(({q(0.75)} - {q(0.25)}) / {IQR_TO_SIGMA}, {min_scale:g})"
    return f"({score}) and count_over_time({series}[{window}] offset {offset}) >= {points}"


def traffic_min_scale(settings: StackConfig) -> float:
    """The traffic signal's floor: the rate of ``anomaly_min_events`` requests in one rate window."""
    return settings.monitor.anomaly_min_events / settings.monitor.rate_window_s


def render_rules(settings: StackConfig) -> dict:
    """The rules file as a dict (``yaml.safe_dump`` it)."""
    m, slo, d = settings.monitor, settings.slo, settings.monitor.drift
    window = duration(m.rate_window_s)
    step = m.scrape_interval_s
    points = m.anomaly_window
    predict = f'job="{JOB_REPLICAS}",endpoint="{PREDICT_ENDPOINT}"'
    by = "service_version"
    rate = lambda selector: f"sum by ({by}) (rate({selector}[{window}]))"  # noqa: E731
    increase = lambda selector: f"sum by ({by}) (increase({selector}[{window}]))"  # noqa: E731
    latency = lambda q: (  # noqa: E731
        f"histogram_quantile({q}, sum by ({by}, le) (rate(bentoml_service_request_duration_seconds_bucket"
        f"{{{predict}}}[{window}])))"
    )
    live = f'job="{JOB_HAPROXY}",proxy="{LIVE_FRONTEND}"'
    requests = f"bentoml_service_request_total{{{predict}}}"
    server_errors = f'bentoml_service_request_total{{{predict},http_response_code=~"5.."}}'
    client_errors = f'bentoml_service_request_total{{{predict},http_response_code=~"4.."}}'
    invalid = f'bentoml_service_request_total{{{predict},http_response_code="422"}}'
    recording = [
        {"record": REQUEST_RATE, "expr": rate(requests)},
        {"record": ERROR_RATIO, "expr": f"{rate(server_errors)} / {rate(requests)}"},
        {"record": CLIENT_ERROR_RATIO, "expr": f"{rate(client_errors)} / {rate(requests)}"},
        {"record": INVALID_RATIO, "expr": f"{rate(invalid)} / {rate(requests)}"},
        {"record": ERRORS_IN_WINDOW, "expr": increase(server_errors)},
        {"record": CLIENT_ERRORS_IN_WINDOW, "expr": increase(client_errors)},
        {
            "record": LIVE_ERROR_RATIO,
            "expr": f'sum(rate(haproxy_frontend_http_responses_total{{{live},code="5xx"}}[{window}])) / '
            f"sum(rate(haproxy_frontend_http_responses_total{{{live}}}[{window}]))",
        },
        {"record": P95, "expr": latency(0.95)},
        {"record": P99, "expr": latency(0.99)},
        {"record": P95_SCORE, "expr": robust_z(P95, points, step, LATENCY_MIN_SCALE_S)},
        {"record": ERROR_SCORE, "expr": robust_z(ERROR_RATIO, points, step, ERROR_RATIO_MIN_SCALE)},
        {"record": CLIENT_ERROR_SCORE, "expr": robust_z(CLIENT_ERROR_RATIO, points, step, ERROR_RATIO_MIN_SCALE)},
        {"record": TRAFFIC_SCORE, "expr": robust_z(REQUEST_RATE, points, step, traffic_min_scale(settings))},
        {"record": CLASS_SHARE_SCORE, "expr": robust_z(CLASS_SHARE, points, step, CLASS_SHARE_MIN_SCALE)},
    ]
    slow_for, down_for = duration(m.alert_for_s), duration(m.replica_down_for_s)
    t, n = f"{m.anomaly_threshold:g}", m.anomaly_min_events
    baseline_requests = (
        f"quantile_over_time(0.5, {REQUEST_RATE}[{baseline_range(points, step)}] offset {duration(step)}) "
        f"* {m.rate_window_s}"
    )
    signal = lambda expr, name: f'label_replace({expr}, "signal", "{name}", "", "")'  # noqa: E731
    anomalies = " or ".join(
        [
            signal(f"{P95_SCORE} > {t}", SIGNAL_P95),
            signal(f"({ERROR_SCORE} > {t}) and on ({by}) ({ERRORS_IN_WINDOW} >= {n})", SIGNAL_5XX),
            signal(f"({CLIENT_ERROR_SCORE} > {t}) and on ({by}) ({CLIENT_ERRORS_IN_WINDOW} >= {n})", SIGNAL_4XX),
            signal(f"({TRAFFIC_SCORE} < -{t}) and on ({by}) ({baseline_requests} >= {n})", SIGNAL_TRAFFIC),
            signal(f"abs({CLASS_SHARE_SCORE}) > {t}", SIGNAL_CLASS_MIX),
        ]
    )
    # The monitor's chunks hold sample_rate of the requests: stale means enough requests for two chunks went by.
    rows_expected = f"sum({REQUEST_RATE}) * {m.log_sample_rate:g} * {d.stale_after_s}"
    alerts = [
        _alert(
            P95_OVER_SLO,
            f"{P95} > {slo.p95_ms / 1000:g}",
            slow_for,
            PAGE,
            "p95 latency of {{ $labels.service_version }} is over the SLO of " + f"{slo.p95_ms:g} ms",
            f"modelops:slo.p95_ms; held for {slow_for} over a {window} window",
        ),
        _alert(
            ERROR_RATIO_OVER_LIMIT,
            f"{ERROR_RATIO} > {slo.max_error_ratio:g}",
            slow_for,
            PAGE,
            "5xx ratio of {{ $labels.service_version }} is over " + f"{slo.max_error_ratio:g}",
            f"modelops:slo.max_error_ratio; replicas' own responses, held for {slow_for}",
        ),
        _alert(
            LIVE_ERROR_RATIO_OVER_LIMIT,
            f"{LIVE_ERROR_RATIO} > {slo.max_error_ratio:g}",
            slow_for,
            PAGE,
            f"5xx ratio clients see at the load balancer is over {slo.max_error_ratio:g}",
            f"modelops:slo.max_error_ratio; HAProxy {LIVE_FRONTEND}, held for {slow_for}",
        ),
        _alert(
            REPLICA_DOWN,
            f'up{{job="{JOB_REPLICAS}"}} == 0',
            down_for,
            PAGE,
            "replica {{ $labels.replica }} ({{ $labels.instance }}) does not answer /metrics",
            f"modelops:monitor.replica_down_for_s; unreachable for {down_for}",
        ),
        _alert(
            REPLICA_OUT_OF_ROTATION,
            f'haproxy_server_status{{job="{JOB_HAPROXY}",state="DOWN"}} == 1',
            down_for,
            PAGE,
            "HAProxy took {{ $labels.proxy }}/{{ $labels.server }} out of rotation (health checks fail)",
            f"modelops:monitor.replica_down_for_s; /readyz failing for {down_for}",
        ),
        _alert(
            DRIFT_DETECTED,
            f"max by (model_version) ({DRIFT_METRIC}) == 1",
            "0s",  # the detector accumulates its own evidence over chunks; a for: would only add delay
            TICKET,
            "inputs or predictions of {{ $labels.model_version }} drifted from the training data",
            f"the monitor's CUSUM crossed its threshold (modelops:monitor.drift, {d.max_false_alarms_per_day:g} "
            f"false alarms a day accepted): see {DRIFT_SIGNAL_DRIFTED} and `modelops drift`; retrain on recent data",
        ),
        _alert(
            DRIFT_DATA_STALE,
            f"max({DRIFT_DATA_AGE}) > {d.stale_after_s} and on () ({rows_expected} >= {2 * d.min_chunk_rows})",
            "0s",  # the age is a duration already
            TICKET,
            "the drift monitor judged no logged rows for over " + f"{d.stale_after_s} s while requests flowed",
            "modelops:monitor.drift.stale_after_s; the prediction log is not written or not read: check the "
            "replicas' log directory and the monitor's log",
        ),
        _alert(
            MONITOR_DOWN,
            f'up{{job="{JOB_MONITOR}"}} == 0',
            down_for,
            TICKET,
            "the drift monitor ({{ $labels.instance }}) does not answer /metrics",
            f"modelops:monitor.replica_down_for_s; no drift verdict while it is down ({down_for})",
        ),
        _alert(
            INVALID_INPUT_RATIO,
            f"({INVALID_RATIO} > {m.max_invalid_ratio:g}) and on ({by}) ({increase(invalid)} >= {n})",
            slow_for,
            TICKET,
            "over " + f"{m.max_invalid_ratio:g}" + " of requests to {{ $labels.service_version }} break the "
            "input contract (422)",
            f"modelops:monitor.max_invalid_ratio, at least {n} in {window}: a data-quality problem upstream",
        ),
        _alert(
            ANOMALY_FLAGGED,
            anomalies,
            duration(m.anomaly_for_s),
            TICKET,
            "{{ $labels.signal }} jumped away from its recent level",
            f"robust z-score over {t} against the {points} points before it, held for {duration(m.anomaly_for_s)}, "
            f"at least {n} events (modelops:monitor)",
        ),
    ]
    interval = duration(step)
    return {
        "groups": [
            {"name": "modelops-recording", "interval": interval, "rules": recording},
            {"name": "modelops-alerts", "interval": interval, "rules": alerts},
            *log_and_concept_groups(settings),
        ]
    }


# ---------------------------------------------------------------------------------- prediction log and concept
# Their own groups, apart from the latency/error/anomaly rules above: the log's health on every replica's /metrics
# (bento/prediction_log.py's counters: per replica, with or without the drift monitor) and the labelled outcomes.
LOG_ERRORS_ALERT = "PredictionLogWriteErrors"
LOG_DROPPING = "PredictionLogDropping"
CONCEPT_DRIFT = "ConceptDriftDetected"
CONCEPT_DRIFT_METRIC = "modelops_concept_drift_detected"  # modelops/monitor/concept.py's gauge
LOG_ALERTS = (LOG_ERRORS_ALERT, LOG_DROPPING, CONCEPT_DRIFT)
LOG_GROUP, CONCEPT_GROUP = "modelops-prediction-log", "modelops-concept"


def log_and_concept_groups(settings: StackConfig) -> list[dict]:
    """Alerts on the prediction log's counters and on the concept-drift gauge the monitor exports."""
    m = settings.monitor
    window, hold = duration(m.rate_window_s), duration(m.alert_for_s)
    counter = lambda name: f"{plog.METRIC_PREFIX}_{name}_total"  # noqa: E731
    grows = lambda name: (  # noqa: E731
        f'sum by (replica) (increase({counter(name)}{{job="{JOB_REPLICAS}"}}[{window}])) > 0'
    )
    log_alerts = [
        _alert(
            LOG_ERRORS_ALERT,
            grows(plog.ERRORS),
            hold,
            TICKET,
            "the prediction log of replica {{ $labels.replica }} keeps failing to write (disk full, directory gone?)",
            f"{counter(plog.ERRORS)} grew for {hold}; the replica serves on, drift and quality lose data: free "
            "space or fix modelops:monitor.log_dir",
        ),
        _alert(
            LOG_DROPPING,
            grows(plog.DROPPED),
            hold,
            TICKET,
            "the prediction log of replica {{ $labels.replica }} is dropping records",
            f"{counter(plog.DROPPED)} grew for {hold}: the disk is slower than the traffic or failing; raise "
            "modelops:monitor.log_queue_bytes or lower log_sample_rate",
        ),
    ]
    concept_alerts = [
        _alert(
            CONCEPT_DRIFT,
            f"max by (model_version) ({CONCEPT_DRIFT_METRIC}) == 1",
            "0s",
            TICKET,
            "accuracy of {{ $labels.model_version }} on labelled requests dropped (ADWIN)",
            f"ADWIN at delta {m.concept_delta:g} (modelops:monitor.concept_delta) cut the labelled outcomes where "
            "accuracy fell: see `modelops quality`; retrain on recent labelled data",
        )
    ]
    interval = duration(m.scrape_interval_s)
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


def render_alertmanager(settings: StackConfig, webhook: str | None = None) -> dict:
    """Alertmanager's configuration: one receiver per severity, both posting to ``webhook`` (default:
    modelops:monitor.alert_webhook). Without a webhook the receivers are empty: alerts are kept and listed
    (``modelops alerts``), and nobody is notified — said by ``modelops up --monitoring``."""
    m = settings.monitor
    url = webhook if webhook is not None else m.alert_webhook
    hook = {"webhook_configs": [{"url": url, "send_resolved": True}]} if url else {}
    return {
        "route": {
            "receiver": TICKET,
            "group_by": ["alertname", "severity"],
            "group_wait": duration(m.alert_group_wait_s),
            "group_interval": duration(m.alert_group_interval_s),
            "repeat_interval": duration(m.alert_repeat_ticket_s),
            "routes": [
                {
                    "matchers": [f'severity="{PAGE}"'],
                    "receiver": PAGE,
                    "repeat_interval": duration(m.alert_repeat_page_s),
                },
                {"matchers": [f'severity="{TICKET}"'], "receiver": TICKET},
            ],
        },
        "receivers": [{"name": PAGE, **hook}, {"name": TICKET, **hook}],
    }
