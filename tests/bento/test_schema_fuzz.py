"""Schemathesis against a real replica of the reference bento: at least 1,000 generated requests (valid and
invalid, from the service's own /docs.json), and not one server error. One replica, not HAProxy: retries there
could hide a 5xx."""

from __future__ import annotations

from pathlib import Path

from modelops.gate.fuzz import run_fuzz

CASES = 1000


def test_a_thousand_generated_requests_get_no_server_error(live_deployment, tmp_path: Path) -> None:
    url = live_deployment.status().replicas[0].url
    result = run_fuzz(url, max_examples=CASES, time_limit_s=150, report_dir=tmp_path)
    print(f"\nschemathesis against {url}: {result.cases} cases, {result.server_errors} server errors, "
          f"{result.duration_s:.0f} s\n{' '.join(result.command)}")  # fmt: skip
    assert result.complete, f"schemathesis did not finish against {url}: {result.first_failures}"
    assert result.server_errors == 0, f"{url}: {result.first_failures} (report: {result.report})"
    assert result.passed, result.first_failures
    assert result.cases >= CASES, f"only {result.cases} cases within the time limit against {url}"
