"""The rollback signals: CloudWatch alarms that promotion watches while it shifts traffic, and after, and the SNS
topic they (and the optional cost budget) notify.

Per colour (the TargetGroup dimension): the targets' 5xx ratio, p95 response time, unhealthy hosts and healthy hosts
below the declared minimum, so promotion can tell "the live version is unwell" (do not start a switch) from "the
candidate is unwell" (abort the switch). For the load balancer as a whole: its own 5xx (HTTPCode_ELB_5XX_Count exists
only per load balancer). Nine alarms with the two colours
(``alarm_count``): the ones promotion watches.

Instances join their target group only once /readyz answers (the launch lifecycle hook, stacks/aws/fleet.py), so a
boot does not count as unhealthy. The healthy-hosts alarm only means something for the colour taking traffic (an idle
colour has 0 hosts by design): its actions are enabled for the live colour only, and the driver moves them with the
traffic (shift to 100); Pulumi sets them at creation and leaves them to the driver after.

The watch (modelops:monitor, the same thresholds the local target's Prometheus rules use, stacks/alerting.py) reaches
CloudWatch where CloudWatch has the signal, for the load balancer as a whole and outside promotion's alarms (a
colour that takes no traffic during a switch is not a traffic drop): the targets' 4xx ratio against
``max_invalid_ratio``; p95 response time above and request count below CloudWatch's anomaly-detection band of
``anomaly_threshold`` standard deviations, held for ``anomaly_for_s`` (as consecutive 1-minute periods). What cannot
reach CloudWatch: the 422 ratio alone (the ALB counts 4xx, not 422), the 5xx and 4xx *anomaly* scores (the ratios'
thresholds cover them), the class mix and drift (the prediction log stays on the instances: no monitor reads it on
aws), and the median/IQR method itself (CloudWatch's band is its own model, trained on two weeks of the metric).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from stacks.config import StackConfig
from stacks.names import Colour

PERIOD_S = 60
EVALUATION_PERIODS = 3
DATAPOINTS_TO_ALARM = 2  # two bad minutes out of three: one noisy minute does not roll back a good release

# Keys of the ALARM_NAMES stack output (stacks/outputs.py): {"blue": {TARGET_5XX: name, P95_LATENCY: name,
# UNHEALTHY_HOSTS: name}, "green": {...}, LOAD_BALANCER: {ELB_5XX: name}}.
LOAD_BALANCER = "load_balancer"
TARGET_5XX = "target_5xx"
ELB_5XX = "elb_5xx"  # 502/503/504 the ALB itself answers (no healthy target, a target reset): invisible in TARGET_5XX
P95_LATENCY = "p95_latency"
UNHEALTHY_HOSTS = "unhealthy_hosts"
HEALTHY_HOSTS = "healthy_hosts"  # HealthyHostCount below deploy.min_replicas: meaningful for the live colour only
PER_COLOUR = (TARGET_5XX, P95_LATENCY, UNHEALTHY_HOSTS, HEALTHY_HOSTS)


def alarm_count(colours: int) -> int:
    """Alarms the stack makes: the per-colour ones, and the load balancer's own 5xx."""
    return colours * len(PER_COLOUR) + 1


# Keys of the WATCH_ALARM_NAMES stack output.
CLIENT_ERRORS = "client_errors"
P95_ANOMALY = "p95_anomaly"
TRAFFIC_DROP = "traffic_drop"


@dataclass(frozen=True)
class WatchThresholds:
    """modelops:monitor's thresholds that CloudWatch can evaluate."""

    max_invalid_ratio: float
    anomaly_threshold: float
    anomaly_for_s: int

    @classmethod
    def of(cls, settings: StackConfig) -> WatchThresholds:
        m = settings.monitor
        return cls(m.max_invalid_ratio, m.anomaly_threshold, m.anomaly_for_s)

    @property
    def periods(self) -> int:
        """A ``for:`` of N seconds as consecutive 1-minute periods: the first breaching one plus N seconds more."""
        return 1 + math.ceil(self.anomaly_for_s / PERIOD_S)


@dataclass(frozen=True)
class AlarmsArgs:
    load_balancer_arn_suffix: pulumi.Input[str]
    target_group_arn_suffixes: Mapping[Colour, pulumi.Input[str]]
    max_error_ratio: float  # slo.max_error_ratio, a fraction
    p95_ms: float  # slo.p95_ms
    account_id: pulumi.Input[str]
    min_healthy_hosts: int  # deploy.min_replicas: the live colour's floor
    live_colour: str  # whose healthy-hosts alarm acts at creation (the driver moves it with promotions)
    topic_key_arn: pulumi.Input[str]  # a KMS key CloudWatch and Budgets may use (SNS's AWS-managed key refuses them)
    alarm_email: str | None = None
    monthly_budget_usd: float | None = None
    watch: WatchThresholds | None = None


class _CommonAlarmArgs(TypedDict):
    """The keyword arguments every alarm shares (typed, so mypy checks them against MetricAlarm's)."""

    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str
    alarm_actions: Sequence[pulumi.Input[str]]
    ok_actions: Sequence[pulumi.Input[str]]


class Alarms(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        lb: dict[str, pulumi.Input[str]] = {"LoadBalancer": args.load_balancer_arn_suffix}
        self.topic = aws.sns.Topic(f"{name}-topic", kms_master_key_id=args.topic_key_arn, opts=child)
        # CloudWatch alarms and AWS Budgets publish as services: allowed for this account's resources only.
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=self.topic.arn,
            policy=pulumi.Output.all(self.topic.arn, args.account_id).apply(
                lambda v: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "AlarmsAndBudgetsPublish",
                                "Effect": "Allow",
                                "Principal": {"Service": ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]},
                                "Action": "sns:Publish",
                                "Resource": v[0],
                                "Condition": {"StringEquals": {"aws:SourceAccount": v[1]}},
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-email", topic=self.topic.arn, protocol="email", endpoint=args.alarm_email, opts=child
            )
        if args.monthly_budget_usd:
            aws.budgets.Budget(
                f"{name}-budget",
                budget_type="COST",
                limit_amount=f"{args.monthly_budget_usd:.2f}",
                limit_unit="USD",
                time_unit="MONTHLY",
                notifications=[
                    {
                        "comparison_operator": "GREATER_THAN",
                        "notification_type": kind,
                        "threshold": threshold,
                        "threshold_type": "PERCENTAGE",
                        "subscriber_sns_topic_arns": [self.topic.arn],
                    }
                    for kind, threshold in (("ACTUAL", 80), ("FORECASTED", 100))
                ],
                opts=child,
            )
        common: _CommonAlarmArgs = {
            "evaluation_periods": EVALUATION_PERIODS,
            "datapoints_to_alarm": DATAPOINTS_TO_ALARM,
            # No requests means no evidence either way; promotion judges load it generated itself.
            "treat_missing_data": "notBreaching",
            # Someone is told: a page when it fires, and when it clears.
            "alarm_actions": [self.topic.arn],
            "ok_actions": [self.topic.arn],
        }

        def metric(
            metric_id: str, metric_name: str, dimensions: Mapping[str, pulumi.Input[str]], stat: str = "Sum"
        ) -> aws.cloudwatch.MetricAlarmMetricQueryArgsDict:
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

        def error_ratio(
            suffix: str, errors_metric: str, who: str, dimensions: Mapping[str, pulumi.Input[str]]
        ) -> aws.cloudwatch.MetricAlarm:
            """5xx answered by ``who``, as a share of all requests, against the SLO's error ratio."""
            return aws.cloudwatch.MetricAlarm(
                f"{name}-{suffix}",
                alarm_description=f"share of requests answered 5xx by {who} exceeds the SLO error ratio",
                comparison_operator="GreaterThanThreshold",
                threshold=args.max_error_ratio * 100,
                metric_queries=[
                    metric("errors", errors_metric, dimensions),
                    metric("requests", "RequestCount", dimensions),
                    {
                        "id": "error_percent",
                        "label": f"5xx by {who}, % of requests",
                        "expression": "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)",
                        "return_data": True,
                    },
                ],
                opts=child,
                **common,
            )

        self.elb_5xx = error_ratio("elb-5xx", "HTTPCode_ELB_5XX_Count", "the load balancer itself", lb)
        self.names: dict[str, dict[str, pulumi.Output[str]]] = {LOAD_BALANCER: {ELB_5XX: self.elb_5xx.name}}
        for colour, suffix in args.target_group_arn_suffixes.items():
            pool = {**lb, "TargetGroup": suffix}
            target_5xx = error_ratio(f"{colour}-5xx", "HTTPCode_Target_5XX_Count", f"the {colour} targets", pool)
            p95 = aws.cloudwatch.MetricAlarm(
                f"{name}-{colour}-p95",
                alarm_description=f"p95 response time of the {colour} targets exceeds the SLO",
                comparison_operator="GreaterThanThreshold",
                threshold=args.p95_ms / 1000.0,  # TargetResponseTime is in seconds
                namespace="AWS/ApplicationELB",
                metric_name="TargetResponseTime",
                dimensions=pool,
                period=PERIOD_S,
                extended_statistic="p95",
                opts=child,
                **common,
            )
            unhealthy = aws.cloudwatch.MetricAlarm(
                f"{name}-{colour}-unhealthy",
                alarm_description=f"a {colour} target fails its /readyz health check",
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                namespace="AWS/ApplicationELB",
                metric_name="UnHealthyHostCount",
                dimensions=pool,
                period=PERIOD_S,
                statistic="Maximum",
                opts=child,
                **common,
            )
            healthy = aws.cloudwatch.MetricAlarm(
                f"{name}-{colour}-healthy",
                alarm_description=f"fewer healthy {colour} targets than deploy.min_replicas while {colour} is live",
                comparison_operator="LessThanThreshold",
                threshold=args.min_healthy_hosts,
                namespace="AWS/ApplicationELB",
                metric_name="HealthyHostCount",
                dimensions=pool,
                period=PERIOD_S,
                statistic="Minimum",
                actions_enabled=colour == args.live_colour,
                # The driver enables the live colour's actions and disables the others' at every full shift.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["actionsEnabled"]),
                **common,
            )
            self.names[colour] = {
                TARGET_5XX: target_5xx.name,
                P95_LATENCY: p95.name,
                UNHEALTHY_HOSTS: unhealthy.name,
                HEALTHY_HOSTS: healthy.name,
            }
        self.watch_names: dict[str, pulumi.Output[str]] = {}
        if args.watch is not None:
            self.watch_names = self._watch(name, args.watch, lb, metric, common, child)
        self.register_outputs({"names": self.names, "watch_names": self.watch_names})

    def _watch(self, name: str, watch: WatchThresholds, lb: Mapping[str, pulumi.Input[str]], metric,
               common: _CommonAlarmArgs, child: pulumi.ResourceOptions) -> dict[str, pulumi.Output[str]]:  # fmt: skip
        held = {**common, "evaluation_periods": watch.periods, "datapoints_to_alarm": watch.periods}
        client = aws.cloudwatch.MetricAlarm(
            f"{name}-4xx",
            alarm_description="share of requests the targets answered 4xx (invalid input: 400, 413, 415, 422 alike) "
            "exceeds modelops:monitor.max_invalid_ratio",
            comparison_operator="GreaterThanThreshold",
            threshold=watch.max_invalid_ratio * 100,
            metric_queries=[
                metric("errors", "HTTPCode_Target_4XX_Count", lb),
                metric("requests", "RequestCount", lb),
                {
                    "id": "client_error_percent",
                    "label": "4xx by the targets, % of requests",
                    "expression": "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)",
                    "return_data": True,
                },
            ],
            opts=child,
            **common,
        )

        def band(suffix: str, metric_name: str, stat: str, comparison: str, what: str) -> aws.cloudwatch.MetricAlarm:
            return aws.cloudwatch.MetricAlarm(
                f"{name}-{suffix}",
                alarm_description=f"{what} left CloudWatch's anomaly band of {watch.anomaly_threshold:g} sds for "
                f"{watch.anomaly_for_s} s (modelops:monitor.anomaly_threshold, anomaly_for_s)",
                comparison_operator=comparison,
                threshold_metric_id="band",
                metric_queries=[
                    {**metric("m1", metric_name, lb, stat=stat), "return_data": True},
                    {
                        "id": "band",
                        "label": f"{what}, expected",
                        "return_data": True,
                        "expression": f"ANOMALY_DETECTION_BAND(m1, {watch.anomaly_threshold:g})",
                    },
                ],
                opts=child,
                **held,
            )

        p95 = band("p95-anomaly", "TargetResponseTime", "p95", "GreaterThanUpperThreshold", "p95 response time")
        drop = band("traffic-drop", "RequestCount", "Sum", "LessThanLowerThreshold", "request count")
        return {CLIENT_ERRORS: client.name, P95_ANOMALY: p95.name, TRAFFIC_DROP: drop.name}
