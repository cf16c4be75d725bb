"""stacks/kind/cluster.py and image.py: kind create/delete through pulumi_command, one provider for every object,
and the bento image built, tagged by its version and loaded into the node."""

from __future__ import annotations

import pytest
import yaml

from stacks import images, outputs
from stacks.kind.cluster import CREATE, DockerNeed, docker_need, kind_config
from tests.stacks.rendering import Rendering

COMMAND = "command:local:Command"
PROVIDER = "pulumi:providers:kubernetes"


def test_cluster_is_created_and_deleted_by_kind(kind_rendering) -> None:
    cluster = kind_rendering.one(COMMAND, "kind-cluster")
    assert "kind create cluster" in cluster["inputs"]["create"] and "--config -" in cluster["inputs"]["create"]
    assert "kind delete cluster" in cluster["inputs"]["delete"]
    assert cluster["additional_secret_outputs"] == ["stdout"], "the kubeconfig it prints is a credential"


def test_kind_config_maps_the_live_and_per_colour_node_ports_to_host_ports(kind_rendering, kind_settings) -> None:
    config = yaml.safe_load(kind_rendering.inputs(COMMAND, "kind-cluster")["environment"]["KIND_CONFIG"])
    assert config == kind_config(kind_settings.kind)
    (node,) = config["nodes"]
    cfg = kind_settings.kind
    expected = [(cfg.node_port, cfg.host_port), (cfg.pool_node_ports.blue, cfg.pool_host_ports.blue),
                (cfg.pool_node_ports.green, cfg.pool_host_ports.green)]  # fmt: skip
    assert node["extraPortMappings"] == [
        {"containerPort": node_port, "hostPort": host_port, "listenAddress": "127.0.0.1", "protocol": "TCP"}
        for node_port, host_port in expected
    ]
    assert "@sha256:" in node["image"], "the node image (the Kubernetes version) is pinned by digest"


def test_the_cluster_is_recreated_when_a_port_mapping_changes(kind_rendering, kind_settings) -> None:
    """kind cannot add a port mapping to a running cluster: every mapped port is a replacement trigger."""
    triggers = kind_rendering.inputs(COMMAND, "kind-cluster")["triggers"]
    cfg = kind_settings.kind
    for port in (cfg.node_port, cfg.host_port, *cfg.pool_node_ports.ports(), *cfg.pool_host_ports.ports()):
        assert port in triggers, f"port {port} missing from the cluster's triggers {triggers}"


def test_the_provider_uses_the_kubeconfig_kind_printed(kind_rendering) -> None:
    provider = kind_rendering.one(PROVIDER, "kind-k8s")
    assert provider["inputs"]["kubeconfig"] == kind_rendering.one(COMMAND, "kind-cluster")["outputs"]["stdout"]
    assert kind_rendering.outputs[outputs.KUBE_CONTEXT] == "kind-modelops"


@pytest.mark.parametrize("rendering", ["kind_rendering", "kind_planned"])
def test_every_kubernetes_object_goes_through_the_stack_provider(request, rendering) -> None:
    stack: Rendering = request.getfixturevalue(rendering)
    provider = stack.one(PROVIDER, "kind-k8s")
    objects = [r for r in stack.resources if r["type"].startswith("kubernetes:") and r["custom"]]
    assert len(objects) > 10
    for obj in objects:
        assert obj["provider"] == f"{provider['urn']}::{provider['id']}", f"{obj['name']} uses {obj['provider']}"


def test_an_existing_cluster_is_used_through_kubeconfig_and_context(kind_planned) -> None:
    assert not kind_planned.of_type(COMMAND) or all(c["name"] != "kind-cluster" for c in kind_planned.of_type(COMMAND))
    provider = kind_planned.inputs(PROVIDER, "kind-k8s")
    assert provider["context"] == "kind-existing" and provider["kubeconfig"].endswith("/.kube/config")
    assert "~" not in provider["kubeconfig"]
    assert kind_planned.outputs[outputs.KUBE_CONTEXT] == "kind-existing"


def test_image_is_containerized_and_loaded_into_kind(kind_rendering, kind_settings) -> None:
    build = kind_rendering.inputs(COMMAND, "kind-image-build")
    assert build["create"] == images.script("kind")
    assert "containerize" in build["create"] and "kind load docker-image" in build["create"]
    assert build["environment"] == {"BENTO": kind_settings.bento, "CLUSTER": kind_settings.kind.cluster_name}


def test_image_load_waits_for_the_cluster(kind_rendering) -> None:
    cluster = kind_rendering.one(COMMAND, "kind-cluster")["urn"]
    assert cluster in kind_rendering.one(COMMAND, "kind-image-build")["dependencies"]


def test_image_is_tagged_by_the_bento_version(kind_rendering) -> None:
    image, bento = kind_rendering.outputs[outputs.IMAGE], kind_rendering.outputs[outputs.BENTO]
    name, _, version = image.partition(":")
    assert image == bento and name and version and version != "latest"


def test_the_docker_vm_must_hold_both_colours_a_gate_s_candidate_and_the_control_plane(kind_settings) -> None:
    # live: 2 pods x 0.5 CPU; candidate colour: 2 pods at the vertical suite's 2 workers x 0.5 CPU; control plane 1.
    assert docker_need(kind_settings) == DockerNeed(millicpu=4000, memory_mb=4 * 1024 + 2048)
    bigger = kind_settings.with_overrides(gate={"horizontal_replicas": [1, 4]})
    assert docker_need(bigger).millicpu == 1000 + 4 * 1000 + 1000


def test_cluster_creation_stops_first_when_the_docker_engine_is_too_small(kind_rendering, kind_settings) -> None:
    create = kind_rendering.inputs(COMMAND, "kind-cluster")
    need = docker_need(kind_settings)
    assert (create["environment"]["NEED_MILLICPU"], create["environment"]["NEED_MEMORY_MB"]) == (
        str(need.millicpu),
        str(need.memory_mb),
    )
    script = create["create"]
    assert script.index("docker info") < script.index("kind create cluster") and "exit 1" in script


def test_the_engine_size_check_fails_with_the_numbers_on_a_small_engine(tmp_path) -> None:
    """Run the check itself against a stand-in `docker` that reports 2 CPUs and 4 GiB."""
    import os
    import subprocess

    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 2 4294967296\n")
    fake.chmod(0o755)
    check = CREATE.split("if ! kind get clusters", 1)[0]
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "NEED_MILLICPU": "4000", "NEED_MEMORY_MB": "6144"}
    done = subprocess.run(["/bin/bash", "-c", check], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "has 2 CPUs and 4096 MiB; the kind stack needs 4.0 CPUs and 6144 MiB" in " ".join(done.stderr.split())
    env["NEED_MILLICPU"], env["NEED_MEMORY_MB"] = "2000", "4096"
    assert subprocess.run(["/bin/bash", "-c", check], env=env, timeout=30).returncode == 0
