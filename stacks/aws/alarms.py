"""The rollback signals: CloudWatch alarms that promotion watches while it shifts traffic, and after.

They watch the load balancer as a whole (and both target groups for health), so they describe whatever pools the
weighted listener currently sends traffic to: during a shift, a bad candidate shows up in them at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

PERIOD_S = 60
EVALUATION_PERIODS = 3
DATAPOINTS_TO_ALARM = 2  # two bad minutes out of three: one noisy minute does not roll back a good release

# Keys of the ALARM_NAMES stack output (stacks/outputs.py).
TARGET_5XX = "target_5xx"
P95_LATENCY = "p95_latency"
UNHEALTHY_HOSTS = "unhealthy_hosts"


@dataclass(frozen=True)
class AlarmsArgs:
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffixes: dict[str, pulumi.Input[str]]  # by colour
    max_error_ratio: float  # slo.max_error_ratio, a fraction
    p95_ms: float  # slo.p95_ms


class Alarms(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        lb = {"LoadBalancer": args.load_balancer_arn_suffix}
        common = {
            "evaluation_periods": EVALUATION_PERIODS,
            "datapoints_to_alarm": DATAPOINTS_TO_ALARM,
            # No requests means no evidence either way; promotion judges load it generated itself.
            "treat_missing_data": "notBreaching",
        }

        def metric(metric_id: str, metric_name: str, dimensions: dict, stat: str = "Sum") -> dict:
            return {
                "id": metric_id,
                "return_data": False,
                "metric": {
                    "namespace": "AWS/ApplicationELB",
                    "metric_name": metric_name,
                    "dimensions": dimensions,
                    "period": PERIOD_S,
                    "stat": stat,
                },
            }

        self.target_5xx = aws.cloudwatch.MetricAlarm(
            f"{name}-target-5xx",
            alarm_description="share of requests answered 5xx by the targets exceeds the SLO error ratio",
            comparison_operator="GreaterThanThreshold",
            threshold=args.max_error_ratio * 100,
            metric_queries=[
                metric("errors", "HTTPCode_Target_5XX_Count", lb),
                metric("requests", "RequestCount", lb),
                {
                    "id": "error_percent",
                    "label": "target 5xx, % of requests",
                    "expression": "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)",
                    "return_data": True,
                },
            ],
            opts=child,
            **common,
        )
        self.p95_latency = aws.cloudwatch.MetricAlarm(
            f"{name}-p95-latency",
            alarm_description="p95 target response time exceeds the SLO",
            comparison_operator="GreaterThanThreshold",
            threshold=args.p95_ms / 1000.0,  # TargetResponseTime is in seconds
            namespace="AWS/ApplicationELB",
            metric_name="TargetResponseTime",
            dimensions=lb,
            period=PERIOD_S,
            extended_statistic="p95",
            opts=child,
            **common,
        )
        health = [
            metric(f"unhealthy_{colour}", "UnHealthyHostCount", {**lb, "TargetGroup": suffix}, stat="Maximum")
            for colour, suffix in args.target_group_arn_suffixes.items()
        ]
        self.unhealthy_hosts = aws.cloudwatch.MetricAlarm(
            f"{name}-unhealthy-hosts",
            alarm_description="a target of either colour fails its /readyz health check",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            metric_queries=[
                *health,
                {
                    "id": "unhealthy",
                    "label": "unhealthy targets, worst colour",
                    "expression": f"MAX([{', '.join(m['id'] for m in health)}])",
                    "return_data": True,
                },
            ],
            opts=child,
            **common,
        )
        self.names = {
            TARGET_5XX: self.target_5xx.name,
            P95_LATENCY: self.p95_latency.name,
            UNHEALTHY_HOSTS: self.unhealthy_hosts.name,
        }
        self.register_outputs({"names": self.names})
