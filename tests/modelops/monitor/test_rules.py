"""The Prometheus rules file: valid for promtool, and each alert fires on series that breach it and only on those.

``promtool test rules`` evaluates the generated rules over synthetic series (5 s apart, like the scrapes) and
compares the firing alerts with the expected ones exactly: every case lists the series that must fire and, beside
them, series that must not (another version, another job, a disabled slot, a moment before ``for`` has elapsed).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from modelops.monitor import concept, rules
from stacks.config import load_stack_config

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed: run `make setup` (Debian's prometheus package brings it)"
)

SETTINGS = load_stack_config("local")
RULES = rules.render_rules(SETTINGS)
ALERT_RULES = {r["alert"]: r for g in RULES["groups"] for r in g["rules"] if "alert" in r}
STEP = SETTINGS.monitor.scrape_interval_s
REPLICAS = f'job="{rules.JOB_REPLICAS}",endpoint="/predict"'
HAPROXY = f'job="{rules.JOB_HAPROXY}"'


def _steps(seconds: float) -> str:
    return f"{int(seconds)}s"


def expected(alert: str, **labels: str) -> dict:
    """An alert as promtool reports it: its labels, and its annotations with {{ $labels.x }} filled in."""
    rule = ALERT_RULES[alert]
    fill = lambda text: re.sub(r"{{ \$labels\.(\w+) }}", lambda m: labels.get(m.group(1), ""), text)  # noqa: E731
    return {
        "exp_labels": {**rule["labels"], **labels},
        "exp_annotations": {k: fill(v) for k, v in rule["annotations"].items()},
    }


def case(series: dict[str, str], alert: str, checks: list[tuple[float, list[dict]]]) -> dict:
    return {
        "interval": _steps(STEP),
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [{"eval_time": _steps(t), "alertname": alert, "exp_alerts": alerts} for t, alerts in checks],
    }


def _flat_then(n: int, pattern: list[float], then: float, repeat: int = 1) -> str:
    """n noisy points cycling through pattern, then ``repeat`` points at ``then``."""
    return " ".join(f"{pattern[i % len(pattern)]:g}" for i in range(n)) + f" {then:g}" * repeat


HOLD = SETTINGS.monitor.alert_for_s
LATER = HOLD + SETTINGS.monitor.rate_window_s + 60  # past the rate window and the for: the alert is firing
DOWN = SETTINGS.monitor.replica_down_for_s
SPIKE = 70  # index of the anomalous point: after a full anomaly baseline of normal points
ANOMALY_HOLD = SETTINGS.monitor.anomaly_for_s
STALE = SETTINGS.monitor.drift.stale_after_s
NOISE = [0.040, 0.043, 0.041, 0.046, 0.042, 0.044]

CASES = {
    rules.P95_OVER_SLO: case(
        {
            # v1 answers in 250-500 ms (over the 250 ms SLO), v2 under 100 ms.
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v1",le="0.1"}}': "0+0x100",
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v1",le="0.25"}}': "0+0x100",
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v1",le="0.5"}}': "0+10x100",
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v1",le="+Inf"}}': "0+10x100",
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v2",le="0.1"}}': "0+10x100",
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v2",le="0.25"}}': "0+10x100",
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v2",le="0.5"}}': "0+10x100",
            f'bentoml_service_request_duration_seconds_bucket{{{REPLICAS},service_version="v2",le="+Inf"}}': "0+10x100",
        },
        rules.P95_OVER_SLO,
        [(HOLD / 2, []), (LATER, [expected(rules.P95_OVER_SLO, service_version="v1")])],
    ),
    rules.ERROR_RATIO_OVER_LIMIT: case(
        {
            f'bentoml_service_request_total{{{REPLICAS},service_version="v1",http_response_code="200"}}': "0+100x100",
            f'bentoml_service_request_total{{{REPLICAS},service_version="v1",http_response_code="500"}}': "0+1x100",
            f'bentoml_service_request_total{{{REPLICAS},service_version="v2",http_response_code="200"}}': "0+100x100",
            f'bentoml_service_request_total{{{REPLICAS},service_version="v2",http_response_code="500"}}': "0+0x100",
            # Client errors (a 400 for a malformed row) are not the service failing.
            f'bentoml_service_request_total{{{REPLICAS},service_version="v2",http_response_code="400"}}': "0+50x100",
        },
        rules.ERROR_RATIO_OVER_LIMIT,
        [(HOLD / 2, []), (LATER, [expected(rules.ERROR_RATIO_OVER_LIMIT, service_version="v1")])],
    ),
    rules.LIVE_ERROR_RATIO_OVER_LIMIT: case(
        {
            f'haproxy_frontend_http_responses_total{{{HAPROXY},proxy="fe_live",code="2xx"}}': "0+100x100",
            f'haproxy_frontend_http_responses_total{{{HAPROXY},proxy="fe_live",code="5xx"}}': "0x30 0+1x70",
            # The candidate's own frontend failing is the gate's business, not live traffic's.
            f'haproxy_frontend_http_responses_total{{{HAPROXY},proxy="fe_green",code="5xx"}}': "0+100x100",
        },
        rules.LIVE_ERROR_RATIO_OVER_LIMIT,
        [(30 * STEP, []), (30 * STEP + LATER, [expected(rules.LIVE_ERROR_RATIO_OVER_LIMIT)])],
    ),
    rules.REPLICA_DOWN: case(
        {
            f'up{{job="{rules.JOB_REPLICAS}",instance="127.0.0.1:9001",replica="blue-1"}}': "1 1 0x40",
            f'up{{job="{rules.JOB_REPLICAS}",instance="127.0.0.1:9002",replica="blue-2"}}': "1x42",
            f'up{{job="{rules.JOB_HAPROXY}",instance="127.0.0.1:9000"}}': "0x42",
        },
        rules.REPLICA_DOWN,
        [
            (2 * STEP, []),
            (
                2 * STEP + DOWN + STEP,
                [expected(rules.REPLICA_DOWN, job=rules.JOB_REPLICAS, instance="127.0.0.1:9001", replica="blue-1")],
            ),
        ],
    ),
    rules.REPLICA_OUT_OF_ROTATION: case(
        {
            f'haproxy_server_status{{{HAPROXY},proxy="be_blue",server="b1",state="DOWN"}}': "0 0 1x40",
            f'haproxy_server_status{{{HAPROXY},proxy="be_blue",server="b2",state="DOWN"}}': "0x42",
            # An unused slot is in maintenance, not down.
            f'haproxy_server_status{{{HAPROXY},proxy="be_blue",server="b3",state="MAINT"}}': "1x42",
        },
        rules.REPLICA_OUT_OF_ROTATION,
        [
            (2 * STEP, []),
            (
                2 * STEP + DOWN + STEP,
                [
                    expected(
                        rules.REPLICA_OUT_OF_ROTATION, job=rules.JOB_HAPROXY, proxy="be_blue", server="b1", state="DOWN"
                    )
                ],
            ),
        ],
    ),
    rules.DRIFT_DETECTED: case(
        {
            f'{rules.DRIFT_METRIC}{{model_version="wine:1"}}': "0 0 1x10",
            f'{rules.DRIFT_METRIC}{{model_version="wine:2"}}': "0x12",
        },
        rules.DRIFT_DETECTED,
        [(STEP, []), (3 * STEP, [expected(rules.DRIFT_DETECTED, model_version="wine:1")])],
    ),
    rules.DRIFT_DATA_STALE: case(
        {
            # The monitor judged nothing for a while (its data age grows by a step each step) while 10 req/s flow.
            f'{rules.DRIFT_DATA_AGE}{{job="{rules.JOB_MONITOR}",instance="127.0.0.1:9100"}}': f"0+{STEP}x400",
            f'bentoml_service_request_total{{{REPLICAS},service_version="v1",http_response_code="200"}}': (
                f"0+{10 * STEP}x400"
            ),
        },
        rules.DRIFT_DATA_STALE,
        [(STALE - STEP, []), (STALE + 2 * STEP, [expected(rules.DRIFT_DATA_STALE)])],
    ),
    rules.MONITOR_DOWN: case(
        {
            f'up{{job="{rules.JOB_MONITOR}",instance="127.0.0.1:9100"}}': "1 1 0x40",
            f'up{{job="{rules.JOB_REPLICAS}",instance="127.0.0.1:9001",replica="blue-1"}}': "1x42",
        },
        rules.MONITOR_DOWN,
        [
            (2 * STEP, []),
            (2 * STEP + DOWN + STEP, [expected(rules.MONITOR_DOWN, job=rules.JOB_MONITOR, instance="127.0.0.1:9100")]),
        ],
    ),
    rules.INVALID_INPUT_RATIO: case(
        {
            # v1: 10 of every 110 requests break the input contract (9 %); v2: 1 of 101 (1 %, under the 5 % limit).
            f'bentoml_service_request_total{{{REPLICAS},service_version="v1",http_response_code="200"}}': "0+100x100",
            f'bentoml_service_request_total{{{REPLICAS},service_version="v1",http_response_code="422"}}': "0+10x100",
            f'bentoml_service_request_total{{{REPLICAS},service_version="v2",http_response_code="200"}}': "0+100x100",
            f'bentoml_service_request_total{{{REPLICAS},service_version="v2",http_response_code="422"}}': "0+1x100",
        },
        rules.INVALID_INPUT_RATIO,
        [(HOLD / 2, []), (LATER, [expected(rules.INVALID_INPUT_RATIO, service_version="v1")])],
    ),
    rules.ANOMALY_FLAGGED: case(
        {
            # Recorded p95 given directly: v1's latency jumps for good at SPIKE, v2 stays noisy.
            f'{rules.P95}{{service_version="v1"}}': _flat_then(SPIKE, NOISE, 0.2, repeat=40),
            f'{rules.P95}{{service_version="v2"}}': _flat_then(SPIKE, NOISE, NOISE[3], repeat=40),
        },
        rules.ANOMALY_FLAGGED,
        [
            (SPIKE * STEP + ANOMALY_HOLD - STEP, []),
            (SPIKE * STEP + ANOMALY_HOLD, [expected(rules.ANOMALY_FLAGGED, service_version="v1", signal="p95")]),
        ],
    ),
}


# The prediction log's and the concept group's alerts (their own groups in the rules file).
LOG_COUNTER = f'job="{rules.JOB_REPLICAS}"'
LOG_CASES = {
    rules.LOG_ERRORS_ALERT: case(
        {
            # b1's errors keep growing (a full disk); b2 had one error long ago and recovered.
            f'modelops_prediction_log_errors_total{{{LOG_COUNTER},replica="b1"}}': "0+1x60",
            f'modelops_prediction_log_errors_total{{{LOG_COUNTER},replica="b2"}}': "1x60",
        },
        rules.LOG_ERRORS_ALERT,
        [(HOLD / 2, []), (LATER, [expected(rules.LOG_ERRORS_ALERT, replica="b1")])],
    ),
    rules.LOG_DROPPING: case(
        {
            f'modelops_prediction_log_dropped_total{{{LOG_COUNTER},replica="b2"}}': "0+5x60",
            f'modelops_prediction_log_dropped_total{{{LOG_COUNTER},replica="b1"}}': "0x60",
        },
        rules.LOG_DROPPING,
        [(HOLD / 2, []), (LATER, [expected(rules.LOG_DROPPING, replica="b2")])],
    ),
    rules.CONCEPT_DRIFT: case(
        {
            f'{concept.DRIFT_DETECTED}{{model_version="wine:1"}}': "0 0 1x10",
            f'{concept.DRIFT_DETECTED}{{model_version="wine:2"}}': "0x12",
        },
        rules.CONCEPT_DRIFT,
        [(STEP, []), (3 * STEP, [expected(rules.CONCEPT_DRIFT, model_version="wine:1")])],
    ),
}
CASES.update(LOG_CASES)


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory):
    return rules.write_rules(SETTINGS, tmp_path_factory.mktemp("rules") / "rules.yml")


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_rules_file_passes_promtool_check(rules_file):
    done = _promtool("check", "rules", str(rules_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in RULES['groups'])} rules found" in done.stdout


def test_every_alert_the_issue_asks_for_is_generated_and_tested():
    assert sorted(ALERT_RULES) == sorted(rules.ALERTS + rules.LOG_ALERTS) == sorted(CASES)


def test_thresholds_come_from_the_stack_settings():
    tighter = SETTINGS.with_overrides(slo={"p95_ms": 120}, monitor={"anomaly_threshold": 4.5, "max_invalid_ratio": 0.2})
    alerts = {r["alert"]: r for g in rules.render_rules(tighter)["groups"] for r in g["rules"] if "alert" in r}
    assert alerts[rules.P95_OVER_SLO]["expr"].endswith("> 0.12")
    assert "> 4.5" in alerts[rules.ANOMALY_FLAGGED]["expr"]
    assert "> 0.2)" in alerts[rules.INVALID_INPUT_RATIO]["expr"]


def _run_case(tmp_path, rules_file, name: str, body: dict) -> subprocess.CompletedProcess:
    test_file = tmp_path / f"{name}.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            # Recording group before the alert group, as the alerts assume (promtool's default order is random).
            {
                "rule_files": [str(rules_file)],
                "evaluation_interval": _steps(STEP),
                "tests": [body],
                "group_eval_order": [g["name"] for g in rules.render_rules(SETTINGS)["groups"]],
            },
            width=1000,
        )
    )
    return _promtool("test", "rules", str(test_file))


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires_on_breaching_series_and_stays_quiet_on_the_others(tmp_path, rules_file, alert):
    done = _run_case(tmp_path, rules_file, alert, CASES[alert])
    assert done.returncode == 0, f"{alert}:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize(
    "alert",
    [
        rules.P95_OVER_SLO,
        rules.REPLICA_DOWN,
        rules.ANOMALY_FLAGGED,
        rules.INVALID_INPUT_RATIO,
        rules.DRIFT_DATA_STALE,
        rules.LOG_ERRORS_ALERT,
        rules.CONCEPT_DRIFT,
    ],
)
def test_promtool_fails_the_case_when_the_alert_is_expected_but_the_series_are_healthy(tmp_path, rules_file, alert):
    """The harness can fail: the same expectations over series that breach nothing are reported as a failure."""
    body = CASES[alert]
    checks = [c for c in body["alert_rule_test"] if c["exp_alerts"]]
    healthy = {
        rules.P95_OVER_SLO: {k: "0+10x100" for k in (s["series"] for s in body["input_series"])},
        rules.REPLICA_DOWN: {s["series"]: "1x42" for s in body["input_series"]},
        rules.INVALID_INPUT_RATIO: {
            s["series"]: "0+100x100" if "200" in s["series"] else "0x100" for s in body["input_series"]
        },
        # Old data but no traffic: nothing was there to judge.
        rules.DRIFT_DATA_STALE: {
            s["series"]: f"0+{STEP}x400" if rules.DRIFT_DATA_AGE in s["series"] else "0x400"
            for s in body["input_series"]
        },
        rules.ANOMALY_FLAGGED: {s["series"]: _flat_then(SPIKE, NOISE, NOISE[0], 40) for s in body["input_series"]},
        rules.LOG_ERRORS_ALERT: {s["series"]: "3x60" for s in body["input_series"]},  # errors once, then no more
        rules.CONCEPT_DRIFT: {s["series"]: "0x12" for s in body["input_series"]},
    }[alert]
    broken = {
        **body,
        "input_series": [{"series": k, "values": v} for k, v in healthy.items()],
        "alert_rule_test": checks,
    }
    done = _run_case(tmp_path, rules_file, alert, broken)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr, done.stdout
