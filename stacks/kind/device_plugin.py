# mypy: disable-error-code="call-overload"
# The upstream device-plugin manifest is transcribed here with the Kubernetes API's own camelCase keys, which
# pulumi-kubernetes passes through unchanged; its typed dicts only know the snake_case spelling, so mypy cannot
# match these literals to an overload.
"""NVIDIA's Kubernetes device plugin (upstream static manifest deployments/static/nvidia-device-plugin.yml, v0.17.1),
optional: it advertises each node's GPUs as the `nvidia.com/gpu` resource the model pods request. The node itself
needs the NVIDIA driver and container toolkit (for kind: a GPU-enabled kind setup such as NVIDIA's nvkind)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

VERSION = "v0.17.1"
# By tag: its digest cannot be resolved from a machine without registry access. Pin it where you can:
# `docker buildx imagetools inspect nvcr.io/nvidia/k8s-device-plugin:v0.17.1` prints the digest to append.
IMAGE = f"nvcr.io/nvidia/k8s-device-plugin:{VERSION}"
NAMESPACE = "kube-system"
NAME = "nvidia-device-plugin"
SELECTOR = {"name": "nvidia-device-plugin-ds"}
LABELS = {**SELECTOR, "app.kubernetes.io/name": NAME, "app.kubernetes.io/version": VERSION}
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}  # GPU nodes are often tainted
SOCKETS = "/var/lib/kubelet/device-plugins"  # where the kubelet looks for device plugins' sockets


class NvidiaDevicePlugin(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:NvidiaDevicePlugin", name, None, opts)
        skips = {
            "checkov.io/skip1": "CKV_K8S_43=the image is pinned by tag only: its digest cannot be resolved offline; "
            "pin it with the digest `docker buildx imagetools inspect` prints",
            "checkov.io/skip2": "CKV_K8S_23=the plugin registers a unix socket in the kubelet's root-owned "
            "device-plugins directory, so it runs as root (as upstream's manifest does)",
            "checkov.io/skip3": "CKV_K8S_40=runs as root, see CKV_K8S_23",
            "checkov.io/skip4": "CKV_K8S_8=upstream ships no health endpoint; the kubelet notices a plugin whose "
            "socket disappears and stops advertising its GPUs",
            "checkov.io/skip5": "CKV_K8S_9=no readiness endpoint either: nothing routes traffic to this pod",
            "checkov.io/skip6": "CKV_K8S_22=upstream runs it with a writable root filesystem; unverified without "
            "a GPU node whether it writes outside the device-plugins mount",
        }
        self.daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata={"name": NAME, "namespace": NAMESPACE, "labels": LABELS, "annotations": skips},
            spec={
                "selector": {"matchLabels": SELECTOR},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "tolerations": [GPU_TOLERATION],
                        # A critical add-on: without it the GPUs of a node are not schedulable.
                        "priorityClassName": "system-node-critical",
                        "automountServiceAccountToken": False,
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            {
                                "name": "nvidia-device-plugin-ctr",
                                "image": IMAGE,
                                "imagePullPolicy": "Always",
                                "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"cpu": "100m", "memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "volumeMounts": [{"name": "device-plugins", "mountPath": SOCKETS}],
                            }
                        ],
                        "volumes": [{"name": "device-plugins", "hostPath": {"path": SOCKETS, "type": "Directory"}}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        # It talks to the kubelet over a unix socket only: no network in or out.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
            spec={"podSelector": {"matchLabels": SELECTOR}, "policyTypes": ["Ingress", "Egress"]},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.daemon_set.metadata.name})
