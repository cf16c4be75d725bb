"""stacks/aws/load_balancer.py: internet-facing ALB, blue/green target groups, weighted forward, TLS, and the
per-colour test listeners the promotion gate loads a candidate through."""

from __future__ import annotations

import pytest

from bento.prediction_log import SYNTHETIC_HEADER
from stacks import outputs
from stacks.aws.load_balancer import APP_PORT, COLOURS, LISTENER_DRIVER_OWNED, TLS_POLICY, deregistration_delay_s
from stacks.names import LIVE_TAG, live_colour_from
from tests.stacks.aws.types import BUCKET, EGRESS, INGRESS, LB, LISTENER, LISTENER_RULE, SG, SUBNET, TG
from tests.stacks.conftest import TEST_CIDRS

AUTONAME_CHARS = 8  # Pulumi appends "-" and 7 random characters to a logical name
WORLD = "0.0.0.0/0"


def test_alb_is_internet_facing_in_the_public_subnets(aws_rendering) -> None:
    alb = aws_rendering.inputs(LB, "lb-alb")
    public = {s["id"] for s in aws_rendering.of_type(SUBNET) if s["inputs"]["tags"]["tier"] == "public"}
    assert alb["loadBalancerType"] == "application" and alb["internal"] is False
    assert set(alb["subnets"]) == public


def test_alb_drops_invalid_header_fields(aws_rendering) -> None:
    assert aws_rendering.inputs(LB, "lb-alb")["dropInvalidHeaderFields"] is True


def test_alb_deletion_protection_follows_the_setting(aws_rendering, aws_settings) -> None:
    assert aws_rendering.inputs(LB, "lb-alb")["enableDeletionProtection"] is aws_settings.aws.deletion_protection


def test_alb_writes_access_logs_to_the_stack_bucket(aws_rendering) -> None:
    bucket = aws_rendering.one(BUCKET, "lb-logs")["outputs"]["bucket"]
    logs = aws_rendering.inputs(LB, "lb-alb")["accessLogs"]
    assert logs == {**logs, "bucket": bucket, "enabled": True}


@pytest.mark.parametrize("rendering", ["aws_rendering", "aws_planned"])
def test_only_the_alb_security_group_is_open_to_the_world(request, rendering) -> None:
    stack = request.getfixturevalue(rendering)
    alb_sg = stack.one(SG, "lb-alb")["id"]
    open_rules = [r for r in stack.of_type(INGRESS) + stack.of_type(EGRESS) if r["inputs"].get("cidrIpv4") == WORLD]
    ingress = [r["inputs"] for r in open_rules if r["type"] == INGRESS]
    assert ingress and all(rule["securityGroupId"] == alb_sg for rule in ingress), ingress
    assert {rule["fromPort"] for rule in ingress} <= {80, 443}
    assert all(rule["fromPort"] == rule["toPort"] for rule in ingress)


def test_instances_accept_the_model_port_from_the_alb_only(aws_rendering) -> None:
    alb_sg = aws_rendering.one(SG, "lb-alb")["id"]
    instance_sg = aws_rendering.one(SG, "lb-instances")["id"]
    ingress = [r["inputs"] for r in aws_rendering.of_type(INGRESS) if r["inputs"]["securityGroupId"] == instance_sg]
    assert ingress == [{**ingress[0], "fromPort": APP_PORT, "toPort": APP_PORT, "referencedSecurityGroupId": alb_sg}]
    assert "cidrIpv4" not in ingress[0]


def test_every_security_group_rule_is_described(aws_rendering) -> None:
    for rule in aws_rendering.of_type(INGRESS) + aws_rendering.of_type(EGRESS):
        assert len(rule["inputs"].get("description", "")) > 10, rule["name"]


@pytest.mark.parametrize("colour", COLOURS)
def test_target_group_health_check_is_readyz_200(aws_rendering, colour) -> None:
    tg = aws_rendering.inputs(TG, f"lb-{colour}")
    check = tg["healthCheck"]
    assert check["path"] == "/readyz" and check["matcher"] == "200" and check["enabled"] is True
    assert tg["port"] == APP_PORT and tg["targetType"] == "instance"


@pytest.mark.parametrize("colour", COLOURS)
def test_deregistration_delay_is_sized_from_the_latency_slo(aws_rendering, aws_settings, colour) -> None:
    delay = aws_rendering.inputs(TG, f"lb-{colour}")["deregistrationDelay"]
    expected = deregistration_delay_s(aws_settings.slo.p99_ms, aws_settings.limits.request_timeout_s)
    assert delay == expected
    assert aws_settings.limits.request_timeout_s < delay < 300, "drains past the timeout, not AWS's 300 s default"


def test_deregistration_delay_covers_the_slower_of_timeout_and_p99() -> None:
    assert deregistration_delay_s(p99_ms=300, request_timeout_s=10) == 15
    assert deregistration_delay_s(p99_ms=20_000, request_timeout_s=10) == 25
    assert deregistration_delay_s(p99_ms=10, request_timeout_s=600) == 605


@pytest.mark.parametrize("rendering", ["aws_rendering", "aws_planned"])
def test_listener_forwards_by_weight_live_colour_100_other_0(request, aws_settings, rendering) -> None:
    stack = request.getfixturevalue(rendering)
    name = "lb-live"
    (action,) = stack.inputs(LISTENER, name)["defaultActions"]
    weights = {tg["arn"]: tg["weight"] for tg in action["forward"]["targetGroups"]}
    expected = {
        stack.one(TG, f"lb-{colour}")["outputs"]["arn"]: 100 if colour == aws_settings.aws.live_colour else 0
        for colour in COLOURS
    }
    assert action["type"] == "forward" and weights == expected
    assert action["forward"]["stickiness"]["enabled"] is False


def test_forward_weights_belong_to_promotion_after_creation(aws_rendering) -> None:
    assert aws_rendering.one(LISTENER, "lb-live")["ignore_changes"] == LISTENER_DRIVER_OWNED
    # The driver keeps the live and previous colour in the listener's tags: a refresh must not strip them.
    assert {"defaultActions[0].forward", "tags", "tagsAll"} <= set(LISTENER_DRIVER_OWNED)


def test_the_live_listener_has_one_logical_name_with_and_without_https(aws_rendering, aws_planned) -> None:
    """Setting certificate_arn after a promotion changes the live listener in place (weights kept); a listener named
    after its protocol was created anew, weighted from the stack file's live_colour (503s if that colour was
    retired)."""
    plain, https = aws_rendering.one(LISTENER, "lb-live"), aws_planned.one(LISTENER, "lb-live")
    assert (plain["inputs"]["port"], https["inputs"]["port"]) == (80, 443)
    assert plain["urn"].rsplit("::", 1)[1] == https["urn"].rsplit("::", 1)[1] == "lb-live"


def test_the_live_colour_output_comes_from_the_listener_not_the_stack_file(aws_rendering) -> None:
    lookups = [i for i in aws_rendering.record["invokes"] if i["token"] == "aws:lb/getListener:getListener"]
    assert [i["args"]["arn"] for i in lookups] == [aws_rendering.one(LISTENER, "lb-live")["outputs"]["arn"]]
    # Under mocks the listener has no tags yet (as after a first `pulumi up`): the stack file's colour.
    assert aws_rendering.outputs[outputs.LIVE_COLOUR] == "blue"
    assert live_colour_from({LIVE_TAG: "green"}, "blue") == "green"
    assert live_colour_from({LIVE_TAG: "purple"}, "blue") == "blue"


def test_without_certificate_plain_http_is_the_only_listener_and_warned(aws_rendering, aws_settings) -> None:
    assert aws_settings.aws.certificate_arn is None
    listeners = aws_rendering.of_type(LISTENER)
    assert [(listener["inputs"]["port"], listener["inputs"]["protocol"]) for listener in listeners] == [(80, "HTTP")]
    assert any("certificate_arn is not set" in w for w in aws_rendering.warnings()), aws_rendering.warnings()
    assert aws_rendering.outputs["endpoint_url"].startswith("http://")


def test_with_certificate_https_requires_tls12_and_http_redirects(aws_planned) -> None:
    https = aws_planned.inputs(LISTENER, "lb-live")
    assert (https["port"], https["protocol"], https["sslPolicy"]) == (443, "HTTPS", TLS_POLICY)
    assert "TLS13-1-2" in TLS_POLICY, "the policy's floor must be TLS 1.2"
    assert https["certificateArn"].startswith("arn:aws:acm:")
    (redirect,) = aws_planned.inputs(LISTENER, "lb-redirect")["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}
    assert not aws_planned.warnings()
    assert aws_planned.outputs["endpoint_url"].startswith("https://")


@pytest.mark.parametrize("type_", [LB, TG])
def test_load_balancer_and_target_group_names_fit_the_32_character_limit(aws_rendering, type_) -> None:
    for resource in aws_rendering.of_type(type_):
        assert len(resource["name"]) + AUTONAME_CHARS <= 32, resource["name"]


# ------------------------------------------------------------------------------------ per-colour test listeners
with_test_listeners = pytest.mark.parametrize("rendering", ["aws_test_listeners", "aws_planned"])


def test_without_test_cidrs_there_are_no_test_listeners_and_no_pool_urls(aws_rendering, aws_settings) -> None:
    assert aws_settings.aws.test_cidrs == []
    ports = set(aws_settings.aws.test_ports.ports())
    assert not [r for r in aws_rendering.of_type(LISTENER) if r["inputs"]["port"] in ports]
    assert not [r for r in aws_rendering.of_type(INGRESS) if r["inputs"]["fromPort"] in ports]
    assert aws_rendering.outputs[outputs.POOL_URLS] == {}
    infos = [m["message"] for m in aws_rendering.record["logs"] if m["severity"] == "info"]
    assert any("test_cidrs is empty" in m and "needs --url" in m for m in infos), infos


@with_test_listeners
@pytest.mark.parametrize("colour", COLOURS)
def test_test_listener_forwards_to_its_own_colour_only(request, aws_settings, rendering, colour) -> None:
    stack = request.getfixturevalue(rendering)
    listener = stack.inputs(LISTENER, f"lb-test-{colour}")
    (action,) = listener["defaultActions"]
    assert listener["port"] == getattr(aws_settings.aws.test_ports, colour)
    assert listener["loadBalancerArn"] == stack.one(LB, "lb-alb")["outputs"]["arn"]
    assert action == {"type": "forward", "targetGroupArn": stack.one(TG, f"lb-{colour}")["outputs"]["arn"]}


@with_test_listeners
@pytest.mark.parametrize("colour", COLOURS)
def test_test_listener_admits_the_test_cidrs_only_on_its_port(request, aws_settings, rendering, colour) -> None:
    stack = request.getfixturevalue(rendering)
    port = getattr(aws_settings.aws.test_ports, colour)
    rules = [r["inputs"] for r in stack.of_type(INGRESS) if r["inputs"]["fromPort"] == port]
    assert sorted(r["cidrIpv4"] for r in rules) == sorted(TEST_CIDRS)
    alb_sg = stack.one(SG, "lb-alb")["id"]
    assert all(r["securityGroupId"] == alb_sg and r["toPort"] == port and r["ipProtocol"] == "tcp" for r in rules)


def test_test_listeners_serve_https_with_the_certificate_and_http_without(aws_planned, aws_test_listeners) -> None:
    for colour in COLOURS:
        https = aws_planned.inputs(LISTENER, f"lb-test-{colour}")
        assert (https["protocol"], https["sslPolicy"]) == ("HTTPS", TLS_POLICY)
        assert https["certificateArn"] == aws_planned.inputs(LISTENER, "lb-live")["certificateArn"]
        plain = aws_test_listeners.inputs(LISTENER, f"lb-test-{colour}")
        assert plain["protocol"] == "HTTP" and "certificateArn" not in plain and "sslPolicy" not in plain


@with_test_listeners
def test_pool_urls_name_each_colour_s_test_listener(request, aws_settings, rendering) -> None:
    stack = request.getfixturevalue(rendering)
    dns = stack.one(LB, "lb-alb")["outputs"]["dnsName"]
    scheme = "https" if rendering == "aws_planned" else "http"
    assert stack.outputs[outputs.POOL_URLS] == {
        colour: f"{scheme}://{dns}:{getattr(aws_settings.aws.test_ports, colour)}" for colour in COLOURS
    }


@pytest.mark.parametrize("rendering", ["aws_rendering", "aws_planned"])  # plain HTTP and HTTPS
def test_the_public_listener_refuses_the_synthetic_marker_and_the_test_listeners_do_not(request, rendering) -> None:
    listener = "lb-live"  # one logical name with and without HTTPS
    stack = request.getfixturevalue(rendering)
    (rule,) = stack.of_type(LISTENER_RULE)
    inputs = rule["inputs"]
    assert inputs["listenerArn"] == stack.one(LISTENER, listener)["outputs"]["arn"], "on the clients' listener"
    assert inputs["priority"] == 1
    assert inputs["conditions"] == [{"httpHeader": {"httpHeaderName": SYNTHETIC_HEADER, "values": ["*"]}}]
    (action,) = inputs["actions"]
    assert action["type"] == "fixed-response" and action["fixedResponse"]["statusCode"] == "403"
    assert len(action["fixedResponse"]["messageBody"]) <= 1024, "the ALB's limit for a fixed response body"
