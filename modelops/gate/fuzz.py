"""Schema fuzzing of a running service: schemathesis (its CLI, as a subprocess) against the service's own OpenAPI at
``<url>/docs.json``, generating valid and invalid requests for every operation and checking that none gets a 5xx.

Run it against one replica, not through a load balancer: HAProxy's retries could resend a request that got a 5xx to
another replica and hide the error (FACTS.md). Health and metrics paths are left out: they take no input.

    result = run_fuzz("http://127.0.0.1:3000", max_examples=1000, time_limit_s=120, report_dir=Path("reports/x"))
    result.passed, result.cases, result.server_errors, result.first_failures, result.command
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelops.errors import MissingToolError, ModelopsError

EXCLUDED_PATHS = r"^/(metrics|livez|readyz|healthz)$"
SERVER_ERROR_CHECK = "not_a_server_error"
SERVER_ERROR_CODE = "ST101"  # schemathesis' failure code for a 5xx answer
SHOWN_FAILURES = 5
INSTALL_HINT = "schemathesis is not installed in this environment: run `make setup` (it is pinned in pyproject.toml)"

Runner = Callable[..., subprocess.CompletedProcess]


class FuzzError(ModelopsError):
    """schemathesis produced no result (it could not start, or crashed before writing its report)."""


@dataclass(frozen=True)
class FuzzResult:
    url: str
    command: list[str]
    exit_code: int
    cases: int  # test cases schemathesis generated and sent
    server_errors: int  # distinct 5xx failures (schemathesis groups identical ones: one per operation and status)
    failures: int  # distinct failures of any check run, and errors (server errors included)
    first_failures: list[str]  # titles of the first failure groups, for the report
    duration_s: float
    report: str  # schemathesis' JSON run report
    complete: bool  # the run ended on its own (not a schema loading or fatal error)

    @property
    def passed(self) -> bool:
        return self.complete and self.server_errors == 0 and self.failures == 0


def schemathesis_binary() -> str:
    here = Path(sys.executable).with_name("schemathesis")
    found = str(here) if here.exists() else shutil.which("schemathesis")
    if not found:
        raise MissingToolError(INSTALL_HINT)
    return found


def fuzz_command(
    url: str,
    report: Path,
    max_examples: int,
    time_limit_s: float,
    checks: Sequence[str] = (SERVER_ERROR_CHECK,),
    seed: int | None = 1,
    workers: int = 1,
) -> list[str]:
    argv = [
        schemathesis_binary(), "run", url.rstrip("/") + "/docs.json",
        "--checks", ",".join(checks),
        "--max-examples", str(max_examples),
        "--max-time", str(max(1, round(time_limit_s))),
        "--exclude-path-regex", EXCLUDED_PATHS,
        "--workers", str(workers),
        "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
        "--no-color",
    ]  # fmt: skip
    if seed is not None:  # a fixed seed: the same candidate gets the same cases, a failure reproduces
        argv += ["--seed", str(seed)]
    return argv


def run_fuzz(
    url: str,
    max_examples: int = 200,
    time_limit_s: float = 60.0,
    report_dir: Path | None = None,
    checks: Sequence[str] = (SERVER_ERROR_CHECK,),
    seed: int | None = 1,
    runner: Runner = subprocess.run,
) -> FuzzResult:
    """Fuzz the service at ``url``: ``max_examples`` cases per operation and phase, and fuzzing repeats until
    ``time_limit_s`` is spent (schemathesis' --max-time), so the run takes about that long; ``cases`` says how many
    requests it sent."""
    report_dir = report_dir or Path.cwd() / "schemathesis"
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "schemathesis.json"
    report.unlink(missing_ok=True)
    argv = fuzz_command(url, report, max_examples, time_limit_s, checks, seed)
    started = time.monotonic()
    # Generous: schemathesis stops itself at --max-time; the margin covers start-up and the last requests.
    done = runner(argv, capture_output=True, text=True, check=False, timeout=time_limit_s + 120, cwd=report_dir)
    duration = time.monotonic() - started
    (report_dir / "schemathesis.log").write_text((done.stdout or "") + (done.stderr or ""))
    if not report.is_file():
        raise FuzzError(
            f"schemathesis wrote no report (exit code {done.returncode}) for {url}/docs.json; its output:\n"
            f"{((done.stdout or '') + (done.stderr or ''))[-2000:]}"
        )
    document = json.loads(report.read_text())
    groups = document.get("failures") or []
    server_errors = sum(g["count"] for g in groups if g.get("code") == SERVER_ERROR_CODE)
    cases = document.get("test_cases") or {}
    fatal = [f"{e['title']} (x{e['count']})" for e in document.get("errors") or []]
    titles = [f"{g['title']} (x{g['count']}, {', '.join(g.get('operations') or [])})" for g in groups]
    return FuzzResult(
        url=url,
        command=argv,
        exit_code=done.returncode,
        cases=int(cases.get("generated", 0)),
        server_errors=server_errors,
        failures=sum(g["count"] for g in groups) + sum(e["count"] for e in document.get("errors") or []),
        first_failures=(fatal + titles)[:SHOWN_FAILURES],
        duration_s=duration,
        report=str(report),
        complete=bool(document.get("complete")) and not fatal,
    )
