"""Each stack is rendered once per session by the real `modelops render` (Pulumi mocks in a fresh process, so the
kind and aws programs never share Pulumi's process-global mock state), then many tests read the files.

- ``kind_rendering`` / ``aws_rendering``: the shipped stack files as they are, exactly what a user renders with
  `modelops render --stack kind --out DIR`, on a machine where nothing was promoted yet (an empty work dir).
- ``kind_planned`` / ``aws_planned``: the shipped files on a stack whose live version was promoted by a gate run
  that left a capacity plan (a promotion history in the work dir, tests/stacks/plans.py), plus the
  other branches of the programs: aws with an ACM certificate (HTTPS listener + redirect), three AZs, a NAT per
  AZ and per-colour test listeners (HTTPS); kind on an existing cluster (kubeconfig/context instead of
  `kind create cluster`) with the in-cluster load generator (kind.load_generator.enabled).
- both ``*_planned`` variants also turn the prediction cache on (``CACHE_ON``); the shipped files leave it off.
- ``aws_test_listeners``: the shipped aws file with ``test_cidrs`` set and no certificate: plain-HTTP per-colour
  test listeners (the shipped file has none).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.config import StackConfig, load_stack_config
from tests.stacks.plans import gate_summary, write_history
from tests.stacks.rendering import Rendering, copy_stack, render_with_cli

CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0b3c6e4a-1111-2222-3333-444455556666"


def _render(
    tmp_path_factory: pytest.TempPathFactory, stack: str, work_dir: Path | None = None, **overrides: dict
) -> Rendering:
    base = tmp_path_factory.mktemp(f"{stack}-render")
    stacks_dir = copy_stack(stack, base / "stacks", **overrides)
    return render_with_cli(stack, base / "out", stacks_dir=stacks_dir, work_dir=work_dir)


def promoted_work_dir(tmp_path_factory: pytest.TempPathFactory, stack: str, /, **summary_changes: object) -> Path:
    """A work dir whose promotion history says the live version of ``stack`` was promoted by a gate run."""
    work_dir = tmp_path_factory.mktemp(f"{stack}-work")
    write_history(work_dir, stack, gate_summary(stack, stack, **summary_changes))
    return work_dir


@pytest.fixture(scope="session")
def kind_rendering(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    return render_with_cli("kind", tmp_path_factory.mktemp("kind-render") / "out")


@pytest.fixture(scope="session")
def aws_rendering(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    return render_with_cli("aws", tmp_path_factory.mktemp("aws-render") / "out")


EXISTING_CLUSTER = {"create_cluster": False, "kubeconfig": "~/.kube/config", "context": "kind-existing"}
TEST_CIDRS = ["203.0.113.7/32", "198.51.100.0/24"]  # documentation ranges (RFC 5737): the gate's addresses
PINNED_AMI = "ami-0fedcba9876543210"
CACHE_ON = {"enabled": True, "max_entries": 2500, "ttl_s": 45.5}
AWS_VARIANT = {
    "ami_id": PINNED_AMI,
    "monthly_budget_usd": 250,
    "alarm_email": "oncall@example.com",
    "certificate_arn": CERTIFICATE_ARN,
    "az_count": 3,
    "nat_per_az": True,
    "test_cidrs": TEST_CIDRS,
}


@pytest.fixture(scope="session")
def kind_planned(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    kind = {**EXISTING_CLUSTER, "load_generator": {"enabled": True}}
    work_dir = promoted_work_dir(tmp_path_factory, "kind")
    return _render(tmp_path_factory, "kind", work_dir, kind=kind, cache=CACHE_ON)


@pytest.fixture(scope="session")
def aws_planned(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    return _render(tmp_path_factory, "aws", promoted_work_dir(tmp_path_factory, "aws"), aws=AWS_VARIANT, cache=CACHE_ON)


@pytest.fixture(scope="session")
def aws_rejected(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    """The live version's summary is a rejection (a history edited by hand, or a gate bug): never a plan."""
    work_dir = promoted_work_dir(tmp_path_factory, "aws", verdict="reject", promoted=False)
    return _render(tmp_path_factory, "aws", work_dir)


@pytest.fixture(scope="session")
def kind_other_stack(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    """The live version's summary comes from another stack's gate run."""
    return _render(tmp_path_factory, "kind", promoted_work_dir(tmp_path_factory, "kind", stack="kind-staging"))


@pytest.fixture(scope="session")
def aws_test_listeners(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    return _render(tmp_path_factory, "aws", aws={"test_cidrs": TEST_CIDRS})


@pytest.fixture(scope="session")
def kind_settings() -> StackConfig:
    return load_stack_config("kind")


@pytest.fixture(scope="session")
def aws_settings() -> StackConfig:
    return load_stack_config("aws")


GPU_DEPLOY = {"accelerator": "nvidia", "gpus_per_replica": 1}
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}


@pytest.fixture(scope="session")
def kind_gpu(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    """deploy.accelerator nvidia on kind, with NVIDIA's device plugin and a GPU node selector."""
    kind = {"install_nvidia_device_plugin": True, "gpu_node_selector": GPU_NODE_SELECTOR}
    return _render(tmp_path_factory, "kind", deploy=GPU_DEPLOY, kind=kind)


@pytest.fixture(scope="session")
def aws_gpu(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    """deploy.accelerator nvidia on aws: a g5 fleet."""
    return _render(tmp_path_factory, "aws", deploy=GPU_DEPLOY, aws={"instance_type": "g5.xlarge"})
