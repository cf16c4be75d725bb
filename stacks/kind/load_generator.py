# mypy: disable-error-code="call-overload"
# The manifests come from stacks/locust.py with the Kubernetes API's own camelCase keys, which pulumi-kubernetes
# passes through unchanged; its typed dicts only know the snake_case spelling (as in model_service.py).
"""Locust in the cluster, beside the model service (kind.load_generator.enabled): the locustfile and its helpers
in a ConfigMap, a Service through which workers reach the master, the workers' Deployment (at zero replicas: the
gate scales it for each load) and a NetworkPolicy. The master is a Job the gate creates per load
(`modelops gate --stack kind --generator cluster`, modelops/gate/cluster.py); its manifest comes from the same
module, stacks/locust.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from stacks import locust
from stacks.config import LoadGeneratorSettings
from stacks.names import PROJECT_ROOT

LOADTESTS = PROJECT_ROOT / "loadtests"


def locust_files(folder: Path = LOADTESTS) -> dict[str, str]:
    """The files the generator pods run, as the ConfigMap's data (a new locustfile rolls out with `pulumi up`)."""
    return {name: (folder / name).read_text() for name in locust.LOCUST_FILES}


@dataclass(frozen=True)
class LoadGeneratorArgs:
    namespace: str
    settings: LoadGeneratorSettings


class LoadGenerator(pulumi.ComponentResource):
    def __init__(self, name: str, args: LoadGeneratorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:LoadGenerator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace

        def body(manifest: dict) -> dict:
            return {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}

        self.files = k8s.core.v1.ConfigMap(
            f"{name}-files", **body(locust.files_configmap(ns, locust_files())), opts=child
        )
        self.master_service = k8s.core.v1.Service(f"{name}-master", **body(locust.master_service(ns)), opts=child)
        self.workers = k8s.apps.v1.Deployment(
            f"{name}-workers",
            **body(locust.worker_deployment(ns, args.settings)),
            # The gate owns the replica count: workers run during a load only.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.files], ignore_changes=["spec.replicas"]),
        )
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", **body(locust.network_policy(ns)), opts=child)
        self.register_outputs({"workers": self.workers.metadata.name})
