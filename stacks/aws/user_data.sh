#!/bin/bash
# Boot script of a modelops instance (Amazon Linux 2023): start Docker, log in to ECR with the instance role
# (IMDSv2 credentials), pull the bento image by digest and run it. stacks/aws/fleet.py renders this template:
# it replaces the settings marker below with shell-quoted assignments, then base64-encodes the result.
set -euo pipefail

#@settings@

# Retry with backoff: the package mirror, the instance role's credentials, the network route and ECR can each lag a
# fresh boot by seconds, and under `set -e` a single failure would end the boot with no container (the ASG would
# replace the instance, which fails the same way).
retry() {
  local what=$1 attempt
  shift
  for attempt in 1 2 3 4 5 6; do
    if "$@"; then
      return 0
    fi
    echo "${what} failed (attempt ${attempt}/6), retrying in $((attempt * 5)) s" >&2
    sleep $((attempt * 5))
  done
  echo "${what} failed 6 times: check the instance role, the VPC endpoints/NAT route and the ECR repository" >&2
  return 1
}

retry "dnf install docker" dnf install -y docker
gpu_args=()
if [[ -n "$GPUS" ]]; then
  # The Deep Learning Base AMI ships the NVIDIA driver and container toolkit; Docker, started below, needs the
  # nvidia runtime in its configuration for `--gpus`.
  nvidia-ctk runtime configure --runtime=docker
  gpu_args=(--gpus "$GPUS")
fi
systemctl enable --now docker

imds_token=$(curl -fsS --retry 5 --retry-connrefused -X PUT http://169.254.169.254/latest/api/token \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
instance_id=$(curl -fsS --retry 5 --retry-connrefused -H "X-aws-ec2-metadata-token: ${imds_token}" \
  http://169.254.169.254/latest/meta-data/instance-id)

ecr_login() {
  aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY"
}

retry "ECR login" ecr_login
retry "docker pull ${IMAGE}" docker pull "$IMAGE"

# Read-only root, writable tmpfs for BentoML's home (Prometheus multiprocess files) and Python's temp files (the
# image points HOME and BENTOML_HOME there itself, and declares /tmp a volume; the tmpfs bounds its size).
# awslogs in non-blocking mode: a CloudWatch Logs hiccup fills a 4 MB buffer and drops lines, instead of blocking
# the service's stdout writes (and with them its requests).
docker run --detach --name bento --restart unless-stopped \
  --read-only --tmpfs /tmp:rw,nosuid,nodev,size=512m \
  --cap-drop ALL --security-opt no-new-privileges \
  --stop-timeout "$STOP_TIMEOUT" \
  "${gpu_args[@]}" \
  --publish "${PORT}:3000" \
  --env HOME=/tmp --env BENTOML_HOME=/tmp/bentoml --env BENTOML_DO_NOT_TRACK=true \
  --env PYTHONDONTWRITEBYTECODE=1 \
  --env "BENTOML_CONFIG_OVERRIDES=${BENTOML_CONFIG_OVERRIDES}" \
  --env "MODELOPS_MAX_BODY_BYTES=${MAX_BODY_BYTES}" \
  --env "OMP_NUM_THREADS=${OMP_NUM_THREADS}" --env "MKL_NUM_THREADS=${MKL_NUM_THREADS}" \
  --env "OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS}" --env "NUMEXPR_NUM_THREADS=${NUMEXPR_NUM_THREADS}" \
  --env "MODELOPS_CACHE_ENABLED=${MODELOPS_CACHE_ENABLED}" --env "MODELOPS_CACHE_MAX_ENTRIES=${MODELOPS_CACHE_MAX_ENTRIES}" \
  --env "MODELOPS_CACHE_TTL_S=${MODELOPS_CACHE_TTL_S}" \
  --log-driver awslogs --log-opt "awslogs-region=${REGION}" --log-opt "awslogs-group=${LOG_GROUP}" \
  --log-opt "awslogs-stream=${COLOUR}/${instance_id}" \
  --log-opt mode=non-blocking --log-opt max-buffer-size=4m \
  "$IMAGE" --timeout-keep-alive "$KEEP_ALIVE"

# The launch lifecycle hook (stacks/aws/fleet.py READY_HOOK) keeps this instance out of its target group until the
# bento answers /readyz here: CONTINUE puts it InService (the ALB registers it ready), ABANDON makes the group
# replace it. Which group: the instance's own, as Auto Scaling reports it.
group=$(retry "finding the Auto Scaling group" aws autoscaling describe-auto-scaling-instances --region "$REGION" \
  --instance-ids "$instance_id" --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)
complete_launch() {
  aws autoscaling complete-lifecycle-action --region "$REGION" --auto-scaling-group-name "$group" \
    --lifecycle-hook-name "$READY_HOOK" --instance-id "$instance_id" --lifecycle-action-result "$1"
}
ready=false
for ((waited = 0; waited < READY_TIMEOUT; waited += 2)); do
  if curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${PORT}/readyz"; then
    ready=true
    break
  fi
  sleep 2
done
if [[ $ready != true ]]; then
  echo "the bento did not answer /readyz within ${READY_TIMEOUT} s: abandoning this instance" >&2
  retry "abandoning the launch" complete_launch ABANDON
  exit 1
fi
retry "completing the launch" complete_launch CONTINUE
