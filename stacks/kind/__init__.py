"""The kind target: a local Kubernetes cluster (made by kind, or an existing one), the bento image loaded into it,
metrics-server, and the blue/green model service. ``build(settings)`` makes it all."""

from __future__ import annotations

from typing import Any

import pulumi

from stacks import images, outputs
from stacks.capacity import HPA_TARGET_CPU, capacity_plan_value
from stacks.config import StackConfig
from stacks.kind.cluster import Cluster, ClusterArgs
from stacks.kind.image import KindImage, KindImageArgs
from stacks.kind.metrics_server import MetricsServer, MetricsServerArgs
from stacks.kind.model_service import ModelService, ModelServiceArgs


def hpa_cpu_target(settings: StackConfig) -> int:
    """HPA CPU utilization target (%): the gate's capacity plan when it left one, else the stack setting."""
    planned = capacity_plan_value(settings.kind.capacity_summary, HPA_TARGET_CPU)
    if planned is None:
        pulumi.log.info(
            f"no capacity plan in {settings.kind.capacity_summary}: the HPAs use "
            f"modelops:kind.hpa_cpu_target = {settings.kind.hpa_cpu_target}%"
        )
        return settings.kind.hpa_cpu_target
    target = round(planned)
    if not 10 <= target <= 100:
        raise ValueError(
            f"{settings.kind.capacity_summary}: capacity_plan.{HPA_TARGET_CPU} = {planned} is outside 10..100 (%): "
            "rerun the gate"
        )
    pulumi.log.info(f"the HPAs use the gate's capacity plan: {target}% CPU")
    return target


def build(settings: StackConfig) -> dict[str, Any]:
    """Every Kubernetes object of the stack; returns the stack outputs keyed by the names in stacks/outputs.py."""
    cfg = settings.kind
    cluster = Cluster("kind", ClusterArgs(cfg))
    # Every Kubernetes object goes through this provider, never the ambient kubeconfig's current context.
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
    image = KindImage("kind-image", KindImageArgs(settings.bento, cfg.cluster_name, cluster.create))
    if cfg.install_metrics_server:
        MetricsServer("metrics-server", MetricsServerArgs(), opts=on_cluster)
    overrides = image.service.apply(
        lambda service: images.bentoml_overrides(service, settings.deploy.workers, settings.limits.request_timeout_s)
    )
    service = ModelService(
        "model",
        ModelServiceArgs(
            namespace=cfg.namespace,
            image=image.image,
            bentoml_overrides=overrides,
            max_body_bytes=settings.limits.max_body_bytes,
            cpu=settings.deploy.cpu_per_replica,
            memory_mb=settings.deploy.memory_mb,
            request_timeout_s=settings.limits.request_timeout_s,
            node_port=cfg.node_port,
            pool_node_ports=cfg.pool_node_ports.model_dump(),
            live_colour=cfg.live_colour,
            hpa_min_replicas=cfg.hpa_min_replicas,
            hpa_max_replicas=cfg.hpa_max_replicas,
            hpa_cpu_target=hpa_cpu_target(settings),
        ),
        opts=on_cluster,
    )
    return {
        outputs.ENDPOINT_URL: f"http://127.0.0.1:{cfg.host_port}",
        # Each colour's own NodePort Service, mapped by kind to a host port: the candidate pool alone, from here.
        outputs.POOL_URLS: {c: f"http://127.0.0.1:{port}" for c, port in cfg.pool_host_ports.model_dump().items()},
        outputs.LIVE_COLOUR: cfg.live_colour,
        outputs.IMAGE: image.image,
        outputs.BENTO: image.bento,
        outputs.KUBE_CONTEXT: cluster.context,
        outputs.NAMESPACE: service.namespace.metadata.name,
        outputs.SERVICE_NAME: service.service.metadata.name,
        outputs.DEPLOYMENT_NAMES: {c: d.metadata.name for c, d in service.deployments.items()},
        outputs.HPA_NAMES: {c: h.metadata.name for c, h in service.hpas.items()},
    }
