"""Monitoring as part of a deployment (`modelops up --monitoring`): the drift monitor, Alertmanager and Prometheus,
started beside it, found by every command that reads live metrics or alerts (`modelops monitor`, `modelops alerts`,
the canary), stopped by `modelops down`.

Each process is recorded in ``<stack state>/monitoring/<name>.json`` and carries the deployment's process marker
(modelops/targets/local/procs.py), so the local target's ``down`` stops it even if its record were lost. They start
in dependency order: the monitor (its port goes into the scrape configuration), Alertmanager (its port goes into
Prometheus' ``alerting:`` section), then Prometheus. When the pools change (a gate deploys a candidate),
:func:`refresh` rewrites the scrape configuration from the target's status and makes Prometheus reload it (SIGHUP):
the candidate's replicas are scraped from then on.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml
from pydantic import BaseModel

from modelops.errors import DeploymentError
from modelops.monitor import alertmanager, watch
from modelops.monitor.prometheus import binary, scrape_config
from modelops.monitor.rules import JOB_REPLICAS, write_rules
from modelops.state import read_json, write_atomic, write_json
from modelops.targets.base import TargetStatus
from modelops.targets.local import procs
from modelops.waiting import wait_until
from stacks.config import PROJECT_ROOT, StackConfig

RECORD = "prometheus.json"
ALERTMANAGER_RECORD = "alertmanager.json"
MONITOR_RECORD = "monitor.json"
RECORDS = (RECORD, ALERTMANAGER_RECORD, MONITOR_RECORD)  # stopped in this order: who reads first goes first


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


def _load(state_dir: Path, record: str) -> MonitoringRecord | None:
    data = read_json(monitoring_dir(state_dir) / record)
    found = MonitoringRecord.model_validate(data) if data else None
    return found if found is not None and found.proc.alive() else None


def load(state_dir: Path) -> MonitoringRecord | None:
    """Prometheus' record, when it runs."""
    return _load(state_dir, RECORD)


def _answers(url: str, path: str) -> bool:
    try:
        return httpx.get(url + path, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _running(state_dir: Path, record: str, path: str) -> str | None:
    found = _load(state_dir, record)
    return found.url if found is not None and _answers(found.url, path) else None


def running_prometheus(state_dir: Path) -> str | None:
    """The URL of the deployment's Prometheus if one runs and answers, else None."""
    return _running(state_dir, RECORD, "/-/ready")


def running_alertmanager(state_dir: Path) -> str | None:
    """The URL of the deployment's Alertmanager if one runs and answers, else None."""
    return _running(state_dir, ALERTMANAGER_RECORD, "/-/ready")


def running_monitor(state_dir: Path) -> str | None:
    """The URL of the deployment's drift monitor (its /metrics) if one runs and answers, else None."""
    return _running(state_dir, MONITOR_RECORD, "/metrics")


def _host(url: str | None) -> str | None:
    return url.removeprefix("http://") if url else None


def _write_config(directory: Path, status: TargetStatus, settings: StackConfig) -> None:
    state_dir = directory.parent
    rules = write_rules(settings, directory / "rules.yml")
    monitor, manager = _load(state_dir, MONITOR_RECORD), _load(state_dir, ALERTMANAGER_RECORD)
    config = scrape_config(
        status,
        rules,
        settings.monitor.scrape_interval_s,
        monitor=_host(monitor.url) if monitor else None,
        alertmanager=_host(manager.url) if manager else None,
    )
    write_atomic(directory / "prometheus.yml", yaml.safe_dump(config, sort_keys=False))


def _spawn(
    state_dir: Path, name: str, argv: list[str], port: int, deployment: str, ready: Callable[[], bool],
    timeout: float, env: dict[str, str] | None = None,
) -> MonitoringRecord:  # fmt: skip
    directory = monitoring_dir(state_dir)
    log = directory / f"{name.removesuffix('.json')}.log"
    proc = procs.spawn(argv, deployment=deployment, log=log, env=env, cwd=PROJECT_ROOT)
    record = MonitoringRecord(pid=proc.pid, started=proc.started, tag=proc.tag, port=port, deployment=deployment)
    write_json(directory / name, record.model_dump(mode="json"))  # recorded first: `down` finds it whatever happens

    def answered() -> bool:
        procs.reap()  # collect exited children first, so that proc.alive() sees an exit
        return ready() or not proc.alive()

    label = name.removesuffix(".json")
    if not wait_until(answered, timeout, interval=0.2) or not proc.alive():
        stop(state_dir)
        raise DeploymentError(f"{label} did not start on {record.url} within {timeout:g} s:\n{procs.log_tail(log)}")
    return record


def start_monitor(state_dir: Path, settings: StackConfig, deployment: str, log_dir: Path, timeout: float) -> str:
    """The drift monitor process; returns its URL once it serves /metrics and wrote its first status."""
    running = running_monitor(state_dir)
    if running:
        return running
    directory = monitoring_dir(state_dir) / "monitor"
    directory.mkdir(parents=True, exist_ok=True)
    settings_file = directory / "settings.json"
    write_atomic(settings_file, settings.model_dump_json())
    status_file = directory / watch.STATUS_FILE
    status_file.unlink(missing_ok=True)
    port = procs.free_port()
    argv = [*watch.COMMAND, "--settings", str(settings_file), "--log-dir", str(log_dir), "--dir", str(directory),
            "--port", str(port), "--state-dir", str(state_dir)]  # fmt: skip
    from modelops.bentos import bentoml_home

    record = _spawn(
        state_dir, MONITOR_RECORD, argv, port, deployment,
        lambda: status_file.exists() and _answers(f"http://127.0.0.1:{port}", "/metrics"), timeout,
        env={"BENTOML_HOME": str(bentoml_home())},  # the monitor loads each model's reference from the store
    )  # fmt: skip
    return record.url


def start_alertmanager(state_dir: Path, settings: StackConfig, deployment: str, timeout: float) -> str:
    running = running_alertmanager(state_dir)
    directory = monitoring_dir(state_dir)
    config = alertmanager.write_config(settings, directory)
    if running:
        record = _load(state_dir, ALERTMANAGER_RECORD)
        if record is not None:
            os.kill(record.pid, signal.SIGHUP)  # Alertmanager reloads its configuration on SIGHUP
        return running
    port = procs.free_port()
    data = directory / "alertmanager-data"
    shutil.rmtree(data, ignore_errors=True)  # the previous deployment's alerts and silences are not this one's
    argv = alertmanager.command(config, data, port)
    record = _spawn(state_dir, ALERTMANAGER_RECORD, argv, port, deployment,
                    lambda: _answers(f"http://127.0.0.1:{port}", "/-/ready"), timeout)  # fmt: skip
    return record.url


def start(
    state_dir: Path, status: TargetStatus, settings: StackConfig, deployment: str, timeout: float = 30.0,
    log_dir: Path | None = None,
) -> str:  # fmt: skip
    """Start the drift monitor (when ``log_dir`` is given: the replicas' prediction log), Alertmanager and
    Prometheus for the deployment (idempotent: answering ones are kept). Returns Prometheus' URL."""
    if log_dir is not None:
        start_monitor(state_dir, settings, deployment, log_dir, timeout)
    start_alertmanager(state_dir, settings, deployment, timeout)
    running = running_prometheus(state_dir)
    if running:
        refresh(state_dir, status, settings)
        return running
    directory = monitoring_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    _write_config(directory, status, settings)
    # A new Prometheus belongs to a new deployment: it must not restore the previous one's alerts (`for:` state).
    shutil.rmtree(directory / "data", ignore_errors=True)
    port = procs.free_port()
    argv = [
        binary(),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
    ]
    record = _spawn(state_dir, RECORD, argv, port, deployment,
                    lambda: _answers(f"http://127.0.0.1:{port}", "/-/ready"), timeout)  # fmt: skip
    return record.url


def urls(state_dir: Path) -> dict[str, str | None]:
    """Where each monitoring process of the deployment answers (None: not running)."""
    return {
        "prometheus": running_prometheus(state_dir),
        "alertmanager": running_alertmanager(state_dir),
        "monitor": running_monitor(state_dir),
    }


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
    """Stop the deployment's monitoring processes; returns what was stopped (None if nothing ran)."""
    stopped = []
    for name in RECORDS:
        path = monitoring_dir(state_dir) / name
        data = read_json(path)
        if not data:
            continue
        record = MonitoringRecord.model_validate(data)
        procs.stop([record.proc], grace=10)
        path.unlink(missing_ok=True)
        stopped.append(f"{name.removesuffix('.json')} on port {record.port} (pid {record.pid})")
    return "; ".join(stopped) or None
