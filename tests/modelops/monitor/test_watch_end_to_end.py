"""Production watched without a human, on real replicas: client traffic → prediction log → the drift monitor →
Prometheus → Alertmanager → a webhook receiver this test runs. Nothing is typed in between.

Normal client traffic raises no alert; traffic with one feature shifted (color_intensity + 1.5 training sds, as the
demo's) makes ``DriftDetected`` arrive at the webhook, and the test prints how long after the shifted traffic began.

Shortened here (the shipped values in stacks/Pulumi.local.yaml, and why): Prometheus scrapes and evaluates every 1 s
(5 s) with a 10-s rate window (60 s) and a 20-point anomaly baseline (60), so a verdict reaches Prometheus within
seconds; the monitor looks at the log every 1 s (60 s) and judges chunks of 50 rows (100), so a chunk forms within
seconds of 40 req/s; Alertmanager groups for 1 s (30 s) before the first notification. The drift threshold h is
recomputed from these (43,200 looks a day instead of 1,440 raise it), so the detector stays calibrated to the same
false alarms a day. ``anomaly_for_s`` keeps its shipped 60 s: the normal phase is shorter, so no anomaly alert can
fire in it, and the claim tested is the drift path.
"""

from __future__ import annotations

import shutil
import time

import pytest

from modelops.monitor import service, traffic
from modelops.monitor.drift_report import load_model
from modelops.monitor.rules import DRIFT_DETECTED
from modelops.monitor.watch import STATUS_FILE
from modelops.state import read_json
from modelops.waiting import wait_until
from stacks.predictions import prediction_log_dir

pytestmark = pytest.mark.skipif(
    not (shutil.which("prometheus") and (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))),
    reason="prometheus and alertmanager are not installed: run `make setup`",
)

FAST = {
    "scrape_interval_s": 1,
    "rate_window_s": 10,
    "anomaly_window": 20,
    "alert_group_wait_s": 1,
    "alert_group_interval_s": 1,
    "drift": {"interval_s": 1, "min_chunk_rows": 50},
}
RATE = 40.0  # client requests per second


def _monitor_status(target) -> dict:
    return read_json(service.monitoring_dir(target.dir) / "monitor" / STATUS_FILE) or {}


def test_shifted_client_traffic_reaches_the_webhook_as_drift_and_normal_traffic_raises_nothing(
    make_target, reference_bento, webhook
):
    target = make_target(monitor={**FAST, "alert_webhook": webhook.url})
    status = target.up(reference_bento, replicas=1, workers=1)
    settings = target.settings
    try:
        service.start(target.dir, status, settings, target.deployment, log_dir=prediction_log_dir(settings))
        metadata, _ = load_model("wine_classifier:latest")
        normal = traffic.scenario(metadata, "normal", requests=500, seed=1)
        shifted = traffic.scenario(metadata, "shifted", requests=500, feature="color_intensity", shift_std=1.5)

        with traffic.Clients(status.url, normal, rate=RATE) as clients:
            judged = wait_until(lambda: _monitor_status(target).get("rows_judged", 0) >= 400, timeout=90, interval=0.5)
        assert judged, f"the monitor judged too few rows of normal traffic: {_monitor_status(target)}"
        assert clients.failed == 0
        assert _monitor_status(target)["drift"] is False, _monitor_status(target)["last_chunk"]
        assert webhook.firing() == [], f"normal traffic raised alerts: {webhook.firing()}"

        began = time.time()
        with traffic.Clients(status.url, shifted, rate=RATE) as clients:
            arrived = wait_until(lambda: bool(webhook.firing(DRIFT_DETECTED)), timeout=120, interval=0.2)
        assert arrived, f"no {DRIFT_DETECTED} at the webhook within 120 s; monitor: {_monitor_status(target)}"
        assert clients.failed == 0
        at, alert = webhook.firing(DRIFT_DETECTED)[0]
        assert alert["labels"]["severity"] == "ticket"
        assert alert["labels"]["model_version"].startswith("wine_classifier:")
        assert "color_intensity" in _monitor_status(target)["last_chunk"]["drifted"]
        print(f"\nshifted traffic began → {DRIFT_DETECTED} at the webhook: {at - began:.1f} s")
    finally:
        service.stop(target.dir)
