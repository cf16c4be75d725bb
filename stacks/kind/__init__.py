"""The kind target: a local Kubernetes cluster (made by kind, or an existing one), the bento image loaded into it,
metrics-server, and the blue/green model service. ``build(settings)`` makes it all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from stacks import images, outputs
from stacks.cache import cache_env
from stacks.capacity import HPA_MIN_UTILIZATION, NoPlan, hpa_cpu_utilization, promoted_plan
from stacks.config import StackConfig
from stacks.kind.cluster import Cluster, ClusterArgs, docker_need
from stacks.kind.device_plugin import NvidiaDevicePlugin
from stacks.kind.image import KindImage, KindImageArgs
from stacks.kind.load_generator import LoadGenerator, LoadGeneratorArgs
from stacks.kind.metrics_server import MetricsServer, MetricsServerArgs
from stacks.kind.model_service import ModelService, ModelServiceArgs
from stacks.kind.monitoring import Monitoring, MonitoringArgs
from stacks.threads import thread_env

# The pods' in-flight gauge (BentoML's /metrics), served to the HPA by a custom-metrics adapter (prometheus-adapter).
IN_FLIGHT_METRIC = "bentoml_service_request_in_progress"


def hpa_cpu_target(settings: StackConfig, work_dir: Path | None = None) -> int:
    """HPA CPU utilization target (%): from the capacity plan of the promotion that made this stack's live version,
    else modelops:autoscale.target (and a warning that says why)."""
    default = round(settings.autoscale.target)
    plan = promoted_plan(settings.stack, settings.target, work_dir)
    if isinstance(plan, NoPlan):
        pulumi.log.warn(f"{plan.reason}: the HPAs use modelops:autoscale.target = {default}%")
        return default
    if plan.cpu_seconds_per_request is None or plan.rps_per_vcpu_at_slo is None:
        pulumi.log.warn(
            f"the capacity plan in {plan.summary} lacks cpu_seconds_per_request or rps_per_vcpu_at_slo (the gate "
            f"could not measure them): the HPAs use modelops:autoscale.target = {default}%"
        )
        return default
    exact = hpa_cpu_utilization(plan.cpu_seconds_per_request, plan.rps_per_vcpu_at_slo)
    target = round(exact)
    if target < HPA_MIN_UTILIZATION:
        pulumi.log.warn(
            f"the capacity plan in {plan.summary} gives an HPA CPU target of {exact:.2f}%, below what Kubernetes "
            f"accepts: the HPAs use {HPA_MIN_UTILIZATION}%"
        )
        return HPA_MIN_UTILIZATION
    pulumi.log.info(f"the HPAs use the capacity plan of the promotion of {plan.bento} ({plan.summary}): {target}% CPU")
    return target


def hpa_metric(settings: StackConfig, work_dir: Path | None = None) -> dict[str, Any]:
    """The HPAs' one metric, from modelops:autoscale: CPU utilization of the pods' request, or requests in flight per
    pod (a Pods metric: the cluster needs a custom-metrics adapter serving it, e.g. prometheus-adapter)."""
    if settings.autoscale.metric == "cpu":
        target = {"type": "Utilization", "averageUtilization": hpa_cpu_target(settings, work_dir)}
        return {"type": "Resource", "resource": {"name": "cpu", "target": target}}
    pulumi.log.warn(
        f"modelops:autoscale.metric is in_flight: the HPAs read the Pods metric {IN_FLIGHT_METRIC}, which only a "
        "custom-metrics adapter (prometheus-adapter) serves; without one they cannot scale (metric cpu needs only "
        "metrics-server)"
    )
    average = f"{round(settings.autoscale.target * 1000)}m"  # a Kubernetes quantity
    return {
        "type": "Pods",
        "pods": {"metric": {"name": IN_FLIGHT_METRIC}, "target": {"type": "AverageValue", "averageValue": average}},
    }


def build(settings: StackConfig) -> dict[str, Any]:
    """Every Kubernetes object of the stack; returns the stack outputs keyed by the names in stacks/outputs.py."""
    cfg = settings.kind
    cluster = Cluster("kind", ClusterArgs(cfg, docker_need(settings)))
    # Every Kubernetes object goes through this provider, never the ambient kubeconfig's current context.
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
    image = KindImage("kind-image", KindImageArgs(settings.bento, cfg.cluster_name, cluster.create))
    if cfg.install_nvidia_device_plugin:
        NvidiaDevicePlugin("nvidia-device-plugin", opts=on_cluster)
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
            hpa_min_replicas=settings.deploy.min_replicas,
            hpa_max_replicas=settings.deploy.max_replicas,
            hpa_metric=hpa_metric(settings),
            scale_up_window_s=round(settings.autoscale.scale_up_window_s),
            scale_down_window_s=round(settings.autoscale.scale_down_window_s),
            # Each worker's native thread pools (OpenMP, BLAS) sized to its share of the pod's CPU limit.
            serve_args=images.serve_args(settings.limits.request_timeout_s),
            gpus=settings.deploy.gpus_per_replica if settings.deploy.accelerator == "nvidia" else 0,
            gpu_node_selector=cfg.gpu_node_selector,
            thread_env=thread_env(settings.deploy.cpu_per_replica / settings.deploy.workers),
            cache_env=cache_env(settings.cache),
        ),
        opts=on_cluster,
    )
    # The Prometheus configuration and rules, from the same thresholds as the local target's (one source).
    Monitoring(
        "monitoring",
        MonitoringArgs(settings, cfg.namespace),
        opts=pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}, depends_on=[service.namespace]),
    )
    if cfg.load_generator.enabled:
        LoadGenerator(
            "locust",
            LoadGeneratorArgs(cfg.namespace, cfg.load_generator),
            opts=pulumi.ResourceOptions(providers={"kubernetes": cluster.provider}, depends_on=[service.namespace]),
        )
    return {
        outputs.ENDPOINT_URL: f"http://127.0.0.1:{cfg.host_port}",
        # Each colour's own NodePort Service, mapped by kind to a host port: the candidate pool alone, from here.
        outputs.POOL_URLS: {c: f"http://127.0.0.1:{port}" for c, port in cfg.pool_host_ports.model_dump().items()},
        outputs.LIVE_COLOUR: cfg.live_colour,
        outputs.SCALING_RANGE: {"min": settings.deploy.min_replicas, "max": settings.deploy.max_replicas},
        outputs.IMAGE: image.image,
        outputs.BENTO: image.bento,
        outputs.KUBE_CONTEXT: cluster.context,
        outputs.NAMESPACE: service.namespace.metadata.name,
        outputs.SERVICE_NAME: service.service.metadata.name,
        outputs.DEPLOYMENT_NAMES: {c: d.metadata.name for c, d in service.deployments.items()},
        outputs.HPA_NAMES: {c: h.metadata.name for c, h in service.hpas.items()},
    }
