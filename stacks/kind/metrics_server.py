# mypy: disable-error-code="call-overload"
# The upstream metrics-server manifest is transcribed here with the Kubernetes API's own camelCase keys, which
# pulumi-kubernetes passes through unchanged (the rendered objects pass kubernetes-validate strict); its typed dicts
# only know the snake_case spelling, so mypy cannot match these literals to an overload.
"""metrics-server, which the HPAs read CPU use from, as plain Kubernetes objects (upstream v0.8.0 manifest, with
kind's --kubelet-insecure-tls and a tighter security context). Plain objects rather than a Helm release, so every
object is visible to the offline schema and policy checks."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

VERSION = "v0.8.0"
IMAGE = (
    "registry.k8s.io/metrics-server/metrics-server:v0.8.0"
    "@sha256:89258156d0e9af60403eafd44da9676fd66f600c7934d468ccc17e42b199aee2"
)
NAMESPACE = "kube-system"  # where the aggregated API conventionally lives
NAME = "metrics-server"
PORT = 10250
LABELS = {"k8s-app": NAME, "app.kubernetes.io/name": NAME, "app.kubernetes.io/version": VERSION}
SELECTOR = {"k8s-app": NAME}
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class MetricsServerArgs:
    # kind's kubelets serve self-signed certificates: without this flag metrics-server cannot scrape them.
    kubelet_insecure_tls: bool = True


class MetricsServer(pulumi.ComponentResource):
    def __init__(self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:MetricsServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = {"name": NAME, "namespace": NAMESPACE, "labels": LABELS}
        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta, opts=child)
        subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]

        reader = k8s.rbac.v1.ClusterRole(
            f"{name}-aggregated-reader",
            metadata={
                "name": "system:aggregated-metrics-reader",
                "labels": {
                    **LABELS,
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                    "rbac.authorization.k8s.io/aggregate-to-view": "true",
                },
            },
            rules=[
                {"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}
            ],
            opts=child,
        )
        scraper = k8s.rbac.v1.ClusterRole(
            f"{name}-role",
            metadata={"name": "system:metrics-server", "labels": LABELS},
            rules=[
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-auth-reader",
            metadata={"name": "metrics-server-auth-reader", "namespace": NAMESPACE, "labels": LABELS},
            role_ref={"apiGroup": RBAC_GROUP, "kind": "Role", "name": "extension-apiserver-authentication-reader"},
            subjects=subject,
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-auth-delegator",
            metadata={"name": "metrics-server:system:auth-delegator", "labels": LABELS},
            role_ref={"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:auth-delegator"},
            subjects=subject,
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-binding",
            metadata={"name": "system:metrics-server", "labels": LABELS},
            role_ref={"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": scraper.metadata.name},
            subjects=subject,
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata=meta,
            spec={
                "selector": SELECTOR,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}],
            },
            opts=child,
        )
        flags = [
            "--cert-dir=/tmp",
            f"--secure-port={PORT}",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ]
        if args.kubelet_insecure_tls:
            flags.append("--kubelet-insecure-tls")
        probe = {"scheme": "HTTPS", "port": "https"}
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deploy",
            metadata={
                **meta,
                "annotations": {
                    # metrics-server authenticates to the API server with its service account token.
                    "checkov.io/skip1": "CKV_K8S_38=metrics-server calls the Kubernetes API with its token",
                },
            },
            spec={
                "selector": {"matchLabels": SELECTOR},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {
                        "serviceAccountName": account.metadata.name,
                        "priorityClassName": "system-cluster-critical",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65534,
                            "runAsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": NAME,
                                "image": IMAGE,
                                "imagePullPolicy": "Always",
                                "args": flags,
                                "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/readyz", **probe},
                                    "initialDelaySeconds": 20,
                                    "periodSeconds": 10,
                                    "failureThreshold": 3,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/livez", **probe},
                                    "periodSeconds": 10,
                                    "failureThreshold": 3,
                                },
                                "resources": {
                                    "requests": {"cpu": "100m", "memory": "200Mi"},
                                    "limits": {"cpu": "500m", "memory": "400Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "volumeMounts": [{"name": "tmp-dir", "mountPath": "/tmp"}],
                            }
                        ],
                        "volumes": [{"name": "tmp-dir", "emptyDir": {"sizeLimit": "64Mi"}}],
                    },
                },
            },
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta,
            spec={
                "podSelector": {"matchLabels": SELECTOR},
                "policyTypes": ["Ingress", "Egress"],
                # The API server proxies the aggregated metrics API to this port; it is not a pod we can select.
                "ingress": [{"ports": [{"port": PORT, "protocol": "TCP"}]}],
                "egress": [
                    # Kubelets on the nodes, and the API server (its Service port and, after DNAT, 6443).
                    {"ports": [{"port": p, "protocol": "TCP"} for p in (PORT, 443, 6443)]},
                    {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                ],
            },
            opts=child,
        )
        self.api_service = k8s.apiregistration.v1.APIService(
            f"{name}-api",
            metadata={"name": "v1beta1.metrics.k8s.io", "labels": LABELS},
            spec={
                "service": {"name": service.metadata.name, "namespace": NAMESPACE, "port": 443},
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                # metrics-server serves a self-signed certificate (as upstream's manifest configures it).
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
        )
        self.register_outputs({"deployment": self.deployment.metadata.name, "reader": reader.metadata.name})
