"""The in-cluster load generator's Kubernetes objects, as plain manifests, in one Pulumi-free module.

The kind stack renders the long-lived ones (stacks/kind/load_generator.py: the locustfile ConfigMap, the master
Service, the worker Deployment at zero replicas, a NetworkPolicy); the gate creates the short-lived ones for each
load (modelops/gate/cluster.py: the run's files ConfigMap and the master Job) from the same functions, and scales
the workers up for the load and back to zero after it. Both read the names, labels and ports here.

Why a Job per load, not one long-lived master: each load has its own users, rate, shape and duration, and Locust
takes them on the master's command line. The workers need none of it: the master sends them the run's options.
"""

from __future__ import annotations

import re
from typing import Any

from stacks.config import LoadGeneratorSettings
from stacks.names import CONTAINER_PORT, SERVICE_PORT, cpu_quantity, deployment_name

GENERATOR = "locust"
LABELS = {"app.kubernetes.io/name": GENERATOR, "app.kubernetes.io/part-of": "modelops"}
MASTER_LABELS = {**LABELS, "app.kubernetes.io/component": "master"}
WORKER_LABELS = {**LABELS, "app.kubernetes.io/component": "worker"}
MASTER_SERVICE = "locust-master"
WORKERS = "locust-worker"
FILES_CONFIGMAP = "locust-files"  # the locustfile, its shapes and payload builder, the master's wrapper
RUN_CONFIGMAP = "locust-run"  # one load's own files (payloads, golden rows), replaced by the gate for each load
MASTER_PORT = 5557  # Locust's master bind port
FILES_DIR = "/mnt/locust"
RUN_DIR = "/mnt/run"
OUT_DIR = "/out"  # the master's CSV, HTML, JSON, meta file and log (an emptyDir), sent back in its log
LOCUST_FILES = ("locustfile.py", "shapes.py", "payloads.py", "cluster_master.py")
RUN_AS = 10_001  # any unprivileged uid: the Locust image's files are world-readable, and nothing is written there
JOB_TTL_S = 3600  # finished master Jobs (and their pods' logs) stay an hour for people to look at
EMPTYDIR_LIMIT = "256Mi"


def candidate_url(colour: str, namespace: str) -> str:
    """The colour's own Service, as pods in the cluster reach it (the pool URLs the stack exports are host ports)."""
    return f"http://{deployment_name(colour)}.{namespace}.svc.cluster.local:{SERVICE_PORT}"


def job_name(prefix: str, started: float) -> str:
    """A DNS-1123 name for one load's master Job: locust-<load>-<time>."""
    base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40] or "load"
    return f"{GENERATOR}-{base}-{int(started) % 10**8}"


def _security(context: str) -> dict[str, Any]:
    if context == "pod":
        return {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(
    name: str, settings: LoadGeneratorSettings, command: list[str], cpu: float, env: dict[str, str]
) -> dict[str, Any]:
    resources = {"cpu": cpu_quantity(cpu), "memory": f"{settings.memory_mb}Mi"}
    return {
        "name": name,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            *({"name": k, "value": v} for k, v in sorted(env.items())),
        ],
        # Requests = limits: a generator pod's CPU is known, so its saturation reads the same on every node.
        "resources": {"requests": resources, "limits": resources},
        "securityContext": _security("container"),
        "volumeMounts": [
            {"name": "files", "mountPath": FILES_DIR, "readOnly": True},
            {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _pod(labels: dict[str, str], container: dict, extra_volumes: list[dict], restart: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "restartPolicy": restart,
            "securityContext": _security("pod"),
            "containers": [container],
            "volumes": [
                {"name": "files", "configMap": {"name": FILES_CONFIGMAP}},
                # Optional: a load without payload or golden files runs without the gate having made one.
                {"name": "run", "configMap": {"name": RUN_CONFIGMAP, "optional": True}},
                {"name": "tmp", "emptyDir": {"sizeLimit": EMPTYDIR_LIMIT}},
                *extra_volumes,
            ],
        },
    }


def _skips(*reasons: str) -> dict[str, str]:
    return {f"checkov.io/skip{i}": reason for i, reason in enumerate(reasons, start=1)}


IMAGE_SKIPS = (
    "CKV_K8S_15=the Locust image is loaded into the kind node (stacks/RUNNING.md) and named by version: "
    "IfNotPresent, so a node without registry access still starts it",
    "CKV_K8S_43=the image is configurable (kind.load_generator.image); the default tag is the project's pinned "
    "Locust version, and a digest of it cannot be resolved offline: set name@sha256 to pin one",
)
PROBE_SKIPS = (
    "CKV_K8S_8=a Locust worker serves nothing to probe: it connects out to the master, and a worker that dies "
    "ends its container",
    "CKV_K8S_9=a Locust worker receives no traffic, so there is nothing to be ready for; the master counts the "
    "workers that connected (--expect-workers)",
)


def files_configmap(namespace: str, files: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": FILES_CONFIGMAP, "namespace": namespace, "labels": LABELS},
        "data": dict(files),
    }


def run_configmap(namespace: str, files: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": RUN_CONFIGMAP, "namespace": namespace, "labels": LABELS},
        "data": dict(files),
    }


def master_service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": MASTER_SERVICE, "namespace": namespace, "labels": MASTER_LABELS},
        "spec": {
            "type": "ClusterIP",
            "selector": MASTER_LABELS,
            "ports": [{"name": "master", "port": MASTER_PORT, "targetPort": MASTER_PORT, "protocol": "TCP"}],
        },
    }


def worker_deployment(namespace: str, settings: LoadGeneratorSettings) -> dict[str, Any]:
    """Workers at zero replicas: the gate scales them to ``settings.workers`` for a load and back after it (a worker
    exits when its master quits; restarted in place, it would back off longer after every load)."""
    command = ["locust", "-f", f"{FILES_DIR}/locustfile.py", "--worker", "--master-host", MASTER_SERVICE,
               "--master-port", str(MASTER_PORT)]  # fmt: skip
    container = _container("worker", settings, command, settings.cpu_per_worker, {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": WORKERS,
            "namespace": namespace,
            "labels": WORKER_LABELS,
            "annotations": _skips(*IMAGE_SKIPS, *PROBE_SKIPS),
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": WORKER_LABELS},
            "revisionHistoryLimit": 2,
            "template": _pod(WORKER_LABELS, container, [], "Always"),
        },
    }


def network_policy(namespace: str) -> dict[str, Any]:
    """Generator pods talk to each other on the master port, to the model pods and to DNS; nothing reaches them
    from outside."""
    model_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "bento"}}}
    generator = {"podSelector": {"matchLabels": LABELS}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": GENERATOR, "namespace": namespace, "labels": LABELS},
        "spec": {
            "podSelector": {"matchLabels": LABELS},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [generator], "ports": [{"port": MASTER_PORT, "protocol": "TCP"}]}],
            "egress": [
                {"to": [generator], "ports": [{"port": MASTER_PORT, "protocol": "TCP"}]},
                {"to": [model_pods], "ports": [{"port": CONTAINER_PORT, "protocol": "TCP"}]},
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                },
            ],
        },
    }


def master_job(
    namespace: str,
    name: str,
    settings: LoadGeneratorSettings,
    locust_args: list[str],
    env: dict[str, str],
    deadline_s: float,
) -> dict[str, Any]:
    """One load's master: `locust --master --expect-workers N --headless ...` through loadtests/cluster_master.py,
    which prints the output folder to the log when Locust is done (the gate reads it back from there)."""
    command = ["python", f"{FILES_DIR}/cluster_master.py", "--out", OUT_DIR, "--", "-f", f"{FILES_DIR}/locustfile.py",
               "--master", "--master-bind-port", str(MASTER_PORT), "--expect-workers", str(settings.workers),
               "--expect-workers-max-wait", f"{settings.ready_timeout_s:g}", *locust_args]  # fmt: skip
    container = _container("master", settings, command, 1.0, env)
    container["ports"] = [{"name": "master", "containerPort": MASTER_PORT, "protocol": "TCP"}]
    container["volumeMounts"].append({"name": "out", "mountPath": OUT_DIR})
    out = {"name": "out", "emptyDir": {"sizeLimit": EMPTYDIR_LIMIT}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": MASTER_LABELS,
            "annotations": _skips(*IMAGE_SKIPS),
        },
        "spec": {
            "backoffLimit": 0,  # a load that failed is reported, not silently run again with other timings
            "activeDeadlineSeconds": int(deadline_s),
            "ttlSecondsAfterFinished": JOB_TTL_S,
            "template": _pod(MASTER_LABELS, container, [out], "Never"),
        },
    }
