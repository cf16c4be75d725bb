"""One anomaly method in PromQL and in Python, and they agree: the same series go to ``promtool test rules`` (the
generated AnomalyFlagged rule) and to modelops/monitor/anomaly.py, and the alerts Python says fire at each
evaluation are exactly the alerts promtool sees — for every signal (p95 up, 5xx and 4xx ratios up with their error
counts, traffic down with its baseline, class mix both ways), on noise and on injected anomalies."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from modelops.monitor import anomaly, rules
from stacks import alerting
from stacks.config import load_stack_config

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed: run `make setup`")

SETTINGS = load_stack_config("local")
M = SETTINGS.monitor
STEP = M.scrape_interval_s
HOLD = M.anomaly_for_s // STEP
N = 200
RULE = next(
    r for g in rules.render_rules(SETTINGS)["groups"] for r in g["rules"] if r.get("alert") == rules.ANOMALY_FLAGGED
)


def _series(seed: int) -> dict[str, dict]:
    """Each signal's input series (recorded names, as Prometheus holds them) with an injected anomaly, and what
    the Python side needs to judge it."""
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    p95 = 0.040 + 0.004 * rng.standard_normal(N)
    p95[110:150] += 0.05 + 0.01 * (seed % 3)  # a slow spell
    p95[80] += 0.2  # a single slow point: not an incident
    errors = rng.poisson(0.5, N).astype(float)
    errors[120:160] += 30
    ratio = errors / 600
    client = rng.poisson(6, N).astype(float)
    client[130:150] += 60 * (seed % 2)  # only odd seeds get a 4xx burst
    rate = 10 + 0.5 * rng.standard_normal(N) + 2 * np.sin(t / 40)
    rate[140:175] = 2.0  # traffic drops
    share = 0.33 + 0.01 * rng.standard_normal(N)
    share[100:130] = 0.15 + 0.01 * rng.standard_normal(30)  # the class mix moves
    v = 'service_version="v1"'
    c = 'model_version="m1",class="class_0"'
    return {
        alerting.SIGNAL_P95: {"input": {f"{rules.P95}{{{v}}}": p95}, "labels": {"service_version": "v1"},
                              "judge": dict(series=p95, min_scale=alerting.LATENCY_MIN_SCALE_S, direction="up")},
        alerting.SIGNAL_5XX: {"input": {f"{rules.ERROR_RATIO}{{{v}}}": ratio,
                                        f"{rules.ERRORS_IN_WINDOW}{{{v}}}": errors},
                              "labels": {"service_version": "v1"},
                              "judge": dict(series=ratio, min_scale=alerting.ERROR_RATIO_MIN_SCALE, direction="up",
                                            events=errors, min_events=M.anomaly_min_events)},
        alerting.SIGNAL_4XX: {"input": {f"{rules.CLIENT_ERROR_RATIO}{{{v}}}": client / 600,
                                        f"{rules.CLIENT_ERRORS_IN_WINDOW}{{{v}}}": client},
                              "labels": {"service_version": "v1"},
                              "judge": dict(series=client / 600, min_scale=alerting.ERROR_RATIO_MIN_SCALE,
                                            direction="up", events=client, min_events=M.anomaly_min_events)},
        alerting.SIGNAL_TRAFFIC: {"input": {f"{rules.REQUEST_RATE}{{{v}}}": rate}, "labels": {"service_version": "v1"},
                                  "judge": dict(series=rate, min_scale=alerting.traffic_min_scale(SETTINGS),
                                                direction="down", min_events=M.anomaly_min_events,
                                                baseline_events=M.rate_window_s)},
        alerting.SIGNAL_CLASS_MIX: {"input": {f"{rules.CLASS_SHARE}{{{c}}}": share},
                                    "labels": {"model_version": "m1", "class": "class_0"},
                                    "judge": dict(series=share, min_scale=alerting.CLASS_SHARE_MIN_SCALE,
                                                  direction="both")},
    }  # fmt: skip


def _python_firing(signals: dict[str, dict]) -> dict[str, np.ndarray]:
    return {
        name: anomaly.firing(
            anomaly.condition(window=M.anomaly_window, threshold=M.anomaly_threshold, **s["judge"]), HOLD
        )
        for name, s in signals.items()
    }


def _expected(signal: str, labels: dict[str, str]) -> dict:
    full = {**labels, "signal": signal}
    fill = lambda text: re.sub(r"{{ \$labels\.(\w+) }}", lambda m: full.get(m.group(1), ""), text)  # noqa: E731
    return {
        "exp_labels": {**RULE["labels"], **full},
        "exp_annotations": {k: fill(v) for k, v in RULE["annotations"].items()},
    }


def _promtool_case(signals: dict[str, dict], fires: dict[str, np.ndarray], times: list[int]) -> dict:
    return {
        "interval": f"{STEP}s",
        "input_series": [
            {"series": name, "values": " ".join(repr(float(x)) for x in values)}
            for s in signals.values()
            for name, values in s["input"].items()
        ],
        "alert_rule_test": [
            {
                "eval_time": f"{i * STEP}s",
                "alertname": rules.ANOMALY_FLAGGED,
                "exp_alerts": [_expected(name, signals[name]["labels"]) for name in signals if fires[name][i]],
            }
            for i in times
        ],
    }


def _run(tmp_path, case: dict) -> subprocess.CompletedProcess:
    rules_file = rules.write_rules(SETTINGS, tmp_path / "rules.yml")
    test_file = tmp_path / "agreement.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            # promtool evaluates groups in map order unless told: the alert group read the robust z of the step before
            # in about one run of three. Prometheus itself runs groups concurrently, so the same one-step lag can
            # happen there; the test pins the order the Python detector assumes.
            {
                "rule_files": [str(rules_file)],
                "evaluation_interval": f"{STEP}s",
                "tests": [case],
                "group_eval_order": [g["name"] for g in rules.render_rules(SETTINGS)["groups"]],
            },
            width=100_000,
        )
    )
    return subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def _times(fires: dict[str, np.ndarray]) -> list[int]:
    """Every 5th evaluation, and every evaluation next to a change of any signal's state."""
    chosen = set(range(0, N, 5))
    for f in fires.values():
        for i in np.flatnonzero(f[1:] != f[:-1]) + 1:
            chosen |= {int(i) - 1, int(i), int(i) + 1}
    return sorted(i for i in chosen if 0 <= i < N)


@pytest.mark.parametrize("seed", range(3))
def test_promql_and_python_fire_the_same_alerts_at_every_evaluation(tmp_path, seed):
    signals = _series(seed)
    fires = _python_firing(signals)
    started = {name: anomaly.alert_starts(f) for name, f in fires.items()}
    # The injected anomalies are found (so agreement is not two detectors that never fire) and the lone point is not.
    assert started[alerting.SIGNAL_P95] == [110 + HOLD], started
    assert started[alerting.SIGNAL_5XX] == [120 + HOLD] and started[alerting.SIGNAL_CLASS_MIX] == [100 + HOLD]
    assert started[alerting.SIGNAL_TRAFFIC] == [140 + HOLD]
    assert started[alerting.SIGNAL_4XX] == ([130 + HOLD] if seed % 2 else [])
    done = _run(tmp_path, _promtool_case(signals, fires, _times(fires)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_agreement_check_fails_when_python_expects_what_promql_does_not_fire(tmp_path):
    """The harness can fail: claiming the p95 alert one evaluation early is caught by promtool."""
    signals = _series(0)
    fires = _python_firing(signals)
    early = dict(fires)
    early[alerting.SIGNAL_P95] = np.r_[fires[alerting.SIGNAL_P95][1:], False]
    done = _run(tmp_path, _promtool_case(signals, early, _times(early)))
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr
