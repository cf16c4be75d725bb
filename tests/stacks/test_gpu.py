"""deploy.accelerator nvidia, carried through both stacks and proven offline: the kind Deployment's GPU limits,
toleration and node selector, NVIDIA's device plugin as an optional component (kubernetes-validate strict,
checkov); the aws fleet on a GPU family with the Deep Learning Base AMI and `docker run --gpus all` (shellcheck).
A GPU node itself is needed to see a replica use its GPU: stacks/RUNNING.md says how to check it there."""

from __future__ import annotations

import base64
import subprocess

import pytest

from modelops.render import render_stack
from stacks.aws import GPU_AMI_NAME, NVIDIA_FAMILIES
from stacks.aws.fleet import UserData, render_user_data
from stacks.config import ConfigError
from stacks.kind.device_plugin import GPU_RESOURCE, GPU_TOLERATION
from stacks.kind.device_plugin import IMAGE as DEVICE_PLUGIN_IMAGE
from stacks.kind.model_service import deployment_name
from stacks.names import COLOURS
from tests.stacks.aws.types import LT
from tests.stacks.conftest import GPU_NODE_SELECTOR
from tests.stacks.kind.test_policies import validate
from tests.stacks.rendering import copy_stack, run_checkov, tool

colours = pytest.mark.parametrize("colour", COLOURS)


def pod(rendering, colour: str) -> dict:
    return rendering.kubernetes("Deployment", deployment_name(colour), "modelops")["spec"]["template"]["spec"]


@colours
def test_gpu_pods_request_their_gpus_and_tolerate_gpu_nodes(kind_gpu, colour) -> None:
    spec = pod(kind_gpu, colour)
    resources = spec["containers"][0]["resources"]
    assert resources["limits"][GPU_RESOURCE] == resources["requests"][GPU_RESOURCE] == "1"
    assert spec["tolerations"] == [GPU_TOLERATION]
    assert spec["nodeSelector"] == GPU_NODE_SELECTOR


@colours
def test_cpu_pods_have_no_gpu_no_toleration_no_selector(kind_rendering, colour) -> None:
    spec = pod(kind_rendering, colour)
    assert GPU_RESOURCE not in spec["containers"][0]["resources"]["limits"]
    assert "tolerations" not in spec and "nodeSelector" not in spec


def test_the_device_plugin_is_optional_and_runs_on_gpu_nodes(kind_gpu, kind_rendering) -> None:
    plugin = kind_gpu.kubernetes("DaemonSet", "nvidia-device-plugin", "kube-system")
    spec = plugin["spec"]["template"]["spec"]
    assert spec["tolerations"] == [GPU_TOLERATION] and spec["priorityClassName"] == "system-node-critical"
    (container,) = spec["containers"]
    assert container["image"] == DEVICE_PLUGIN_IMAGE
    assert container["volumeMounts"] == [{"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"}]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    policy = kind_gpu.kubernetes("NetworkPolicy", "nvidia-device-plugin", "kube-system")["spec"]
    # The kubelet socket is its only channel: nothing in, nothing out.
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy and "egress" not in policy
    assert policy["podSelector"]["matchLabels"].items() <= plugin["spec"]["template"]["metadata"]["labels"].items()
    with pytest.raises(AssertionError, match="no DaemonSet"):
        kind_rendering.kubernetes("DaemonSet", "nvidia-device-plugin", "kube-system")


def test_the_gpu_rendering_passes_kubernetes_validate_strict(kind_gpu) -> None:
    manifests = sorted((kind_gpu.directory / "kubernetes").glob("*.yaml"))
    done = validate(manifests)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_gpu_rendering_has_no_checkov_failures_and_every_skip_says_why(kind_gpu) -> None:
    report = run_checkov(kind_gpu.directory / "kubernetes", "kubernetes")
    failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert failed == []
    scanned = {c["resource"] for c in report["results"]["passed_checks"]}
    assert "DaemonSet.kube-system.nvidia-device-plugin" in scanned
    skipped = {s["check_id"] for s in report["results"]["skipped_checks"] if "nvidia" in s["resource"]}
    assert skipped == {"CKV_K8S_43", "CKV_K8S_23", "CKV_K8S_40", "CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_22"}


def boot_script(rendering, colour: str) -> str:
    return base64.b64decode(rendering.inputs(LT, f"{colour}-lt")["userData"]).decode()


def test_a_gpu_fleet_uses_the_deep_learning_base_ami(aws_gpu) -> None:
    (lookup,) = [i for i in aws_gpu.record["invokes"] if i["token"] == "aws:ec2/getAmi:getAmi"]
    filters = {f["name"]: f["values"] for f in lookup["args"]["filters"]}
    assert filters["name"] == [GPU_AMI_NAME["x86_64"]] and lookup["args"]["owners"] == ["amazon"]
    for colour in COLOURS:
        assert aws_gpu.inputs(LT, f"{colour}-lt")["instanceType"] == "g5.xlarge"


@colours
def test_a_gpu_fleet_runs_the_container_with_every_gpu(aws_gpu, aws_rendering, colour) -> None:
    script = boot_script(aws_gpu, colour)
    assert "readonly GPUS=all\n" in script and "nvidia-ctk runtime configure --runtime=docker" in script
    assert '  "${gpu_args[@]}" \\' in script
    assert "readonly GPUS=''\n" in boot_script(aws_rendering, colour)  # the CPU stack: no --gpus


def test_the_gpu_boot_script_passes_shellcheck(aws_gpu) -> None:
    scripts = sorted((aws_gpu.directory / "scripts").glob("user-data.*.sh"))
    assert len(scripts) == 2
    done = subprocess.run([tool("shellcheck"), "--shell=bash", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("gpus", ["", "all"])
def test_the_boot_script_hands_docker_the_gpus_only_when_asked(tmp_path, gpus) -> None:
    """Run the boot script's GPU lines with stand-ins for nvidia-ctk and docker: what `docker run` receives."""
    values = UserData(region="us-east-1", image="r/i@sha256:ab", service="svc", port=3000, colour="blue",
                      log_group="g", stop_timeout_s=15, bentoml_overrides="{}", max_body_bytes=1024,
                      threads={}, keep_alive_s=65, gpus=gpus)  # fmt: skip
    script = render_user_data(values)
    settings = script[script.index("readonly REGION=") : script.index('retry "dnf install')]
    gpu_block = script[script.index("gpu_args=()") : script.index("systemctl enable")]
    for tool_name in ("nvidia-ctk",):
        stub = tmp_path / tool_name
        stub.write_text(f'#!/bin/sh\necho {tool_name} "$@" >> {tmp_path}/calls\n')
        stub.chmod(0o755)
    probe = f'set -euo pipefail\n{settings}{gpu_block}printf "%s\\n" docker run "${{gpu_args[@]}}" image\n'
    done = subprocess.run(["/bin/bash", "-c", probe], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    calls = (tmp_path / "calls").read_text() if (tmp_path / "calls").exists() else ""
    if gpus:
        assert words == ["docker", "run", "--gpus", "all", "image"]
        assert calls == "nvidia-ctk runtime configure --runtime=docker\n"
    else:
        assert words == ["docker", "run", "image"] and calls == ""


def test_an_accelerator_without_a_gpu_instance_family_is_refused_naming_both_keys(tmp_path) -> None:
    stacks = copy_stack("aws", tmp_path / "stacks", deploy={"accelerator": "nvidia"})
    with pytest.raises(ConfigError, match=r"(?s)deploy\.accelerator is nvidia.*aws\.instance_type 'c7i\.large'.*g5"):
        render_stack("aws", tmp_path / "out", stacks_dir=stacks)
    assert "g5" in NVIDIA_FAMILIES and "c7i" not in NVIDIA_FAMILIES
