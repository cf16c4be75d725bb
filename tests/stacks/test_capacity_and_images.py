"""stacks/capacity.py (the gate's capacity plan) and stacks/images.py (the image build's contract)."""

from __future__ import annotations

import json

import pytest

from stacks import images
from stacks.capacity import ASG_TARGET_REQUESTS, CAPACITY_PLAN, CapacityPlanError, capacity_plan_value


def summary(tmp_path, document) -> str:
    path = tmp_path / "summary.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


@pytest.mark.parametrize(
    "document",
    [{"verdict": "reject"}, {CAPACITY_PLAN: None}, {CAPACITY_PLAN: {}}, {CAPACITY_PLAN: {ASG_TARGET_REQUESTS: None}}],
    ids=["no-plan", "null-plan", "empty-plan", "null-field"],
)
def test_a_summary_without_a_plan_means_use_the_setting(tmp_path, document) -> None:
    assert capacity_plan_value(summary(tmp_path, document), ASG_TARGET_REQUESTS) is None


def test_no_gate_run_means_use_the_setting(tmp_path) -> None:
    assert capacity_plan_value(tmp_path / "reports" / "latest" / "summary.json", ASG_TARGET_REQUESTS) is None


def test_the_planned_value_is_read(tmp_path) -> None:
    path = summary(tmp_path, {CAPACITY_PLAN: {ASG_TARGET_REQUESTS: 900}})
    assert capacity_plan_value(path, ASG_TARGET_REQUESTS) == 900.0


def test_relative_paths_start_at_the_project_root(tmp_path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "s.json").write_text(json.dumps({CAPACITY_PLAN: {ASG_TARGET_REQUESTS: 7}}))
    assert capacity_plan_value("reports/s.json", ASG_TARGET_REQUESTS, root=tmp_path) == 7.0


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("{not json", ["is not JSON", "rerun the gate"]),
        ({CAPACITY_PLAN: [1]}, ["capacity_plan must be an object"]),
        ({CAPACITY_PLAN: {ASG_TARGET_REQUESTS: -5}}, [f"capacity_plan.{ASG_TARGET_REQUESTS}", "positive number"]),
        ({CAPACITY_PLAN: {ASG_TARGET_REQUESTS: "many"}}, ["positive number", "'many'"]),
        ({CAPACITY_PLAN: {ASG_TARGET_REQUESTS: True}}, ["positive number"]),
    ],
    ids=["not-json", "plan-not-object", "negative", "string", "bool"],
)
def test_an_unusable_plan_is_an_error_naming_file_and_field(tmp_path, document, words) -> None:
    path = summary(tmp_path, document)
    with pytest.raises(CapacityPlanError) as caught:
        capacity_plan_value(path, ASG_TARGET_REQUESTS)
    for word in [path, *words]:
        assert word in str(caught.value)


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
