# mypy: disable-error-code="call-overload"
# These objects are written with the Kubernetes API's own camelCase keys (matchLabels, targetPort, nodePort, ...),
# which pulumi-kubernetes passes through unchanged; its typed dicts only know the snake_case spelling, so mypy cannot
# match these literals to an overload (as in metrics_server.py and device_plugin.py).
"""The model service on Kubernetes: a restricted namespace, blue and green Deployments with an HPA and a PDB each,
a NodePort Service that selects the live colour, one NodePort Service per colour (each pool alone, for the gate),
and a NetworkPolicy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.kind.device_plugin import GPU_RESOURCE, GPU_TOLERATION
from stacks.names import (
    APP,
    APP_LABELS,
    COLOUR_LABEL,
    COLOURS,
    CONTAINER_PORT,
    SERVICE_PORT,
    cpu_quantity,
    deployment_name,
)

BENTO_UID = 1034  # the `bentoml` user that `bentoml containerize` images create and run as
PRESTOP_S = 5  # keep serving while the endpoint removal reaches kube-proxy
EMPTYDIR_LIMIT = "512Mi"
# Fields of a Deployment that modelops owns after creation: which bento a colour runs (image, bento annotation), its
# workers and thread pools (env) and its CPU budget (resources). Pulumi sets them at creation only, so `pulumi up`
# never swaps the live bento behind the gate's back. The driver owns them through server-side apply (field manager
# "modelops"). The paths are the coarsest pulumi-kubernetes resolves under server-side apply: a path into a list
# element (containers[0].image) is not honoured there, the element as a whole is (pulumi/pulumi#15412). So the
# container as a whole is set at creation only: to change its probes or security context on an existing stack,
# replace the idle colour's Deployment (stacks/RUNNING.md, section 4).
DRIVER_OWNED = [
    "spec.template.metadata.annotations",
    "spec.template.spec.containers[0]",
]
# On objects whose declared fields Pulumi must win back after the driver changed them (the HPAs' range: a gate pins
# it, `pulumi up` with a new deploy.min/max_replicas must not fail on the driver's field ownership).
PATCH_FORCE = {"pulumi.com/patchForce": "true"}


def termination_grace_s(request_timeout_s: float) -> int:
    """preStop sleep, then BentoML's graceful shutdown finishes requests (each bounded by the request timeout)."""
    return PRESTOP_S + math.ceil(request_timeout_s) + 5


@dataclass(frozen=True)
class ModelServiceArgs:
    namespace: str
    image: pulumi.Input[str]
    bentoml_overrides: pulumi.Input[str]  # BENTOML_CONFIG_OVERRIDES: workers and request timeout
    max_body_bytes: int  # the service answers 413 above it (bento/service.py reads MODELOPS_MAX_BODY_BYTES)
    cpu: float  # cores, request = limit
    memory_mb: int  # request = limit
    request_timeout_s: float
    node_port: int
    pool_node_ports: dict[str, int]  # {"blue": NodePort, "green": NodePort} of the per-colour Services
    live_colour: str
    hpa_min_replicas: int  # deploy.min_replicas
    hpa_max_replicas: int  # deploy.max_replicas
    hpa_metric: dict[str, Any]  # one autoscaling/v2 MetricSpec, from modelops:autoscale (stacks/kind/__init__.py)
    scale_up_window_s: int  # autoscale.scale_up_window_s: behavior.scaleUp.stabilizationWindowSeconds
    scale_down_window_s: int  # autoscale.scale_down_window_s: behavior.scaleDown.stabilizationWindowSeconds
    thread_env: dict[str, str]  # OMP_NUM_THREADS & co. from the CPU budget per worker (stacks/threads.py)
    cache_env: dict[str, str]  # the prediction cache's settings (stacks/cache.py)
    serve_args: list[str]  # `bentoml serve` flags (keep-alive above any balancer's idle timeout)
    gpus: int = 0  # NVIDIA GPUs per pod (deploy.accelerator: nvidia), 0 for none
    gpu_node_selector: dict[str, str] | None = None


class ModelService(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:ModelService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": ns,
                # The restricted Pod Security Standard, enforced by the API server's admission: a pod spec that
                # loosens the security context below is rejected, not just reported.
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": APP, "namespace": ns, "labels": APP_LABELS},
            automount_service_account_token=False,
            opts=in_ns,
        )

        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        self.colour_services: dict[str, k8s.core.v1.Service] = {}
        self.hpas: dict[str, k8s.autoscaling.v2.HorizontalPodAutoscaler] = {}
        for colour in COLOURS:
            labels = {**APP_LABELS, COLOUR_LABEL: colour}
            meta = {
                "name": deployment_name(colour),
                "namespace": ns,
                "labels": labels,
                "annotations": {
                    "checkov.io/skip1": "CKV_K8S_15=the image is loaded into the node by kind load; the node has no "
                    "registry to pull it from, so IfNotPresent",
                    "checkov.io/skip2": "CKV_K8S_43=a locally built image has no registry digest; its tag is the "
                    "bento version, which is content-derived",
                    "checkov.io/skip3": f"CKV_K8S_40=runs as uid {BENTO_UID}, the bentoml user that owns the files "
                    "in images built by bentoml containerize",
                },
            }
            self.deployments[colour] = k8s.apps.v1.Deployment(
                f"{name}-{colour}",
                metadata=meta,
                # No `replicas`: the HPA owns the replica count, and `pulumi up` must not reset it.
                spec={
                    "selector": {"matchLabels": labels},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                    "minReadySeconds": 5,
                    "revisionHistoryLimit": 5,
                    "template": {"metadata": {"labels": labels}, "spec": self._pod_spec(args, account, labels)},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace], ignore_changes=DRIVER_OWNED),
            )
            # This colour alone, whichever is live: the gate loads a candidate here (kind maps the NodePort to a
            # host port) while the live Service keeps the traffic.
            self.colour_services[colour] = k8s.core.v1.Service(
                f"{name}-{colour}-svc",
                metadata={"name": deployment_name(colour), "namespace": ns, "labels": labels},
                spec={
                    "type": "NodePort",
                    "selector": labels,
                    "ports": [
                        {
                            "name": "http",
                            "port": SERVICE_PORT,
                            "targetPort": "http",
                            "nodePort": args.pool_node_ports[colour],
                            "protocol": "TCP",
                        }
                    ],
                },
                opts=in_ns,
            )
            self.hpas[colour] = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-{colour}-hpa",
                metadata={
                    "name": deployment_name(colour),
                    "namespace": ns,
                    "labels": labels,
                    "annotations": PATCH_FORCE,
                },
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(colour)},
                    "minReplicas": args.hpa_min_replicas,
                    "maxReplicas": args.hpa_max_replicas,
                    "metrics": [args.hpa_metric],
                    "behavior": {
                        "scaleUp": {"stabilizationWindowSeconds": args.scale_up_window_s},
                        "scaleDown": {"stabilizationWindowSeconds": args.scale_down_window_s},
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployments[colour]]),
            )
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-{colour}-pdb",
                metadata={"name": deployment_name(colour), "namespace": ns, "labels": labels},
                spec={"maxUnavailable": 1, "selector": {"matchLabels": labels}},
                opts=in_ns,
            )

        live_labels = {**APP_LABELS, COLOUR_LABEL: args.live_colour}
        self.service = k8s.core.v1.Service(
            f"{name}-live",
            metadata={"name": APP, "namespace": ns, "labels": APP_LABELS},
            spec={
                # kind has no load balancer: a NodePort that the kind config maps to a host port.
                "type": "NodePort",
                "selector": live_labels,
                "ports": [
                    {
                        "name": "http",
                        "port": SERVICE_PORT,
                        "targetPort": "http",
                        "nodePort": args.node_port,
                        "protocol": "TCP",
                    }
                ],
            },
            # Promotion (modelops, through the Kubernetes API) owns the selector once the Service exists:
            # `pulumi up` must not undo a promotion or a rollback. live_colour only decides it at creation.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace], ignore_changes=["spec.selector"]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"name": APP, "namespace": ns, "labels": APP_LABELS},
            spec={
                "podSelector": {"matchLabels": APP_LABELS},
                "policyTypes": ["Ingress", "Egress"],
                # In: the model port only (from the NodePort, the per-colour Services, the kubelet's probes).
                "ingress": [{"ports": [{"port": CONTAINER_PORT, "protocol": "TCP"}]}],
                # Out: DNS only. The model ships inside the image; the service calls nothing.
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                    }
                ],
            },
            opts=in_ns,
        )
        self.register_outputs(
            {
                "service": self.service.metadata.name,
                "deployments": {c: d.metadata.name for c, d in self.deployments.items()},
            }
        )

    @staticmethod
    def _pod_spec(args: ModelServiceArgs, account: k8s.core.v1.ServiceAccount, labels: dict) -> dict:
        resources = {"cpu": cpu_quantity(args.cpu), "memory": f"{args.memory_mb}Mi"}
        if args.gpus:
            # An extended resource: requested = limited, whole devices only.
            resources[GPU_RESOURCE] = str(args.gpus)
        placement: dict = {}
        if args.gpus:
            placement["tolerations"] = [GPU_TOLERATION]
            if args.gpu_node_selector:
                placement["nodeSelector"] = dict(args.gpu_node_selector)
        http = {"port": "http", "scheme": "HTTP"}
        return {
            "serviceAccountName": account.metadata.name,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": termination_grace_s(args.request_timeout_s),
            **placement,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": BENTO_UID,
                "runAsGroup": BENTO_UID,
                "fsGroup": BENTO_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # Spread replicas over nodes where there are several; kind's single node must still schedule them.
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": labels},
                }
            ],
            "containers": [
                {
                    "name": APP,
                    "image": args.image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": args.serve_args,
                    "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                    "env": [
                        # The root filesystem is read-only: BentoML's home (Prometheus multiprocess files) and
                        # Python's temp files go to the emptyDir at /tmp.
                        {"name": "BENTOML_HOME", "value": "/tmp/bentoml"},
                        {"name": "HOME", "value": "/tmp"},
                        {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
                        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                        {"name": "BENTOML_CONFIG_OVERRIDES", "value": args.bentoml_overrides},
                        {"name": "MODELOPS_MAX_BODY_BYTES", "value": str(args.max_body_bytes)},
                        *({"name": k, "value": v} for k, v in sorted(args.thread_env.items())),
                        *({"name": k, "value": v} for k, v in sorted(args.cache_env.items())),
                    ],
                    # Requests = limits: a replica gets exactly the CPU budget the gate measured it with.
                    "resources": {"requests": resources, "limits": resources},
                    # Model loading can take a while: the startup probe holds off liveness until /readyz passes.
                    "startupProbe": {
                        "httpGet": {"path": "/readyz", **http},
                        "periodSeconds": 2,
                        "timeoutSeconds": 2,
                        "failureThreshold": 90,
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", **http},
                        "periodSeconds": 5,
                        "timeoutSeconds": 2,
                        "failureThreshold": 2,
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/livez", **http},
                        "periodSeconds": 10,
                        "timeoutSeconds": 2,
                        "failureThreshold": 3,
                    },
                    "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_S}}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "privileged": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": EMPTYDIR_LIMIT}}],
        }
