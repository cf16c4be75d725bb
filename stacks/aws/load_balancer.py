"""The internet-facing ALB: blue and green target groups behind one weighted forward action, and optionally one
test listener per colour that reaches that colour alone, for the promotion gate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_aws as aws

from bento.prediction_log import SYNTHETIC_HEADER
from stacks.names import COLOURS, Colour

APP_PORT = 3000  # `bentoml serve` in a containerized bento listens here; instances publish it on the same port
HEALTH_PATH = "/readyz"  # BentoML answers 500 until the service is ready, so a loading replica gets no traffic
# TLS 1.3 with TLS 1.2 as the floor (AWS's recommended policy for new listeners).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
DRAIN_MARGIN_S = 5
# Fields of the live listener that modelops owns after creation: the forward weights and the tags holding the live
# and previous colour (modelops/targets/aws/driver.py LIVE_TAG, PREVIOUS_TAG).
LISTENER_DRIVER_OWNED = ["defaultActions[0].forward", "tags", "tagsAll"]


def deregistration_delay_s(p99_ms: float, request_timeout_s: float) -> int:
    """Seconds a deregistering target keeps serving the requests it already has.

    BentoML cuts every request off at the server-side timeout (traffic.timeout = limits.request_timeout_s), so no
    in-flight request outlives it; the p99 SLO bounds the usual case in case someone sets the timeout below it.
    A few seconds of margin cover the ALB's own bookkeeping. AWS's default of 300 s would make every blue/green
    switch and scale-in wait five minutes for requests that finished long ago.
    """
    return min(3600, math.ceil(max(request_timeout_s, p99_ms / 1000.0)) + DRAIN_MARGIN_S)


def weighted_forward(
    target_group_arns: Mapping[Colour, pulumi.Input[str]], live_colour: str
) -> aws.lb.ListenerDefaultActionArgsDict:
    """The listener action that splits traffic by weight: the live colour 100, the other 0."""
    return {
        "type": "forward",
        "forward": {
            "target_groups": [
                {"arn": arn, "weight": 100 if colour == live_colour else 0} for colour, arn in target_group_arns.items()
            ],
            # Stickiness off: a weight change must move new requests at once, not after a cookie expires.
            "stickiness": {"enabled": False, "duration": 1},
        },
    }


@dataclass(frozen=True)
class LoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    live_colour: str
    deregistration_delay_s: int
    idle_timeout_s: int
    deletion_protection: bool
    certificate_arn: str | None = None
    access_log_bucket: pulumi.Input[str] | None = None
    access_log_ready: pulumi.Resource | None = None  # the bucket policy the ALB must see before it is created
    test_cidrs: tuple[str, ...] = ()  # who may reach the per-colour test listeners; empty: no test listeners
    test_ports: Mapping[str, int] | None = None  # {"blue": port, "green": port} of the test listeners


SYNTHETIC_REFUSED = (
    '{"error": "X-Modelops-Synthetic is for the deployment\'s own load generators (the gate reaches the pools '
    'through the test listeners): send requests without it", "detail": []}'
)


def refuse_synthetic_marker(name: str, listener: aws.lb.Listener, opts: pulumi.ResourceOptions) -> aws.lb.ListenerRule:
    """A rule on the public listener answering 403 to any request that carries the synthetic-traffic marker.

    An ALB cannot delete a request header, so where HAProxy strips a forged marker (local target) the public
    listener refuses it instead: clients have no business sending it, and the gate's loads reach a pool through
    its test listener (CIDR-restricted), where the service itself checks the marker's secret
    (modelops/monitor/synthetic.py)."""
    return aws.lb.ListenerRule(
        f"{name}-no-synthetic",
        listener_arn=listener.arn,
        priority=1,  # before anything else on the listener
        conditions=[{"http_header": {"http_header_name": SYNTHETIC_HEADER, "values": ["*"]}}],
        actions=[
            {
                "type": "fixed-response",
                "fixed_response": {
                    "content_type": "application/json",
                    "status_code": "403",
                    "message_body": SYNTHETIC_REFUSED,
                },
            }
        ],
        opts=opts,
    )


def rule_suffix(cidr: str) -> str:
    """A CIDR block as part of a logical name: stable when the list is reordered, unlike an index."""
    return cidr.replace(".", "-").replace("/", "-")


class LoadBalancer(pulumi.ComponentResource):
    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        https = args.certificate_arn is not None

        # The ALB's group is the only one in the stack open to the internet, and only on the listener ports.
        self.alb_security_group = aws.ec2.SecurityGroup(
            f"{name}-alb", description="modelops ALB: HTTP(S) from the internet", vpc_id=args.vpc_id, opts=child
        )
        self.instance_security_group = aws.ec2.SecurityGroup(
            f"{name}-instances",
            description="modelops instances: the model port from the ALB only",
            vpc_id=args.vpc_id,
            opts=child,
        )
        for port in (80, 443) if https else (80,):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}",
                security_group_id=self.alb_security_group.id,
                description=f"HTTP{'S' if port == 443 else ''} from the internet",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4="0.0.0.0/0",
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-out-model",
            security_group_id=self.alb_security_group.id,
            description="to the model port of the instances",
            ip_protocol="tcp",
            from_port=APP_PORT,
            to_port=APP_PORT,
            referenced_security_group_id=self.instance_security_group.id,
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-instances-in-model",
            security_group_id=self.instance_security_group.id,
            description="model port from the ALB",
            ip_protocol="tcp",
            from_port=APP_PORT,
            to_port=APP_PORT,
            referenced_security_group_id=self.alb_security_group.id,
            opts=child,
        )
        # HTTPS only, through the NAT: ECR (API + S3 layers), SSM, CloudWatch Logs, the OS package mirror.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-instances-out-https",
            security_group_id=self.instance_security_group.id,
            description="HTTPS to AWS APIs, ECR and package mirrors via NAT",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4="0.0.0.0/0",
            opts=child,
        )

        access_logs: aws.lb.LoadBalancerAccessLogsArgsDict | None = (
            {"bucket": args.access_log_bucket, "enabled": True, "prefix": "alb"} if args.access_log_bucket else None
        )
        self.alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[self.alb_security_group.id],
            subnets=args.public_subnet_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=args.deletion_protection,
            idle_timeout=args.idle_timeout_s,
            access_logs=access_logs,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.access_log_ready] if args.access_log_ready else None
            ),
        )

        self.target_groups = {
            colour: aws.lb.TargetGroup(
                f"{name}-{colour}",
                vpc_id=args.vpc_id,
                port=APP_PORT,
                # TLS ends at the ALB; the instances sit in private subnets that only the ALB's group reaches.
                protocol="HTTP",
                target_type="instance",
                # Inference times vary with batch size: send new requests to the least busy replica.
                load_balancing_algorithm_type="least_outstanding_requests",
                deregistration_delay=args.deregistration_delay_s,
                health_check={
                    "enabled": True,
                    "path": HEALTH_PATH,
                    "matcher": "200",
                    "protocol": "HTTP",
                    "port": "traffic-port",
                    "interval": 10,
                    "timeout": 5,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 2,
                },
                tags={"modelops:colour": colour},
                opts=child,
            )
            for colour in COLOURS
        }
        forward = weighted_forward({c: tg.arn for c, tg in self.target_groups.items()}, args.live_colour)
        # One live listener, one logical name whether it serves HTTPS or HTTP: setting certificate_arn later changes
        # its port, protocol and certificate in place and keeps the weights promotion set. (Before, the name followed
        # the protocol, so a certificate made a new listener weighted from the stack file's live_colour.) Aliases
        # keep the listeners of stacks made with the old names.
        # Promotion (modelops, through the AWS API) owns the weights and the tags it keeps its state in (live and
        # previous colour) once the listener exists: `pulumi up`, also after a refresh, must not undo a promotion
        # or a rollback. live_colour therefore only decides the weights at creation.
        self.listener = aws.lb.Listener(
            f"{name}-live",
            load_balancer_arn=self.alb.arn,
            port=443 if https else 80,
            protocol="HTTPS" if https else "HTTP",
            ssl_policy=TLS_POLICY if https else None,
            certificate_arn=args.certificate_arn,
            default_actions=[forward],
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=LISTENER_DRIVER_OWNED,
                aliases=[pulumi.Alias(name=f"{name}-https" if https else f"{name}-http")],
            ),
        )
        if https:
            self.http_listener = aws.lb.Listener(
                f"{name}-redirect",
                load_balancer_arn=self.alb.arn,
                port=80,
                protocol="HTTP",
                default_actions=[
                    {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}
                ],
                # After the live listener: when a certificate is added, it moves off port 80 first.
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.listener], aliases=[pulumi.Alias(name=f"{name}-http")]
                ),
            )
            self.url = pulumi.Output.concat("https://", self.alb.dns_name)
        else:
            # No certificate configured (modelops:aws.certificate_arn): a listener cannot serve HTTPS without one,
            # and a self-signed certificate would only teach clients to skip verification. Plain HTTP lets a first
            # deployment be tried end to end; set certificate_arn before real traffic.
            pulumi.log.warn(
                "modelops:aws.certificate_arn is not set: the ALB serves plain HTTP on port 80. Set an ACM "
                "certificate ARN in stacks/Pulumi.aws.yaml to serve HTTPS (TLS >= 1.2) with an HTTP->HTTPS redirect."
            )
            self.http_listener = self.listener
            self.url = pulumi.Output.concat("http://", self.alb.dns_name)

        self.synthetic_refusal = refuse_synthetic_marker(name, self.listener, child)

        self.test_listeners: dict[str, aws.lb.Listener] = {}
        self.pool_urls: dict[str, pulumi.Output[str]] = {}
        if args.test_cidrs and args.test_ports:
            self._test_listeners(name, args, https)
        else:
            pulumi.log.info(
                "modelops:aws.test_cidrs is empty: no per-colour test listeners, so a candidate pool has no URL of "
                "its own and `modelops gate --stack aws` needs --url. List the gate machine's address(es) in "
                "test_cidrs to get one listener per colour (pool_urls output)."
            )

        self.register_outputs(
            {
                "url": self.url,
                "pool_urls": self.pool_urls,
                "listener_arn": self.listener.arn,
                "target_group_arns": {c: tg.arn for c, tg in self.target_groups.items()},
            }
        )

    def _test_listeners(self, name: str, args: LoadBalancerArgs, https: bool) -> None:
        """One listener per colour forwarding to that colour's target group only, so the gate can load a candidate
        while the live listener gives it no traffic. A candidate has not passed the gate: these ports admit the
        listed CIDR blocks only, never the internet."""
        child = pulumi.ResourceOptions(parent=self)
        scheme = "https://" if https else "http://"
        # ColourPorts.model_dump(): its keys are the colours, which the stack config's schema guarantees.
        ports = cast("Mapping[Colour, int]", args.test_ports or {})
        for colour, port in ports.items():
            for cidr in args.test_cidrs:
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-alb-in-test-{colour}-{rule_suffix(cidr)}",
                    security_group_id=self.alb_security_group.id,
                    description=f"{colour} pool test listener, from the promotion gate addresses (test_cidrs)",
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=cidr,
                    opts=child,
                )
            self.test_listeners[colour] = aws.lb.Listener(
                f"{name}-test-{colour}",
                load_balancer_arn=self.alb.arn,
                port=port,
                protocol="HTTPS" if https else "HTTP",
                ssl_policy=TLS_POLICY if https else None,
                certificate_arn=args.certificate_arn,
                default_actions=[{"type": "forward", "target_group_arn": self.target_groups[colour].arn}],
                opts=child,
            )
            self.pool_urls[colour] = pulumi.Output.concat(scheme, self.alb.dns_name, f":{port}")
