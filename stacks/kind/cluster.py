"""The cluster: a kind cluster made with `kind create cluster` (pulumi_command), or an existing one, and the
Kubernetes provider every object of the stack is created through."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from stacks.config import KindSettings, StackConfig

# Create unless it exists (a re-run after a failed `up` adopts the cluster), then print its kubeconfig: the
# provider reads it from this command's stdout. stderr carries kind's progress output.
CREATE = """set -euo pipefail
# Every pod runs inside the Docker engine's VM: fail now, with the numbers, rather than leave pods Pending.
read -r cpus memory < <(docker info --format '{{.NCPU}} {{.MemTotal}}')
if (( cpus * 1000 < NEED_MILLICPU || memory / 1048576 < NEED_MEMORY_MB )); then
  {
    echo "the Docker engine has ${cpus} CPUs and $((memory / 1048576)) MiB; the kind stack needs"
    echo "$((NEED_MILLICPU / 1000)).$((NEED_MILLICPU % 1000 / 100)) CPUs and ${NEED_MEMORY_MB} MiB (both colours,"
    echo "a gate's candidate, the control plane): give the Docker VM more, or lower deploy.cpu_per_replica,"
    echo "deploy.memory_mb or deploy.min_replicas in stacks/Pulumi.<stack>.yaml"
  } >&2
  exit 1
fi
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  printf '%s\\n' "$KIND_CONFIG" | kind create cluster --name "$CLUSTER" --config - --wait 120s >&2
fi
kind get kubeconfig --name "$CLUSTER"
"""
DELETE = """set -euo pipefail
kind delete cluster --name "$CLUSTER" >&2
"""


def port_mappings(settings: KindSettings) -> list[tuple[int, int]]:
    """(NodePort, host port) pairs kind publishes: the live Service, then each colour's own Service."""
    pools = [(getattr(settings.pool_node_ports, c), getattr(settings.pool_host_ports, c)) for c in ("blue", "green")]
    return [(settings.node_port, settings.host_port), *pools]


def kind_config(settings: KindSettings) -> dict:
    """The kind cluster config: one node, the live Service's NodePort published on 127.0.0.1:host_port and each
    colour's own NodePort on 127.0.0.1:pool_host_ports[colour] (the gate loads a candidate pool there)."""
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": settings.cluster_name,
        "nodes": [
            {
                "role": "control-plane",
                "image": settings.node_image,
                # kind has no cloud load balancer: a NodePort mapped to the host is how traffic gets in.
                "extraPortMappings": [
                    {"containerPort": node_port, "hostPort": host_port, "listenAddress": "127.0.0.1", "protocol": "TCP"}
                    for node_port, host_port in port_mappings(settings)
                ],
            }
        ],
    }


CONTROL_PLANE_MILLICPU = 1000  # kind's control plane, kube-proxy, CoreDNS and metrics-server, roughly
CONTROL_PLANE_MEMORY_MB = 2048


@dataclass(frozen=True)
class DockerNeed:
    millicpu: int
    memory_mb: int


def docker_need(settings: StackConfig) -> DockerNeed:
    """What the Docker VM must hold: the live colour at its HPA floor, the other colour holding a gate's candidate
    (at its floor or the gate's largest horizontal step, at the vertical suite's largest CPU), and the control
    plane."""
    deploy, gate = settings.deploy, settings.gate
    candidate_pods = max(deploy.min_replicas, *gate.horizontal_replicas)
    candidate_cpu = deploy.cpu_per_replica * max(gate.vertical_workers) / min(gate.vertical_workers)
    millicpu = round(1000 * (deploy.min_replicas * deploy.cpu_per_replica + candidate_pods * candidate_cpu))
    memory = (deploy.min_replicas + candidate_pods) * deploy.memory_mb
    return DockerNeed(millicpu + CONTROL_PLANE_MILLICPU, memory + CONTROL_PLANE_MEMORY_MB)


@dataclass(frozen=True)
class ClusterArgs:
    settings: KindSettings
    need: DockerNeed


class Cluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:Cluster", name, None, opts)
        s = args.settings
        self.create: command.local.Command | None = None
        kubeconfig: pulumi.Input[str] | None  # None: the provider's default (KUBECONFIG, ~/.kube/config)
        if s.create_cluster:
            self.create = command.local.Command(
                f"{name}-cluster",
                create=CREATE,
                delete=DELETE,
                interpreter=["/bin/bash", "-c"],
                environment={
                    "CLUSTER": s.cluster_name,
                    "KIND_CONFIG": yaml.safe_dump(kind_config(s)),
                    "NEED_MILLICPU": str(args.need.millicpu),
                    "NEED_MEMORY_MB": str(args.need.memory_mb),
                },
                # The cluster is replaced (deleted, then created) when its shape changes: kind cannot add port
                # mappings to a running cluster.
                triggers=[s.cluster_name, s.node_image, *[port for pair in port_mappings(s) for port in pair]],
                opts=pulumi.ResourceOptions(
                    parent=self, additional_secret_outputs=["stdout"], delete_before_replace=True
                ),
            )
            kubeconfig = self.create.stdout
            self.context = f"kind-{s.cluster_name}"
        else:
            kubeconfig = os.path.expanduser(s.kubeconfig) if s.kubeconfig else None
            self.context = s.context or f"kind-{s.cluster_name}"
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            context=None if s.create_cluster else self.context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"context": self.context})
