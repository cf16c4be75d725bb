"""stacks/capacity.py (the capacity plan of the promoted version) and stacks/images.py (the image build's contract)."""

from __future__ import annotations

import json

import pytest

from stacks import images
from stacks.capacity import (
    CAPACITY_PLAN,
    CPU_SECONDS_PER_REQUEST,
    RPS_PER_VCPU_AT_SLO,
    CapacityPlanError,
    NoPlan,
    PromotedPlan,
    asg_target_requests_per_minute,
    hpa_cpu_utilization,
    promoted_plan,
)
from tests.stacks.plans import PLAN, PLANNED_ASG_TARGET_C7I_LARGE, PLANNED_HPA_TARGET, gate_summary, write_history


def plan_for(tmp_path, summary, stack="kind", target="kind", **history):
    write_history(tmp_path, stack, summary, **history)
    return promoted_plan(stack, target, work_dir=tmp_path)


def test_the_plan_of_the_promotion_of_the_live_version_is_used(tmp_path) -> None:
    plan = plan_for(tmp_path, gate_summary("kind", "kind"))
    assert isinstance(plan, PromotedPlan), plan
    assert (plan.bento, plan.rps_per_vcpu_at_slo, plan.cpu_seconds_per_request) == (
        "svc:v2",
        PLAN[RPS_PER_VCPU_AT_SLO],
        PLAN[CPU_SECONDS_PER_REQUEST],
    )


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"verdict": "reject", "promoted": False}, "verdict is 'reject'"),
        ({"verdict": "inconclusive", "promoted": False}, "verdict is 'inconclusive'"),
        ({"promoted": False}, "promoted is False"),
        ({"stack": "kind-staging"}, "stack is 'kind-staging', not 'kind'"),
        ({"target": "local"}, "target is 'local', not 'kind'"),
        ({CAPACITY_PLAN: None}, "has no capacity_plan"),
    ],
)
def test_a_summary_that_did_not_promote_on_this_stack_is_ignored_with_the_reason(tmp_path, changes, why) -> None:
    plan = plan_for(tmp_path, gate_summary("kind", "kind", **changes))
    assert isinstance(plan, NoPlan) and why in plan.reason, plan


@pytest.mark.parametrize(
    ("history", "why"),
    [
        ({"action": "rollback"}, "came from 'rollback', not from a gate promotion"),
        ({"action": "up"}, "came from 'up'"),
        # A promotion still pending (or aborted) is not live: the live version is the earlier `up`.
        ({"state": "pending"}, "came from 'up'"),
        ({"state": "aborted"}, "came from 'up'"),
    ],
)
def test_a_live_version_that_was_not_promoted_by_the_gate_keeps_the_defaults(tmp_path, history, why) -> None:
    plan = plan_for(tmp_path, gate_summary("kind", "kind"), **history)
    assert isinstance(plan, NoPlan) and why in plan.reason, plan


def test_a_rollback_after_a_promotion_drops_the_promotion_s_plan(tmp_path) -> None:
    rollback = {"id": 3, "time": 3.0, "action": "rollback", "bento": "svc:v1", "previous": "svc:v2",
                "summary": None, "state": "done", "note": ""}  # fmt: skip
    plan = plan_for(tmp_path, gate_summary("kind", "kind"), later=[rollback])
    assert isinstance(plan, NoPlan) and "'svc:v1'" in plan.reason and "rollback" in plan.reason


def test_without_a_history_the_stack_keeps_its_defaults(tmp_path) -> None:
    plan = promoted_plan("kind", "kind", work_dir=tmp_path)
    assert isinstance(plan, NoPlan) and "no promotion history" in plan.reason and str(tmp_path) in plan.reason


def test_a_promotion_whose_summary_was_deleted_keeps_the_defaults(tmp_path) -> None:
    write_history(tmp_path, "kind", gate_summary("kind", "kind"))
    (tmp_path / "kind" / "reports" / "summary.json").unlink()
    plan = promoted_plan("kind", "kind", work_dir=tmp_path)
    assert isinstance(plan, NoPlan) and "no longer exists" in plan.reason


def test_the_latest_report_of_another_run_is_never_read(tmp_path) -> None:
    # reports/latest points at a rejected run of this very stack; the live version was promoted by an earlier run.
    latest = tmp_path / "reports" / "latest"
    latest.mkdir(parents=True)
    (latest / "summary.json").write_text(json.dumps(gate_summary("kind", "kind", verdict="reject")))
    plan = plan_for(tmp_path, gate_summary("kind", "kind"))
    assert isinstance(plan, PromotedPlan) and plan.summary == tmp_path / "kind" / "reports" / "summary.json"


@pytest.mark.parametrize("value", [-5, 0, "many", True, float("inf")])
def test_a_figure_that_is_not_a_positive_number_is_an_error_naming_file_and_field(tmp_path, value) -> None:
    with pytest.raises(CapacityPlanError) as caught:
        plan_for(tmp_path, gate_summary("kind", "kind", **{CAPACITY_PLAN: {RPS_PER_VCPU_AT_SLO: value}}))
    assert f"capacity_plan.{RPS_PER_VCPU_AT_SLO}" in str(caught.value) and "summary.json" in str(caught.value)


def test_a_null_figure_means_not_measured(tmp_path) -> None:
    plan = plan_for(tmp_path, gate_summary("kind", "kind", **{CAPACITY_PLAN: {CPU_SECONDS_PER_REQUEST: None}}))
    assert isinstance(plan, PromotedPlan) and plan.cpu_seconds_per_request is None


def test_a_history_that_is_not_json_is_an_error_naming_it(tmp_path) -> None:
    path = write_history(tmp_path, "kind", None)
    path.write_text("{broken")
    with pytest.raises(CapacityPlanError, match=r"history\.json \(promotion history\) is not JSON"):
        promoted_plan("kind", "kind", work_dir=tmp_path)


def test_asg_target_is_per_vcpu_capacity_times_vcpus_at_70_percent_per_minute() -> None:
    assert asg_target_requests_per_minute(50.0, 2) == PLANNED_ASG_TARGET_C7I_LARGE
    assert asg_target_requests_per_minute(50.0, 8) == 4 * PLANNED_ASG_TARGET_C7I_LARGE


def test_hpa_target_is_the_cpu_a_pod_uses_at_70_percent_of_its_capacity() -> None:
    assert round(hpa_cpu_utilization(0.016, 50.0)) == PLANNED_HPA_TARGET
    # A model that needs more CPU per request than its measured rate allows (e.g. threads waiting) runs hotter.
    assert round(hpa_cpu_utilization(0.04, 50.0)) == 140


def test_build_output_is_read_from_the_last_json_line() -> None:
    stdout = 'Successfully built\n{"bento": "svc:v1", "service": "svc", "image": "r@sha256:ab"}\n'
    assert images.parse_build_output(stdout) == images.ImageBuild("svc:v1", "svc", "r@sha256:ab")


@pytest.mark.parametrize("stdout", ["", "built\n", '{"bento": "svc:v1"}'])
def test_build_output_without_the_json_line_is_an_error(stdout) -> None:
    with pytest.raises(ValueError, match="printed no JSON line with bento, service and image"):
        images.parse_build_output(stdout)


def test_bentoml_overrides_set_workers_and_timeout_of_the_service() -> None:
    value = json.loads(images.bentoml_overrides("wine", workers=3, timeout_s=10.0))
    assert value == {"services": {"wine": {"workers": 3, "traffic": {"timeout": 10}}}}
    assert json.loads(images.bentoml_overrides("wine", 1, 2.5))["services"]["wine"]["traffic"]["timeout"] == 2.5
