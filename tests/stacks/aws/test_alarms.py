"""stacks/aws/alarms.py: the rollback signals promotion watches, exported by name."""

from __future__ import annotations

import json

import pytest

from stacks import outputs
from stacks.aws.alarms import ELB_5XX, P95_LATENCY, TARGET_5XX, UNHEALTHY_HOSTS
from tests.stacks.aws.types import ALARM, BUDGET, LB, SUBSCRIPTION, TG, TOPIC, TOPIC_POLICY


def alarm(rendering, key: str) -> dict:
    name = rendering.outputs[outputs.ALARM_NAMES][key]
    (found,) = [a for a in rendering.of_type(ALARM) if a["outputs"]["name"] == name]
    return found["inputs"]


def test_the_four_rollback_alarms_are_exported_by_name(aws_rendering) -> None:
    names = aws_rendering.outputs[outputs.ALARM_NAMES]
    assert set(names) == {TARGET_5XX, ELB_5XX, P95_LATENCY, UNHEALTHY_HOSTS}
    assert sorted(names.values()) == sorted(a["outputs"]["name"] for a in aws_rendering.of_type(ALARM))


@pytest.mark.parametrize(
    ("key", "metric"), [(TARGET_5XX, "HTTPCode_Target_5XX_Count"), (ELB_5XX, "HTTPCode_ELB_5XX_Count")]
)
def test_5xx_alarms_are_a_metric_math_ratio_against_the_slo(aws_rendering, aws_settings, key, metric) -> None:
    five_xx = alarm(aws_rendering, key)
    queries = {q["id"]: q for q in five_xx["metricQueries"]}
    alb = aws_rendering.one(LB, "lb-alb")["outputs"]["arnSuffix"]
    assert queries["errors"]["metric"]["metricName"] == metric
    assert queries["requests"]["metric"]["metricName"] == "RequestCount"
    assert all(queries[i]["metric"]["dimensions"] == {"LoadBalancer": alb} for i in ("errors", "requests"))
    (expression,) = [q for q in five_xx["metricQueries"] if q.get("returnData")]
    assert "errors" in expression["expression"] and "/ requests" in expression["expression"]
    assert five_xx["threshold"] == aws_settings.slo.max_error_ratio * 100


def test_p95_alarm_compares_target_response_time_with_the_slo(aws_rendering, aws_settings) -> None:
    p95 = alarm(aws_rendering, P95_LATENCY)
    assert (p95["metricName"], p95["extendedStatistic"]) == ("TargetResponseTime", "p95")
    assert p95["threshold"] == aws_settings.slo.p95_ms / 1000


def test_unhealthy_hosts_alarm_watches_both_target_groups(aws_rendering) -> None:
    unhealthy = alarm(aws_rendering, UNHEALTHY_HOSTS)
    watched = {
        q["metric"]["dimensions"]["TargetGroup"]
        for q in unhealthy["metricQueries"]
        if "metric" in q and q["metric"]["metricName"] == "UnHealthyHostCount"
    }
    assert watched == {tg["outputs"]["arnSuffix"] for tg in aws_rendering.of_type(TG)}
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
