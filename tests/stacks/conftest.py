"""Each stack is rendered once per session by the real `modelops render` (Pulumi mocks in a fresh process, so the
kind and aws programs never share Pulumi's process-global mock state), then many tests read the files.

- ``kind_rendering`` / ``aws_rendering``: the shipped stack files as they are, exactly what a user renders with
  `modelops render --stack kind --out DIR` (the autoscaling targets then depend on whether a gate run left
  reports/latest/summary.json, so tests of those values use the fixtures below).
- ``kind_planned`` / ``aws_planned``: the shipped files with a gate summary that holds a capacity plan, plus the
  other branches of the programs: aws with an ACM certificate (HTTPS listener + redirect), three AZs, a NAT per
  AZ and per-colour test listeners (HTTPS); kind on an existing cluster (kubeconfig/context instead of
  `kind create cluster`).
- ``aws_test_listeners``: the shipped aws file with ``test_cidrs`` set and no certificate: plain-HTTP per-colour
  test listeners (the shipped file has none).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.capacity import ASG_TARGET_REQUESTS, CAPACITY_PLAN, HPA_TARGET_CPU
from stacks.config import StackConfig, load_stack_config
from tests.stacks.rendering import Rendering, copy_stack, render_with_cli

CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0b3c6e4a-1111-2222-3333-444455556666"
PLAN = {ASG_TARGET_REQUESTS: 1234.0, HPA_TARGET_CPU: 55}


@pytest.fixture(scope="session")
def plan_summary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reports") / "summary.json"
    path.write_text(json.dumps({"verdict": "promote", CAPACITY_PLAN: PLAN}))
    return path


def _render(tmp_path_factory: pytest.TempPathFactory, stack: str, **overrides: dict) -> Rendering:
    base = tmp_path_factory.mktemp(f"{stack}-render")
    stacks_dir = copy_stack(stack, base / "stacks", **overrides)
    return render_with_cli(stack, base / "out", stacks_dir=stacks_dir)


@pytest.fixture(scope="session")
def kind_rendering(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    return render_with_cli("kind", tmp_path_factory.mktemp("kind-render") / "out")


@pytest.fixture(scope="session")
def aws_rendering(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    return render_with_cli("aws", tmp_path_factory.mktemp("aws-render") / "out")


EXISTING_CLUSTER = {"create_cluster": False, "kubeconfig": "~/.kube/config", "context": "kind-existing"}
TEST_CIDRS = ["203.0.113.7/32", "198.51.100.0/24"]  # documentation ranges (RFC 5737): the gate's addresses
AWS_VARIANT = {"certificate_arn": CERTIFICATE_ARN, "az_count": 3, "nat_per_az": True, "test_cidrs": TEST_CIDRS}


@pytest.fixture(scope="session")
def kind_planned(tmp_path_factory: pytest.TempPathFactory, plan_summary: Path) -> Rendering:
    return _render(tmp_path_factory, "kind", kind={"capacity_summary": str(plan_summary), **EXISTING_CLUSTER})


@pytest.fixture(scope="session")
def aws_planned(tmp_path_factory: pytest.TempPathFactory, plan_summary: Path) -> Rendering:
    return _render(tmp_path_factory, "aws", aws={"capacity_summary": str(plan_summary), **AWS_VARIANT})


@pytest.fixture(scope="session")
def aws_test_listeners(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    return _render(tmp_path_factory, "aws", aws={"test_cidrs": TEST_CIDRS})


@pytest.fixture(scope="session")
def kind_settings() -> StackConfig:
    return load_stack_config("kind")


@pytest.fixture(scope="session")
def aws_settings() -> StackConfig:
    return load_stack_config("aws")
