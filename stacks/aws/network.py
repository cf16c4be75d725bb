"""The VPC: public subnets for the load balancer, private subnets for the instances, NAT, flow logs."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_aws as aws

from stacks.config import subnet_prefix


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    az_count: int
    nat_per_az: bool
    flow_log_retention_days: int
    flow_log_key_arn: pulumi.Input[str]
    region: str  # names the endpoints' services
    account_id: pulumi.Input[str] = ""  # the flow-log role trusts the service for this account only
    partition: pulumi.Input[str] = "aws"
    interface_endpoints: bool = True  # ECR, Logs, SSM, Auto Scaling reachable without the NAT gateway


# AWS services an instance talks to while it boots and serves (stacks/aws/user_data.sh): ECR (login, manifests),
# CloudWatch Logs (awslogs), SSM (Session Manager, Run Command: the agent's three endpoints), Auto Scaling (the
# launch lifecycle hook). Through interface endpoints they need neither the NAT gateway nor the internet.
INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "logs", "ssm", "ssmmessages", "ec2messages", "autoscaling")


def s3_endpoint_policy(region: str) -> str:
    """What the instances may read through the S3 gateway endpoint: ECR's image layers, Amazon Linux 2023's package
    repositories (dnf) and the SSM agent's own updates. Nothing else in S3, and no writes: a compromised instance
    cannot copy data out through the endpoint to a bucket of its choosing."""
    buckets = [
        f"prod-{region}-starport-layer-bucket",  # ECR layers (ECR's documented VPC endpoint policy)
        f"al2023-repos-{region}-de612dc2",  # Amazon Linux 2023 repositories
        f"amazon-ssm-{region}",
        f"aws-ssm-{region}",
    ]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadWhatInstancesBootFrom",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": [f"arn:aws:s3:::{bucket}/*" for bucket in buckets],
                }
            ],
        }
    )


def subnet_cidrs(cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """(public, private) CIDR blocks, one of each per AZ, carved from ``cidr`` in equal sizes."""
    blocks = list(ipaddress.IPv4Network(cidr).subnets(new_prefix=subnet_prefix(cidr, az_count)))
    return [str(b) for b in blocks[:az_count]], [str(b) for b in blocks[az_count : 2 * az_count]]


def pick_zone(names: list[str], index: int, wanted: int) -> str:
    if len(names) < wanted:
        raise ValueError(
            f"the region has {len(names)} available AZs ({', '.join(names)}), modelops:aws.az_count asks for "
            f"{wanted}: lower az_count in the stack file"
        )
    return names[index]


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        public_cidrs, private_cidrs = subnet_cidrs(args.cidr, args.az_count)

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"modelops-{name}"},
            opts=child,
        )
        # Take every rule off the default security group, so nothing that lands in it by accident can talk.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=self.vpc.id, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=child)

        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=self.vpc.id, opts=child)
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )

        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        private_route_tables: list[aws.ec2.RouteTable] = []
        nats: list[aws.ec2.NatGateway] = []
        for i in range(args.az_count):
            zone = zones.names.apply(partial(pick_zone, index=i, wanted=args.az_count))
            # No public IPs on launch even in public subnets: only the ALB (and the NAT's EIP) live there.
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=self.vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"modelops-public-{i}", "tier": "public"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=self.vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"modelops-private-{i}", "tier": "private"},
                opts=child,
            )
            self.public_subnets.append(public)
            self.private_subnets.append(private)
            # One NAT is cheaper; one per AZ keeps the instances of the other AZs online when an AZ fails.
            if args.nat_per_az or i == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", opts=child)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )
            private_rt = aws.ec2.RouteTable(f"{name}-private-{i}", vpc_id=self.vpc.id, opts=child)
            private_route_tables.append(private_rt)
            aws.ec2.Route(
                f"{name}-private-{i}-default",
                route_table_id=private_rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nats[-1].id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=private.id, route_table_id=private_rt.id, opts=child
            )

        # ECR keeps image layers in S3: through a gateway endpoint (free) every pull of the bento image stays off the
        # NAT gateway, which bills each GB it processes.
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_route_tables],
            policy=s3_endpoint_policy(args.region),
            opts=child,
        )
        self.interface_endpoints: list[aws.ec2.VpcEndpoint] = []
        if args.interface_endpoints:
            endpoints_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints",
                description="modelops VPC interface endpoints: HTTPS from inside the VPC",
                vpc_id=self.vpc.id,
                opts=child,
            )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-endpoints-in-https",
                security_group_id=endpoints_sg.id,
                description="HTTPS to AWS service endpoints from the VPC",
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4=args.cidr,
                opts=child,
            )
            for service in INTERFACE_SERVICES:
                self.interface_endpoints.append(
                    aws.ec2.VpcEndpoint(
                        f"{name}-{service.replace('.', '-')}",
                        vpc_id=self.vpc.id,
                        service_name=f"com.amazonaws.{args.region}.{service}",
                        vpc_endpoint_type="Interface",
                        subnet_ids=[s.id for s in self.private_subnets],
                        security_group_ids=[endpoints_sg.id],
                        # The service's usual name resolves to the endpoint inside the VPC: nothing on the
                        # instances needs to know the endpoints exist.
                        private_dns_enabled=True,
                        opts=child,
                    )
                )
        self.flow_logs = FlowLogs(
            f"{name}-flow",
            FlowLogsArgs(
                vpc_id=self.vpc.id,
                retention_days=args.flow_log_retention_days,
                key_arn=args.flow_log_key_arn,
                account_id=args.account_id,
                partition=args.partition,
                region=args.region,
            ),
            opts=child,
        )
        self.vpc_id = self.vpc.id
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.register_outputs(
            {"vpc_id": self.vpc.id, "public": self.public_subnet_ids, "private": self.private_subnet_ids}
        )


@dataclass(frozen=True)
class FlowLogsArgs:
    vpc_id: pulumi.Input[str]
    retention_days: int
    key_arn: pulumi.Input[str]
    account_id: pulumi.Input[str] = ""
    partition: pulumi.Input[str] = "aws"
    region: str = "us-east-1"


def flow_log_trust(account_id: str, partition: str, region: str) -> str:
    """The flow-log service may assume the role only for this account's flow logs (confused-deputy guard)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:{partition}:ec2:{region}:{account_id}:vpc-flow-log/*"},
                    },
                }
            ],
        }
    )


class FlowLogs(pulumi.ComponentResource):
    """Every accepted and rejected flow of the VPC, to a KMS-encrypted CloudWatch log group."""

    def __init__(self, name: str, args: FlowLogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:FlowLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", retention_in_days=args.retention_days, kms_key_id=args.key_arn, opts=child
        )
        role = aws.iam.Role(
            f"{name}-role",
            description="VPC flow logs delivery to CloudWatch Logs",
            assume_role_policy=pulumi.Output.all(args.account_id, args.partition).apply(
                lambda v: flow_log_trust(v[0], v[1], args.region)
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-deliver",
            role=role.id,
            policy=self.log_group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        self.flow_log = aws.ec2.FlowLog(
            f"{name}-log",
            vpc_id=args.vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            opts=child,
        )
        self.register_outputs({"log_group": self.log_group.name})
