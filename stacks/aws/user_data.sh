#!/bin/bash
# Boot script of a modelops instance (Amazon Linux 2023): start Docker, log in to ECR with the instance role
# (IMDSv2 credentials), pull the bento image by digest and run it. stacks/aws/fleet.py renders this template:
# it replaces the settings marker below with shell-quoted assignments, then base64-encodes the result.
set -euo pipefail

#@settings@

dnf install -y docker
systemctl enable --now docker

imds_token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
instance_id=$(curl -fsS -H "X-aws-ec2-metadata-token: ${imds_token}" \
  http://169.254.169.254/latest/meta-data/instance-id)

aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY"
pulled=false
for attempt in 1 2 3 4 5; do
  if docker pull "$IMAGE"; then
    pulled=true
    break
  fi
  sleep $((attempt * 5))
done
if [[ "$pulled" != true ]]; then
  echo "could not pull ${IMAGE}: check the instance role and the NAT route" >&2
  exit 1
fi

# Read-only root, writable tmpfs for BentoML's home (Prometheus multiprocess files) and Python's temp files.
docker run --detach --name bento --restart unless-stopped \
  --read-only --tmpfs /tmp:rw,nosuid,nodev,size=512m \
  --cap-drop ALL --security-opt no-new-privileges \
  --stop-timeout "$STOP_TIMEOUT" \
  --publish "${PORT}:3000" \
  --env HOME=/tmp --env BENTOML_HOME=/tmp/bentoml --env BENTOML_DO_NOT_TRACK=true \
  --env PYTHONDONTWRITEBYTECODE=1 \
  --env "BENTOML_CONFIG_OVERRIDES=${BENTOML_CONFIG_OVERRIDES}" \
  --env "MODELOPS_MAX_BODY_BYTES=${MAX_BODY_BYTES}" \
  --log-driver awslogs --log-opt "awslogs-region=${REGION}" --log-opt "awslogs-group=${LOG_GROUP}" \
  --log-opt "awslogs-stream=${COLOUR}/${instance_id}" \
  "$IMAGE"
