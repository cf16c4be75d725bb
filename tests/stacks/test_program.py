"""__main__.py and the shape of both programs: exports, parents, providers; the local target has no resources."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from modelops.render import RenderError, record_in_subprocess
from stacks import outputs
from stacks.config import PROJECT, STACKS_DIR, StackConfig

COMMON = {
    outputs.ENDPOINT_URL,
    outputs.POOL_URLS,
    outputs.LIVE_COLOUR,
    outputs.IMAGE,
    outputs.BENTO,
    outputs.SCALING_RANGE,
}
EXPORTS = {
    "aws": COMMON | {outputs.LOAD_BALANCER_ARN, outputs.LISTENER_ARN, outputs.TARGET_GROUP_ARNS, outputs.ASG_NAMES,
                     outputs.ALARM_NAMES, outputs.REPOSITORY_URL, outputs.ALARM_TOPIC_ARN,
                     outputs.WATCH_ALARM_NAMES, outputs.REFRESH_PREFERENCES},
    "kind": COMMON | {outputs.KUBE_CONTEXT, outputs.NAMESPACE, outputs.SERVICE_NAME, outputs.DEPLOYMENT_NAMES,
                      outputs.HPA_NAMES},
}  # fmt: skip
PER_COLOUR = {outputs.TARGET_GROUP_ARNS, outputs.ASG_NAMES, outputs.DEPLOYMENT_NAMES, outputs.HPA_NAMES}
stacks = pytest.mark.parametrize("stack", ["kind", "aws"])


def rendering_of(request, stack: str):
    return request.getfixturevalue(f"{stack}_rendering")


@stacks
def test_exports_are_the_shared_output_keys(request, stack) -> None:
    exported = rendering_of(request, stack).outputs
    assert set(exported) == EXPORTS[stack]
    for key in PER_COLOUR & set(exported):
        assert set(exported[key]) == {"blue", "green"}, key
    assert exported[outputs.LIVE_COLOUR] == "blue"
    assert set(exported[outputs.SCALING_RANGE]) == {"min", "max"}


@pytest.mark.parametrize(
    ("rendering", "colours"),
    [("kind_rendering", {"blue", "green"}), ("aws_rendering", set()), ("aws_test_listeners", {"blue", "green"})],
)
def test_pool_urls_give_each_colour_its_own_url_where_the_stack_has_one(request, rendering, colours) -> None:
    """aws has per-colour URLs only with test listeners (modelops:aws.test_cidrs); without, the gate needs --url."""
    exported = request.getfixturevalue(rendering).outputs
    pool_urls = exported[outputs.POOL_URLS]
    assert set(pool_urls) == colours
    assert len(set(pool_urls.values()) | {exported[outputs.ENDPOINT_URL]}) == len(colours) + 1, pool_urls


@stacks
def test_every_resource_belongs_to_a_component(request, stack) -> None:
    rendering = rendering_of(request, stack)
    root = f"urn:pulumi:{stack}::modelops::pulumi:pulumi:Stack::modelops-{stack}"
    components = {r["urn"] for r in rendering.resources if not r["custom"]}
    assert len(components) >= 4
    for resource in rendering.resources:
        if resource["custom"] and not resource["type"].startswith("pulumi:providers:"):
            assert resource["parent"] in components, f"{resource['type']} {resource['name']}: parent=self missing"
        if not resource["custom"]:
            assert resource["parent"] in components | {root}, f"component {resource['name']} has a stray parent"


def test_every_aws_resource_and_lookup_uses_the_provider_of_the_settings_region(aws_rendering, aws_settings):
    provider = aws_rendering.one("pulumi:providers:aws", "aws")
    assert provider["inputs"]["region"] == aws_settings.aws.region
    reference = f"{provider['urn']}::{provider['id']}"
    for resource in aws_rendering.resources:
        if resource["type"].startswith("aws:"):
            assert resource["provider"] == reference, f"{resource['name']} uses {resource['provider'] or 'default'}"
    assert {i["provider"] for i in aws_rendering.record["invokes"]} == {reference}


def test_the_local_target_has_no_pulumi_resources() -> None:
    """__main__.py itself refuses the local stack and says what to run instead."""
    with pytest.raises(RenderError, match=r"run `modelops up --stack local` instead"):
        record_in_subprocess("local", STACKS_DIR, sys.executable, timeout_s=120)


PROJECT_FILE = Path(__file__).resolve().parents[2] / "Pulumi.yaml"
PULUMI_YAML_TYPES = {"string", "integer", "boolean", "array"}  # all a project config schema can declare


def test_pulumi_project_runs_python_from_the_venv_with_stack_files_in_stacks() -> None:
    project = yaml.safe_load(PROJECT_FILE.read_text())
    assert project["name"] == PROJECT
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert project["stackConfigDir"] == "stacks"


def test_pulumi_project_config_is_typed_described_and_known_to_stack_config() -> None:
    declared = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    assert declared
    for key, schema in declared.items():
        assert schema["type"] in PULUMI_YAML_TYPES, f"{key}: {schema['type']}"
        assert len(schema.get("description", "")) > 20, f"{key} needs a description"
        assert key in StackConfig.model_fields, f"{key} is not a StackConfig setting"


def test_entry_point_is_thin() -> None:
    assert len(PROJECT_FILE.with_name("__main__.py").read_text().splitlines()) <= 40
