"""stacks/aws/alarms.py: the rollback signals promotion watches (per colour, and the balancer's own), exported by
name, and the topic they notify."""

from __future__ import annotations

import json

import pytest

from stacks import outputs
from stacks.aws.alarms import (
    CLIENT_ERRORS,
    ELB_5XX,
    HEALTHY_HOSTS,
    LOAD_BALANCER,
    P95_ANOMALY,
    P95_LATENCY,
    TARGET_5XX,
    TRAFFIC_DROP,
    UNHEALTHY_HOSTS,
    alarm_count,
)
from stacks.names import COLOURS
from tests.stacks.aws.types import ALARM, BUDGET, LB, SUBSCRIPTION, TG, TOPIC, TOPIC_POLICY


def alarm(rendering, group: str, key: str) -> dict:
    name = rendering.outputs[outputs.ALARM_NAMES][group][key]
    (found,) = [a for a in rendering.of_type(ALARM) if a["outputs"]["name"] == name]
    return found["inputs"]


def target_group(rendering, colour: str) -> str:
    return rendering.one(TG, f"lb-{colour}")["outputs"]["arnSuffix"]


def test_the_rollback_alarms_are_exported_by_colour_and_for_the_load_balancer(aws_rendering) -> None:
    names = aws_rendering.outputs[outputs.ALARM_NAMES]
    assert names[LOAD_BALANCER].keys() == {ELB_5XX}
    for colour in COLOURS:
        assert names[colour].keys() == {TARGET_5XX, P95_LATENCY, UNHEALTHY_HOSTS, HEALTHY_HOSTS}
    exported = [n for group in names.values() for n in group.values()]
    watch = list(aws_rendering.outputs[outputs.WATCH_ALARM_NAMES].values())
    assert sorted(exported + watch) == sorted(a["outputs"]["name"] for a in aws_rendering.of_type(ALARM))
    assert not set(exported) & set(watch), "promotion never reads the watch's alarms"
    assert len(exported) == alarm_count(len(COLOURS)) == 9


@pytest.mark.parametrize("colour", COLOURS)
def test_the_healthy_hosts_alarm_watches_the_floor_and_acts_for_the_live_colour_only(
    aws_rendering, aws_settings, colour
) -> None:
    found = alarm(aws_rendering, colour, HEALTHY_HOSTS)
    assert (found["metricName"], found["statistic"]) == ("HealthyHostCount", "Minimum")
    assert found["comparisonOperator"] == "LessThanThreshold"
    assert found["threshold"] == aws_settings.deploy.min_replicas
    assert found["actionsEnabled"] is (colour == aws_settings.aws.live_colour)
    name = aws_rendering.outputs[outputs.ALARM_NAMES][colour][HEALTHY_HOSTS]
    (resource,) = [a for a in aws_rendering.of_type(ALARM) if a["outputs"]["name"] == name]
    assert resource["ignore_changes"] == ["actionsEnabled"], "the driver moves the actions with the traffic"


def test_the_driver_reads_the_alarm_keys_the_stack_exports() -> None:
    from modelops.targets.aws import alarms as driver_side

    assert (driver_side.LOAD_BALANCER, driver_side.HEALTHY_HOSTS) == (LOAD_BALANCER, HEALTHY_HOSTS)


def ratio_dimensions(found: dict) -> list[dict]:
    queries = {q["id"]: q for q in found["metricQueries"]}
    return [queries[i]["metric"]["dimensions"] for i in ("errors", "requests")]


@pytest.mark.parametrize("colour", COLOURS)
def test_each_colour_s_5xx_alarm_is_its_own_targets_error_ratio_against_the_slo(aws_rendering, aws_settings, colour):
    five_xx = alarm(aws_rendering, colour, TARGET_5XX)
    alb = aws_rendering.one(LB, "lb-alb")["outputs"]["arnSuffix"]
    queries = {q["id"]: q for q in five_xx["metricQueries"]}
    assert queries["errors"]["metric"]["metricName"] == "HTTPCode_Target_5XX_Count"
    assert queries["requests"]["metric"]["metricName"] == "RequestCount"
    pool = {"LoadBalancer": alb, "TargetGroup": target_group(aws_rendering, colour)}
    assert ratio_dimensions(five_xx) == [pool, pool]
    (expression,) = [q for q in five_xx["metricQueries"] if q.get("returnData")]
    assert "errors" in expression["expression"] and "/ requests" in expression["expression"]
    assert five_xx["threshold"] == aws_settings.slo.max_error_ratio * 100


def test_the_load_balancer_s_own_5xx_are_watched_for_the_whole_balancer(aws_rendering, aws_settings) -> None:
    elb = alarm(aws_rendering, LOAD_BALANCER, ELB_5XX)
    alb = aws_rendering.one(LB, "lb-alb")["outputs"]["arnSuffix"]
    assert {q["id"]: q for q in elb["metricQueries"]}["errors"]["metric"]["metricName"] == "HTTPCode_ELB_5XX_Count"
    assert ratio_dimensions(elb) == [{"LoadBalancer": alb}, {"LoadBalancer": alb}]
    assert elb["threshold"] == aws_settings.slo.max_error_ratio * 100


@pytest.mark.parametrize("colour", COLOURS)
def test_each_colour_s_p95_alarm_compares_its_response_time_with_the_slo(aws_rendering, aws_settings, colour):
    p95 = alarm(aws_rendering, colour, P95_LATENCY)
    assert (p95["metricName"], p95["extendedStatistic"]) == ("TargetResponseTime", "p95")
    assert p95["dimensions"]["TargetGroup"] == target_group(aws_rendering, colour)
    assert p95["threshold"] == aws_settings.slo.p95_ms / 1000


@pytest.mark.parametrize("colour", COLOURS)
def test_each_colour_s_unhealthy_hosts_alarm_watches_its_target_group(aws_rendering, colour) -> None:
    unhealthy = alarm(aws_rendering, colour, UNHEALTHY_HOSTS)
    assert (unhealthy["metricName"], unhealthy["statistic"]) == ("UnHealthyHostCount", "Maximum")
    assert unhealthy["dimensions"]["TargetGroup"] == target_group(aws_rendering, colour)
    assert unhealthy["threshold"] == 1 and unhealthy["comparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_alarm_notifies_the_stack_s_topic_when_it_fires_and_clears(aws_rendering) -> None:
    (topic,) = aws_rendering.of_type(TOPIC)
    arn = topic["outputs"]["arn"]
    assert aws_rendering.outputs[outputs.ALARM_TOPIC_ARN] == arn
    for found in aws_rendering.of_type(ALARM):
        inputs = found["inputs"]
        assert inputs["alarmActions"] == [arn] and inputs["okActions"] == [arn], found["name"]


def test_only_cloudwatch_and_budgets_of_this_account_may_publish_to_the_topic(aws_rendering) -> None:
    (policy,) = aws_rendering.of_type(TOPIC_POLICY)
    (statement,) = json.loads(policy["inputs"]["policy"])["Statement"]
    assert statement["Principal"] == {"Service": ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]}
    assert statement["Action"] == "sns:Publish"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_the_shipped_stack_has_no_budget_and_no_subscription(aws_rendering) -> None:
    assert aws_rendering.of_type(BUDGET) == [] and aws_rendering.of_type(SUBSCRIPTION) == []


def test_a_monthly_budget_alerts_the_topic_at_80_percent_actual_and_100_percent_forecast(aws_planned) -> None:
    (budget,) = aws_planned.of_type(BUDGET)
    inputs = budget["inputs"]
    assert (inputs["budgetType"], inputs["limitAmount"], inputs["timeUnit"]) == ("COST", "250.00", "MONTHLY")
    arn = aws_planned.outputs[outputs.ALARM_TOPIC_ARN]
    alerts = {(n["notificationType"], n["threshold"]) for n in inputs["notifications"]}
    assert alerts == {("ACTUAL", 80), ("FORECASTED", 100)}
    assert all(n["subscriberSnsTopicArns"] == [arn] for n in inputs["notifications"])
    (subscription,) = aws_planned.of_type(SUBSCRIPTION)
    assert (subscription["inputs"]["protocol"], subscription["inputs"]["endpoint"]) == ("email", "oncall@example.com")


def watch_alarm(rendering, key: str) -> dict:
    name = rendering.outputs[outputs.WATCH_ALARM_NAMES][key]
    (found,) = [a for a in rendering.of_type(ALARM) if a["outputs"]["name"] == name]
    return found["inputs"]


def test_the_4xx_ratio_reaches_cloudwatch_with_the_monitors_invalid_input_threshold(aws_rendering, aws_settings):
    found = watch_alarm(aws_rendering, CLIENT_ERRORS)
    assert found["threshold"] == pytest.approx(aws_settings.monitor.max_invalid_ratio * 100)
    queries = {q["id"]: q for q in found["metricQueries"]}
    assert queries["errors"]["metric"]["metricName"] == "HTTPCode_Target_4XX_Count"
    assert "TargetGroup" not in queries["errors"]["metric"]["dimensions"], "the balancer as a whole"


@pytest.mark.parametrize(
    ("key", "metric", "comparison"),
    [(P95_ANOMALY, "TargetResponseTime", "GreaterThanUpperThreshold"),
     (TRAFFIC_DROP, "RequestCount", "LessThanLowerThreshold")],
)  # fmt: skip
def test_anomalies_use_cloudwatchs_band_at_the_monitors_threshold_held_for_its_duration(
    aws_rendering, aws_settings, key, metric, comparison
):
    found = watch_alarm(aws_rendering, key)
    m = aws_settings.monitor
    queries = {q["id"]: q for q in found["metricQueries"]}
    assert queries["m1"]["metric"]["metricName"] == metric
    assert queries["band"]["expression"] == f"ANOMALY_DETECTION_BAND(m1, {m.anomaly_threshold:g})"
    assert found["comparisonOperator"] == comparison and found["thresholdMetricId"] == "band"
    periods = 1 + -(-m.anomaly_for_s // 60)
    assert found["evaluationPeriods"] == found["datapointsToAlarm"] == periods
