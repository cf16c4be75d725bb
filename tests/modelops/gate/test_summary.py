"""The verdict: the first failed suite decides the exit code; inconclusive only when nothing failed."""

from __future__ import annotations

import pytest

from modelops.errors import ExitStatus
from modelops.gate.summary import SuiteResult, decide


def suites(**statuses: str) -> dict[str, SuiteResult]:
    return {name: SuiteResult(status=status, reason=f"{name} {status}") for name, status in statuses.items()}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"smoke": "pass", "slo": "pass", "regression": "skipped"}, ("promote", ExitStatus.OK)),
        ({"slo": "fail", "horizontal": "fail"}, ("reject", ExitStatus.SLO_FAILED)),
        ({"slo": "pass", "horizontal": "fail"}, ("reject", ExitStatus.HORIZONTAL_FAILED)),
        ({"vertical": "fail"}, ("reject", ExitStatus.VERTICAL_FAILED)),
        ({"failover": "fail", "slo": "inconclusive"}, ("reject", ExitStatus.FAILOVER_FAILED)),
        ({"regression": "fail"}, ("reject", ExitStatus.REGRESSION_FAILED)),
        ({"smoke": "fail"}, ("reject", ExitStatus.SMOKE_FAILED)),
        ({"slo": "pass", "failover": "inconclusive"}, ("inconclusive", ExitStatus.INCONCLUSIVE)),
    ],
)
def test_decide_maps_suite_outcomes_to_verdict_and_exit_status(statuses, expected) -> None:
    verdict, status, reason = decide(suites(**statuses))
    assert (verdict, status) == expected
    assert reason


def test_every_failed_gate_has_its_own_exit_code() -> None:
    codes = [ExitStatus.SMOKE_FAILED, ExitStatus.SLO_FAILED, ExitStatus.HORIZONTAL_FAILED,
             ExitStatus.VERTICAL_FAILED, ExitStatus.FAILOVER_FAILED, ExitStatus.REGRESSION_FAILED,
             ExitStatus.INCONCLUSIVE, ExitStatus.USAGE]  # fmt: skip
    assert len(set(codes)) == len(codes) and ExitStatus.OK not in codes
