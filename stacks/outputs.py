"""Names of the Pulumi stack outputs: shared by __main__.py (producer), the target drivers and the tests.

Read them back with ``pulumi stack output --json -s <stack>``; modelops accepts that JSON as ``--outputs FILE``.
"""

ENDPOINT_URL = "endpoint_url"  # what clients call: the ALB (aws) or the kind host port (kind)
IMAGE = "image"  # the bento's container image reference
LIVE_COLOUR = "live_colour"  # "blue" or "green": which pool the listener/Service sends traffic to
BENTO = "bento"  # the bento tag the image was built from
# {"blue": url, "green": url}: each pool alone, bypassing the live switch, reachable from the machine that runs the
# gate (kind: host ports; aws: the per-colour test listeners, {} when modelops:aws.test_cidrs is empty).
POOL_URLS = "pool_urls"
# {"min": n, "max": n}: each colour's autoscaling range as the stack declares it (aws: ASG MinSize/MaxSize; kind: HPA
# minReplicas/maxReplicas). A driver that pins it for a gate puts it back to this (Target.release_scaling).
SCALING_RANGE = "scaling_range"

# aws
LOAD_BALANCER_ARN = "load_balancer_arn"
LISTENER_ARN = "listener_arn"  # the listener whose weighted forward action switches blue/green
TARGET_GROUP_ARNS = "target_group_arns"  # {"blue": arn, "green": arn}
ASG_NAMES = "asg_names"  # {"blue": name, "green": name}
# {"blue": {"target_5xx", "p95_latency", "unhealthy_hosts": name}, "green": {...}, "load_balancer": {"elb_5xx": name}}
ALARM_NAMES = "alarm_names"
ALARM_TOPIC_ARN = "alarm_topic_arn"  # the SNS topic every alarm (and the optional budget) notifies
# Alarms that tell someone, not promotion: anomalies and data quality from modelops:monitor (stacks/aws/alarms.py).
WATCH_ALARM_NAMES = "watch_alarm_names"
REPOSITORY_URL = "repository_url"
# {"min_healthy_percentage", "max_healthy_percentage", "instance_warmup_s"}: how the driver's instance refreshes
# (resize) replace a pool's instances, from modelops:aws.instance_refresh_min_healthy and health_check_grace_s.
REFRESH_PREFERENCES = "refresh_preferences"

# kind / kubernetes
KUBE_CONTEXT = "kube_context"
NAMESPACE = "namespace"
SERVICE_NAME = "service_name"  # the Service whose selector picks the live colour
DEPLOYMENT_NAMES = "deployment_names"  # {"blue": name, "green": name}
HPA_NAMES = "hpa_names"  # {"blue": name, "green": name}
