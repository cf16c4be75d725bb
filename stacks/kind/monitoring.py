"""Monitoring on kind from the same thresholds as the local target: a ConfigMap holding the Prometheus
configuration, the rules file and the Alertmanager configuration (stacks/alerting.py, rendered from this stack's
modelops:slo and modelops:monitor), for a Prometheus and an Alertmanager the user runs in the cluster
(stacks/RUNNING.md says how to mount it). Prometheus sends alerts to the Service ``alertmanager`` of the namespace
(:data:`ALERTMANAGER`); Alertmanager routes pages and tickets to modelops:monitor.alert_webhook.

Not rendered: the drift monitor (modelops/monitor/watch.py). The replicas' prediction logs stay in their pods
(README, Known limits), so there is no log for a monitor to read; the DriftDetected and DriftDataStale rules stay
silent there until logs are shipped to a shared store.

The scrape configuration finds the model pods through the Kubernetes API (pods of this namespace carrying the
app's labels, on their ``http`` port) and gives each series the ``replica`` and ``colour`` labels the rules and
``modelops monitor`` expect, like the local target's static configuration (modelops/monitor/prometheus.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml

from stacks.alerting import JOB_REPLICAS, render_alertmanager, render_rules
from stacks.config import StackConfig
from stacks.names import APP_LABELS, COLOUR_LABEL

CONFIG_MAP = "modelops-prometheus"
CONFIG_FILE = "prometheus.yml"
RULES_FILE = "rules.yml"
ALERTMANAGER_FILE = "alertmanager.yml"
ALERTMANAGER = "alertmanager:9093"  # the Service the user's Alertmanager answers on, in this namespace
MOUNT_DIR = "/etc/prometheus/modelops"  # where RUNNING.md mounts the ConfigMap in the user's Prometheus


def _label(name: str) -> str:
    """A pod label as Prometheus' Kubernetes discovery names it."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in name)


def prometheus_config(settings: StackConfig, namespace: str) -> dict:
    interval = f"{settings.monitor.scrape_interval_s}s"
    keep = [{"source_labels": [_label(k)], "regex": v, "action": "keep"} for k, v in sorted(APP_LABELS.items())]
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [f"{MOUNT_DIR}/{RULES_FILE}"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER]}]}]},
        "scrape_configs": [
            {
                "job_name": JOB_REPLICAS,
                "metrics_path": "/metrics",
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
                "relabel_configs": [
                    *keep,
                    {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http", "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "replica"},
                    {"source_labels": [_label(COLOUR_LABEL)], "target_label": "colour"},
                ],
            }
        ],
    }


def config_files(settings: StackConfig, namespace: str) -> dict[str, str]:
    """The ConfigMap's files: the Prometheus configuration, the rules and Alertmanager's configuration, as YAML."""
    return {
        CONFIG_FILE: yaml.safe_dump(prometheus_config(settings, namespace), sort_keys=False),
        RULES_FILE: yaml.safe_dump(render_rules(settings), sort_keys=False),
        ALERTMANAGER_FILE: yaml.safe_dump(render_alertmanager(settings), sort_keys=False),
    }


@dataclass(frozen=True)
class MonitoringArgs:
    settings: StackConfig
    namespace: str


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:Monitoring", name, None, opts)
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_MAP, "namespace": args.namespace,
                      "labels": {**APP_LABELS, "app.kubernetes.io/component": "monitoring"}},
            data=config_files(args.settings, args.namespace),
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        self.register_outputs({})
