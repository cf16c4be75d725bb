"""The cluster: a kind cluster made with `kind create cluster` (pulumi_command), or an existing one, and the
Kubernetes provider every object of the stack is created through."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from stacks.config import KindSettings

# Create unless it exists (a re-run after a failed `up` adopts the cluster), then print its kubeconfig: the
# provider reads it from this command's stdout. stderr carries kind's progress output.
CREATE = """set -euo pipefail
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


@dataclass(frozen=True)
class ClusterArgs:
    settings: KindSettings


class Cluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:Cluster", name, None, opts)
        s = args.settings
        self.create: command.local.Command | None = None
        if s.create_cluster:
            self.create = command.local.Command(
                f"{name}-cluster",
                create=CREATE,
                delete=DELETE,
                interpreter=["/bin/bash", "-c"],
                environment={"CLUSTER": s.cluster_name, "KIND_CONFIG": yaml.safe_dump(kind_config(s))},
                # The cluster is replaced (deleted, then created) when its shape changes: kind cannot add port
                # mappings to a running cluster.
                triggers=[s.cluster_name, s.node_image, *[port for pair in port_mappings(s) for port in pair]],
                opts=pulumi.ResourceOptions(
                    parent=self, additional_secret_outputs=["stdout"], delete_before_replace=True
                ),
            )
            kubeconfig: pulumi.Input[str] = self.create.stdout
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
