"""Run Locust headless as a subprocess (importing locust monkey-patches the process with gevent) and read back
its own statistics: the CSV files for the figures, the time series for the plots, the meta file for warm-up and
the load generator's CPU warning. Locust's CSV, JSON and HTML reports stay in the output folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from modelops.errors import DeploymentError
from stacks.config import PROJECT_ROOT

LOCUSTFILE = PROJECT_ROOT / "loadtests" / "locustfile.py"
PERCENTILES = {"p50_ms": "50%", "p95_ms": "95%", "p99_ms": "99%"}


@dataclass(frozen=True)
class LoadSpec:
    users: int
    spawn_rate: float
    duration_s: float
    warmup_s: float = 0.0
    rate: float = 0.0  # offered req/s in total (paced users); 0 = closed loop, as fast as the service answers
    rows_per_request: int = 1
    batch_rows: int = 32
    batch_weight: int = 0
    endpoint: str | None = None
    payload_file: Path | None = None
    golden_file: Path | None = None  # rows + expected labels, checked by one extra user
    shape: str | None = None  # a LoadTestShape in loadtests/shapes.py (MODELOPS_SHAPE); -u/-r/-t then unused
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the run started
    users: int
    rps: float
    fail_rps: float
    p50_ms: float | None
    p95_ms: float | None
    total_requests: int
    total_failures: int


@dataclass(frozen=True)
class LoadResult:
    url: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_warning: bool
    golden_checks: int
    exit_code: int
    out_dir: str
    prefix: str
    timeline: list[Sample]
    failure_messages: dict[str, int]
    timeline_start: float | None = None  # wall-clock time (epoch s) of the timeline's t = 0

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def command(url: str, spec: LoadSpec, out_dir: Path, prefix: str) -> list[str]:
    base = out_dir / prefix
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-H", url,
        "--only-summary", "--csv", str(base), "--html", f"{base}.html", "--json-file", str(base),
        "--logfile", f"{base}.log", "--meta-file", f"{base}.meta.json",
        "--rows-per-request", str(spec.rows_per_request), "--batch-rows", str(spec.batch_rows),
        "--batch-weight", str(spec.batch_weight), "--warmup", str(spec.warmup_s), "--rate", str(spec.rate),
        "--stop-timeout", "5",
    ]  # fmt: skip
    if not spec.shape:
        argv += [
            "-u",
            str(spec.users),
            "-r",
            str(spec.spawn_rate),
            "-t",
            f"{spec.warmup_s + spec.duration_s:g}s",
        ]
    if spec.endpoint:
        argv += ["--endpoint", spec.endpoint]
    if spec.payload_file:
        argv += ["--payload-file", str(spec.payload_file)]
    if spec.golden_file:
        argv += ["--golden-file", str(spec.golden_file)]
    return argv


def run(url: str, spec: LoadSpec, out_dir: Path, prefix: str = "locust", timeout: float | None = None) -> LoadResult:
    """Run one headless Locust load against ``url`` and return its figures (after warm-up)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = command(url, spec, out_dir, prefix)
    env = {**_clean_env(), **spec.extra_env}
    if spec.shape:
        env["MODELOPS_SHAPE"] = spec.shape
    limit = timeout or (spec.warmup_s + spec.duration_s + 60)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        raise DeploymentError(f"locust did not finish within {limit:g} s; see {out_dir / prefix}.log") from None
    stats = out_dir / f"{prefix}_stats.csv"
    if not stats.exists():
        log = (out_dir / f"{prefix}.log").read_text(errors="replace") if (out_dir / f"{prefix}.log").exists() else ""
        raise DeploymentError(f"locust failed (exit {done.returncode}):\n{(done.stderr + log)[-3000:]}")
    return parse(url, out_dir, prefix, done.returncode)


def _clean_env() -> dict[str, str]:
    import os

    # Locust must not inherit a deployment marker: `down` would count it as part of the deployment.
    return {k: v for k, v in os.environ.items() if k != "MODELOPS_DEPLOYMENT"}


def parse(url: str, out_dir: Path, prefix: str, exit_code: int = 0) -> LoadResult:
    rows = list(csv.DictReader((out_dir / f"{prefix}_stats.csv").open()))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    meta_path = out_dir / f"{prefix}.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    failures: dict[str, int] = {}
    failures_csv = out_dir / f"{prefix}_failures.csv"
    if failures_csv.exists():
        for row in csv.DictReader(failures_csv.open()):
            failures[row["Error"][:300]] = failures.get(row["Error"][:300], 0) + int(row["Occurrences"])
    requests = int(total["Request Count"])
    timeline, start = _timeline(out_dir / f"{prefix}_stats_history.csv")
    return LoadResult(
        url=url,
        requests=requests,
        failures=int(total["Failure Count"]),
        rps=float(total["Requests/s"]),
        p50_ms=_ms(total["50%"]),
        p95_ms=_ms(total["95%"]),
        p99_ms=_ms(total["99%"]),
        max_ms=_ms(total["Max Response Time"]),
        cpu_warning=bool(meta.get("cpu_warning")),
        golden_checks=int(meta.get("golden_checks", 0)),
        exit_code=exit_code,
        out_dir=str(out_dir),
        prefix=prefix,
        timeline=timeline,
        failure_messages=failures,
        timeline_start=start,
    )


def _ms(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _timeline(path: Path) -> tuple[list[Sample], float | None]:
    if not path.exists():
        return [], None
    samples = []
    start = None
    for row in csv.DictReader(path.open()):
        if row["Name"] != "Aggregated":
            continue
        t = float(row["Timestamp"])
        start = t if start is None else start
        samples.append(
            Sample(
                t=t - start,
                users=int(row["User Count"]),
                rps=float(row["Requests/s"]),
                fail_rps=float(row["Failures/s"]),
                p50_ms=None if row["50%"] == "N/A" else float(row["50%"]),
                p95_ms=None if row["95%"] == "N/A" else float(row["95%"]),
                total_requests=int(row["Total Request Count"]),
                total_failures=int(row["Total Failure Count"]),
            )
        )
    return samples, start
