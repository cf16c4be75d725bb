"""The verdict: a failed suite rejects with its own exit code; a promotion needs every required suite to pass."""

from __future__ import annotations

import pytest

from modelops.errors import ExitStatus
from modelops.gate.summary import SuiteResult, decide

ALL = ("smoke", "slo", "failover", "vertical", "horizontal")


def suites(**statuses: str) -> dict[str, SuiteResult]:
    return {name: SuiteResult(status=status, reason=f"{name} {status}") for name, status in statuses.items()}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"slo": "fail", "horizontal": "fail"}, ("reject", ExitStatus.SLO_FAILED)),
        ({"slo": "pass", "horizontal": "fail"}, ("reject", ExitStatus.HORIZONTAL_FAILED)),
        ({"vertical": "fail"}, ("reject", ExitStatus.VERTICAL_FAILED)),
        ({"failover": "fail", "slo": "inconclusive"}, ("reject", ExitStatus.FAILOVER_FAILED)),
        ({"regression": "fail"}, ("reject", ExitStatus.REGRESSION_FAILED)),
        ({"smoke": "fail"}, ("reject", ExitStatus.SMOKE_FAILED)),
        ({"autoscale": "fail", "slo": "pass"}, ("reject", ExitStatus.AUTOSCALE_FAILED)),
    ],
)
def test_the_first_failed_suite_rejects_with_its_exit_code_even_in_a_partial_run(statuses, expected) -> None:
    verdict, status, reason = decide(suites(**statuses), ALL)
    assert (verdict, status) == expected
    assert reason.split(":")[0] in statuses


def test_every_required_suite_passing_promotes() -> None:
    verdict, status, reason = decide(suites(**dict.fromkeys(ALL, "pass"), regression="skipped"), ALL)
    assert (verdict, status) == ("promote", ExitStatus.OK), reason


@pytest.mark.parametrize(
    ("statuses", "words"),
    [
        ({}, "smoke, slo, failover, vertical, horizontal did not run"),
        ({"smoke": "pass"}, "slo, failover, vertical, horizontal did not run"),
        ({"smoke": "pass", "slo": "pass", "horizontal": "pass", "vertical": "pass"}, "failover did not run"),
        ({**dict.fromkeys(ALL, "pass"), "failover": "inconclusive"}, "failover: inconclusive"),
        ({**dict.fromkeys(ALL, "pass"), "slo": "skipped"}, "slo: skipped"),
    ],
)
def test_a_run_missing_or_unsure_of_a_required_suite_never_promotes(statuses, words) -> None:
    verdict, status, reason = decide(suites(**statuses), ALL)
    assert (verdict, status) == ("inconclusive", ExitStatus.INCONCLUSIVE)
    assert words in reason


def test_regression_is_evidence_too_when_it_is_required() -> None:
    passed = dict.fromkeys(ALL, "pass")
    assert decide(suites(**passed, regression="skipped"), (*ALL, "regression"))[0] == "inconclusive"
    assert decide(suites(**passed, regression="inconclusive"), (*ALL, "regression"))[0] == "inconclusive"
    assert decide(suites(**passed, regression="pass"), (*ALL, "regression"))[0] == "promote"


def test_nothing_required_means_nothing_justifies_a_promotion() -> None:
    verdict, status, _ = decide(suites(smoke="pass"), ())
    assert (verdict, status) == ("inconclusive", ExitStatus.INCONCLUSIVE)


def test_every_failed_gate_has_its_own_exit_code() -> None:
    codes = [ExitStatus.SMOKE_FAILED, ExitStatus.SLO_FAILED, ExitStatus.HORIZONTAL_FAILED,
             ExitStatus.VERTICAL_FAILED, ExitStatus.FAILOVER_FAILED, ExitStatus.REGRESSION_FAILED,
             ExitStatus.AUTOSCALE_FAILED, ExitStatus.SOAK_FAILED, ExitStatus.PLAN_FAILED, ExitStatus.INCONCLUSIVE,
             ExitStatus.USAGE]  # fmt: skip
    assert len(set(codes)) == len(codes) and ExitStatus.OK not in codes


def test_the_autoscale_suite_is_required_only_when_autoscaling_is_on() -> None:
    from modelops.gate.run import required_suites
    from stacks.config import load_stack_config

    settings = load_stack_config("local")
    assert "autoscale" not in required_suites(settings, has_baseline=False)
    autoscaled = settings.with_overrides(autoscale={"enabled": True})
    # In run order: autoscale after the scaling suites, then the plan proven and the soak on the final shape.
    assert required_suites(autoscaled, has_baseline=False)[-3:] == ["autoscale", "plan", "soak"]
    assert required_suites(autoscaled, has_baseline=True)[-4:] == ["autoscale", "plan", "soak", "regression"]


def test_an_efficiency_that_was_not_measured_is_stored_as_none_never_as_zero() -> None:
    from modelops.gate.run import scaling_of
    from stacks.config import load_stack_config

    settings = load_stack_config("local")
    counts = settings.gate.horizontal_replicas
    horizontal = SuiteResult(
        status="inconclusive",
        reason="no clean step with 2 replicas",
        steps={"replicas=1": []},
        measured={f"rps_{counts[0]}": 500.0, f"efficiency_{counts[0]}": 1.0, f"efficiency_{counts[1]}": None},
    )
    scaling = scaling_of({"horizontal": horizontal}, settings)
    assert scaling.horizontal.efficiency == [1.0, None, *[None] * (len(counts) - 2)]
    assert '"efficiency":[1.0,null' in scaling.model_dump_json()
