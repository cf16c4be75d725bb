"""A real Prometheus for a deployment: its configuration from the target's status, a process, and queries.

The scrape configuration names every replica's ``/metrics`` (job ``modelops-replicas``, labelled with the replica's
name and colour), HAProxy's Prometheus exporter on the admin port (job ``modelops-haproxy``) and the drift monitor
(job ``modelops-monitor``, modelops/monitor/watch.py), loads the rules file generated from the stack settings
(stacks/alerting.py) and sends alerts to the deployment's Alertmanager. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml

from modelops.errors import DeploymentError
from modelops.monitor.rules import JOB_HAPROXY, JOB_MONITOR, JOB_REPLICAS, write_rules
from modelops.targets.base import TargetStatus
from modelops.tools import require
from modelops.waiting import wait_until
from stacks.config import StackConfig

INSTALL_HINT = (
    "prometheus is not installed: run `make setup` (it installs Debian's prometheus package), or install "
    "Prometheus >= 2.37 yourself (Debian/Ubuntu: sudo apt-get install prometheus; macOS: brew install prometheus)"
)


def binary() -> str:
    return require("prometheus", INSTALL_HINT)


def _host(url: str) -> str:
    return urlsplit(url).netloc


def scrape_config(
    status: TargetStatus,
    rules_file: Path,
    scrape_interval_s: int,
    monitor: str | None = None,
    alertmanager: str | None = None,
) -> dict:
    """Prometheus' configuration for a deployment: both pools' replicas and HAProxy's exporter; the drift monitor
    (``host:port``) when one runs, and the Alertmanager (``host:port``) its alerts go to."""
    interval = f"{scrape_interval_s}s"
    replica_targets = [
        {"targets": [_host(r.url)], "labels": {"replica": r.name, "colour": colour}}
        for colour, pool in status.pools.items()
        for r in pool.replicas
    ]
    jobs = [{"job_name": JOB_REPLICAS, "metrics_path": "/metrics", "static_configs": replica_targets}]
    if status.admin_url:
        jobs.append(
            {
                "job_name": JOB_HAPROXY,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [_host(status.admin_url)]}],
            }
        )
    if monitor:
        jobs.append({"job_name": JOB_MONITOR, "metrics_path": "/metrics", "static_configs": [{"targets": [monitor]}]})
    config: dict = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(rules_file)],
        "scrape_configs": jobs,
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def query(url: str, promql: str) -> list[dict]:
    """An instant query's result vector against the Prometheus at ``url``."""
    try:
        reply = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5.0)
    except httpx.HTTPError as exc:
        raise DeploymentError(f"cannot reach prometheus at {url} ({exc}): is it running? (`modelops status`)") from None
    body = reply.json()
    if reply.status_code != 200 or body.get("status") != "success":
        raise DeploymentError(f"prometheus refused {promql!r}: {body.get('error', reply.text)}")
    return body["data"]["result"]


@dataclass
class Prometheus:
    """One Prometheus process on 127.0.0.1:port with its own data directory. Use as a context manager."""

    directory: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def for_deployment(cls, status: TargetStatus, settings: StackConfig, directory: Path, port: int) -> Prometheus:
        directory.mkdir(parents=True, exist_ok=True)
        rules_file = write_rules(settings, directory / "rules.yml")
        config = scrape_config(status, rules_file, settings.monitor.scrape_interval_s)
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        return cls(directory=directory, port=port)

    def start(self, timeout: float = 30.0) -> Prometheus:
        log = (self.directory / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary(),
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if not wait_until(self._ready, timeout, interval=0.2):
            self.stop()
            raise DeploymentError(
                f"prometheus did not become ready on {self.url} within {timeout:g} s: see "
                f"{self.directory / 'prometheus.log'}"
            )
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise DeploymentError(
                f"prometheus exited with {self.process.returncode}: see {self.directory / 'prometheus.log'}"
            )
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def query(self, promql: str) -> list[dict]:
        """An instant query's result vector (``[{"metric": {...}, "value": [ts, "v"]}, ...]``)."""
        return query(self.url, promql)

    def targets(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/targets", timeout=5.0).json()["data"]["activeTargets"]
