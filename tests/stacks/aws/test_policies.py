"""checkov's AWS policies over the rendered Terraform-plan-shaped JSON, and shellcheck over the stack's scripts.

Every finding must be an accepted one from checkov_skips.yaml (each with its reason), every accepted one must
still occur, and checkov must have evaluated a meaningful number of checks over the resource types that matter.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.stacks.rendering import run_checkov, tool

SKIPS = yaml.safe_load((Path(__file__).with_name("checkov_skips.yaml")).read_text())
MIN_PASSED = 100
# checkov must have run at least one check on each of these: proof that the Terraform type mapping is understood.
# (Default security group and flow log are judged through the VPC's graph checks, tested below.)
SCANNED_TYPES = {
    "aws_autoscaling_group", "aws_cloudwatch_log_group", "aws_ecr_repository", "aws_iam_role_policy", "aws_kms_key",
    "aws_launch_template", "aws_lb", "aws_lb_listener", "aws_lb_target_group", "aws_s3_bucket", "aws_security_group",
    "aws_subnet", "aws_vpc", "aws_vpc_security_group_ingress_rule",
}  # fmt: skip


def accepted(with_certificate: bool, with_test_listeners: bool = False) -> set[tuple[str, str]]:
    return {
        (s["check"], s["resource"])
        for s in SKIPS
        if not (with_certificate and s.get("without_certificate", False))
        and (with_test_listeners or not s.get("with_test_listeners", False))
    }


@pytest.fixture(scope="module")
def report(aws_rendering) -> dict:
    return run_checkov(aws_rendering.directory / "terraform-plan.json", "terraform_plan")


@pytest.fixture(scope="module")
def report_with_certificate(aws_planned) -> dict:
    """With a certificate and per-colour test listeners."""
    return run_checkov(aws_planned.directory / "terraform-plan.json", "terraform_plan")


@pytest.fixture(scope="module")
def report_with_test_listeners(aws_test_listeners) -> dict:
    """The shipped stack file plus test_cidrs: plain-HTTP per-colour test listeners."""
    return run_checkov(aws_test_listeners.directory / "terraform-plan.json", "terraform_plan")


def findings(report: dict) -> set[tuple[str, str]]:
    return {(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]}


def test_every_skip_states_its_reason() -> None:
    assert SKIPS, "checkov_skips.yaml is empty"
    for skip in SKIPS:
        assert set(skip) <= {"check", "resource", "reason", "without_certificate", "with_test_listeners"}, skip
        assert len(skip.get("reason", "")) >= 20, f"{skip['check']} on {skip['resource']} needs a stated reason"


def test_checkov_finds_nothing_but_accepted_findings(report) -> None:
    unexpected = findings(report) - accepted(with_certificate=False)
    assert not unexpected, f"checkov findings without an accepted reason: {sorted(unexpected)}"


def test_every_accepted_finding_still_occurs(report) -> None:
    stale = accepted(with_certificate=False) - findings(report)
    assert not stale, f"remove these entries from checkov_skips.yaml, checkov no longer reports them: {sorted(stale)}"


def test_with_a_certificate_no_tls_finding_remains(report_with_certificate) -> None:
    unexpected = findings(report_with_certificate) - accepted(with_certificate=True, with_test_listeners=True)
    assert not unexpected, f"checkov findings with HTTPS configured: {sorted(unexpected)}"


def test_test_listeners_add_nothing_but_accepted_findings(report_with_test_listeners) -> None:
    expected = accepted(with_certificate=False, with_test_listeners=True)
    unexpected = findings(report_with_test_listeners) - expected
    assert not unexpected, f"checkov findings on the test listeners without an accepted reason: {sorted(unexpected)}"
    stale = expected - findings(report_with_test_listeners)
    assert not stale, f"remove these entries from checkov_skips.yaml, checkov no longer reports them: {sorted(stale)}"


@pytest.mark.parametrize("fixture", ["report", "report_with_certificate", "report_with_test_listeners"])
def test_checkov_evaluated_every_important_resource_type(request, fixture) -> None:
    result = request.getfixturevalue(fixture)
    checks = result["results"]["passed_checks"] + result["results"]["failed_checks"]
    scanned = {c["resource"].split(".")[0] for c in checks}
    assert result["summary"]["passed"] > MIN_PASSED, result["summary"]
    assert result["summary"]["parsing_errors"] == 0
    assert scanned >= SCANNED_TYPES, f"checkov ran no check on {sorted(SCANNED_TYPES - scanned)}"


def test_graph_checks_see_the_connections_between_resources(report) -> None:
    """These pass only when the plan's references connect resources: flow log → VPC, default security group →
    VPC, security group → load balancer/launch template, public access block and lifecycle → bucket."""
    passed = {(c["check_id"], c["resource"].split(".")[0]) for c in report["results"]["passed_checks"]}
    connected = [
        ("CKV2_AWS_11", "aws_vpc"),
        ("CKV2_AWS_12", "aws_vpc"),
        ("CKV2_AWS_5", "aws_security_group"),
        ("CKV2_AWS_6", "aws_s3_bucket"),
        ("CKV2_AWS_61", "aws_s3_bucket"),
    ]
    for check in connected:
        assert check in passed, f"{check} did not pass: the plan's references are not understood"


def scripts(rendering) -> list[Path]:
    found = sorted((rendering.directory / "scripts").glob("*.sh"))
    assert {p.name for p in found} >= {"image-build.create.sh", "user-data.blue-lt.sh", "user-data.green-lt.sh"}
    return found


def test_user_data_and_build_scripts_pass_shellcheck(aws_rendering) -> None:
    done = subprocess.run(
        [tool("shellcheck"), "--shell=bash", *map(str, scripts(aws_rendering))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_would_catch_a_bad_script(tmp_path) -> None:
    """The check above is not vacuous: shellcheck rejects an unquoted expansion."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\nfile=$1\nrm $file\n")
    done = subprocess.run([tool("shellcheck"), str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "SC2086" in done.stdout
