"""Prometheus as part of a deployment (`modelops up --monitoring`): started beside it, found by every command that
reads live metrics (`modelops monitor`, the canary), stopped by `modelops down`.

The process is recorded in ``<stack state>/monitoring/prometheus.json`` and carries the deployment's process marker
(modelops/targets/local/procs.py), so the local target's ``down`` stops it even if this record were lost. When the
pools change (a gate deploys a candidate), :func:`refresh` rewrites the scrape configuration from the target's
status and makes Prometheus reload it (SIGHUP): the candidate's replicas are scraped from then on.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import yaml
from pydantic import BaseModel

from modelops.errors import DeploymentError
from modelops.monitor.prometheus import binary, scrape_config
from modelops.monitor.rules import JOB_REPLICAS, write_rules
from modelops.state import read_json, write_json
from modelops.targets.base import TargetStatus
from modelops.targets.local import procs
from modelops.waiting import wait_until
from stacks.config import StackConfig

RECORD = "prometheus.json"


class MonitoringRecord(BaseModel):
    pid: int
    started: float | None
    tag: str
    port: int
    deployment: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> procs.Proc:
        return procs.Proc(self.pid, self.started, self.tag)


def monitoring_dir(state_dir: Path) -> Path:
    return state_dir / "monitoring"


def load(state_dir: Path) -> MonitoringRecord | None:
    data = read_json(monitoring_dir(state_dir) / RECORD)
    record = MonitoringRecord.model_validate(data) if data else None
    return record if record is not None and record.proc.alive() else None


def running_prometheus(state_dir: Path) -> str | None:
    """The URL of the deployment's Prometheus if one runs and answers, else None."""
    record = load(state_dir)
    if record is None:
        return None
    try:
        return record.url if httpx.get(record.url + "/-/ready", timeout=2.0).status_code == 200 else None
    except httpx.HTTPError:
        return None


def _write_config(directory: Path, status: TargetStatus, settings: StackConfig) -> None:
    rules = write_rules(settings, directory / "rules.yml")
    config = scrape_config(status, rules, settings.monitor.scrape_interval_s)
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def start(state_dir: Path, status: TargetStatus, settings: StackConfig, deployment: str, timeout: float = 30.0) -> str:
    """Start Prometheus for the deployment (idempotent: an answering one is kept). Returns its URL."""
    running = running_prometheus(state_dir)
    if running:
        refresh(state_dir, status, settings)
        return running
    directory = monitoring_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    _write_config(directory, status, settings)
    port = procs.free_port()
    argv = [
        binary(),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
    ]
    proc = procs.spawn(argv, deployment=deployment, log=directory / "prometheus.log")
    record = MonitoringRecord(pid=proc.pid, started=proc.started, tag=proc.tag, port=port, deployment=deployment)
    write_json(directory / RECORD, record.model_dump(mode="json"))

    def answered() -> bool:
        procs.reap()  # collect exited children first, so that proc.alive() sees an exit
        return running_prometheus(state_dir) is not None or not proc.alive()

    if not wait_until(answered, timeout):
        stop(state_dir)
        raise DeploymentError(f"prometheus did not answer on {record.url} within {timeout:g} s: see {directory}")
    if not proc.alive():
        stop(state_dir)
        raise DeploymentError(f"prometheus exited at start:\n{procs.log_tail(directory / 'prometheus.log')}")
    return record.url


def refresh(state_dir: Path, status: TargetStatus, settings: StackConfig, timeout: float = 30.0) -> bool:
    """Scrape what the deployment runs now (both pools); waits until Prometheus has scraped every replica.
    Returns False when no Prometheus runs for the deployment."""
    record = load(state_dir)
    if record is None:
        return False
    _write_config(monitoring_dir(state_dir), status, settings)
    os.kill(record.pid, signal.SIGHUP)  # Prometheus reloads its configuration on SIGHUP
    from modelops.monitor.prometheus import query

    wanted = {r.name for pool in status.pools.values() for r in pool.replicas}

    def scraped() -> bool:
        rows = query(record.url, f'up{{job="{JOB_REPLICAS}"}} == 1')
        return wanted <= {row["metric"].get("replica") for row in rows}

    if not wait_until(scraped, timeout, interval=0.5):
        raise DeploymentError(f"prometheus at {record.url} did not scrape every replica ({sorted(wanted)}) in time")
    return True


def stop(state_dir: Path) -> str | None:
    """Stop the deployment's Prometheus; returns what was stopped (None if nothing ran)."""
    path = monitoring_dir(state_dir) / RECORD
    data = read_json(path)
    if not data:
        return None
    record = MonitoringRecord.model_validate(data)
    procs.stop([record.proc], grace=10)
    path.unlink(missing_ok=True)
    return f"prometheus on port {record.port} (pid {record.pid})"
