"""A real Prometheus scraping a real local deployment: every replica and HAProxy are up, the request rate shows."""

from __future__ import annotations

import shutil

import httpx
import pytest

from modelops.monitor.prometheus import Prometheus, scrape_config
from modelops.monitor.rules import JOB_HAPROXY, JOB_REPLICAS, REQUEST_RATE
from modelops.targets.base import PoolStatus, ReplicaStatus, TargetStatus
from modelops.targets.local.procs import free_port
from modelops.waiting import wait_until

ROW = [13.2, 1.8, 2.4, 17.0, 100.0, 2.6, 2.7, 0.3, 1.8, 5.0, 1.0, 3.0, 1000.0]


def test_scrape_config_lists_both_pools_replicas_with_their_names_and_haproxy(tmp_path):
    replicas = lambda colour, ports: [  # noqa: E731
        ReplicaStatus(name=f"{colour}-{i}", url=f"http://127.0.0.1:{p}", healthy=True) for i, p in enumerate(ports, 1)
    ]
    status = TargetStatus(
        target="local",
        url="http://127.0.0.1:8000",
        bento="svc:1",
        live="blue",
        pools={
            "blue": PoolStatus("blue", "svc:1", "http://127.0.0.1:8001", replicas("blue", [9001, 9002]), 1, 100),
            "green": PoolStatus("green", "svc:2", "http://127.0.0.1:8002", replicas("green", [9003]), 1, 0),
        },
        admin_url="http://127.0.0.1:8404/stats",
    )
    config = scrape_config(status, tmp_path / "rules.yml", 5)
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert [(c["targets"], c["labels"]) for c in jobs[JOB_REPLICAS]] == [
        (["127.0.0.1:9001"], {"replica": "blue-1", "colour": "blue"}),
        (["127.0.0.1:9002"], {"replica": "blue-2", "colour": "blue"}),
        (["127.0.0.1:9003"], {"replica": "green-1", "colour": "green"}),
    ]
    assert jobs[JOB_HAPROXY] == [{"targets": ["127.0.0.1:8404"]}]
    assert config["rule_files"] == [str(tmp_path / "rules.yml")]


@pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus is not installed: run `make setup` (Debian's prometheus package)",
)
def test_prometheus_scrapes_the_replicas_and_haproxy_and_reports_the_request_rate(live_deployment, tmp_path):
    status = live_deployment.status()
    settings = live_deployment.settings.with_overrides(monitor={"scrape_interval_s": 1})
    server = Prometheus.for_deployment(status, settings, tmp_path / "prometheus", free_port())
    with server.start(), httpx.Client(timeout=10) as client:

        def predict_then_query() -> bool:
            for _ in range(5):
                client.post(status.url + "/predict", json={"rows": [ROW]}).raise_for_status()
            rate = server.query(
                f'sum(rate(bentoml_service_request_total{{job="{JOB_REPLICAS}",endpoint="/predict"}}[10s]))'
            )
            return bool(rate) and float(rate[0]["value"][1]) > 0

        assert wait_until(predict_then_query, timeout=60, interval=0.5), "no request rate in Prometheus after 60 s"
        up = {(r["metric"]["job"], r["metric"].get("replica")): r["value"][1] for r in server.query("up")}
        expected = {(JOB_REPLICAS, r.name) for r in status.replicas} | {(JOB_HAPROXY, None)}
        assert set(up) == expected and set(up.values()) == {"1"}, up
        assert wait_until(lambda: bool(server.query(REQUEST_RATE)), timeout=30, interval=0.5), (
            f"the recording rule {REQUEST_RATE} produced nothing"
        )
    assert server.process.poll() is not None, "prometheus was left running"
