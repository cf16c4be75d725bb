"""stacks/aws/alarms.py: the rollback signals promotion watches, exported by name."""

from __future__ import annotations

from stacks import outputs
from stacks.aws.alarms import P95_LATENCY, TARGET_5XX, UNHEALTHY_HOSTS
from tests.stacks.aws.types import ALARM, LB, TG


def alarm(rendering, key: str) -> dict:
    name = rendering.outputs[outputs.ALARM_NAMES][key]
    (found,) = [a for a in rendering.of_type(ALARM) if a["outputs"]["name"] == name]
    return found["inputs"]


def test_the_three_rollback_alarms_are_exported_by_name(aws_rendering) -> None:
    names = aws_rendering.outputs[outputs.ALARM_NAMES]
    assert set(names) == {TARGET_5XX, P95_LATENCY, UNHEALTHY_HOSTS}
    assert sorted(names.values()) == sorted(a["outputs"]["name"] for a in aws_rendering.of_type(ALARM))


def test_target_5xx_alarm_is_a_metric_math_ratio_against_the_slo(aws_rendering, aws_settings) -> None:
    five_xx = alarm(aws_rendering, TARGET_5XX)
    queries = {q["id"]: q for q in five_xx["metricQueries"]}
    alb = aws_rendering.one(LB, "lb-alb")["outputs"]["arnSuffix"]
    assert queries["errors"]["metric"]["metricName"] == "HTTPCode_Target_5XX_Count"
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
