#!/bin/bash
# Boot script of a modelops instance (Amazon Linux 2023): start Docker, log in to ECR with the instance role
# (IMDSv2 credentials), pull the bento image by digest and run it. stacks/aws/fleet.py renders this template:
# it replaces the settings marker below with shell-quoted assignments, then base64-encodes the result.
set -euo pipefail

#@settings@

dnf install -y docker
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

# Retry with backoff: the instance role's credentials, the NAT route and ECR can each lag a fresh boot by seconds,
# and under `set -e` a single failed login would end the boot with no container (the ASG would replace the
# instance, which fails the same way).
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
  echo "${what} failed 6 times: check the instance role, the NAT route and the ECR repository" >&2
  return 1
}

ecr_login() {
  aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY"
}

retry "ECR login" ecr_login
retry "docker pull ${IMAGE}" docker pull "$IMAGE"

# Read-only root, writable tmpfs for BentoML's home (Prometheus multiprocess files) and Python's temp files.
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
  "$IMAGE" --timeout-keep-alive "$KEEP_ALIVE"
