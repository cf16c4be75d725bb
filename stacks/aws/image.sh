#!/usr/bin/env bash
# Build the bento's container image and push it to ECR, once per bento version: the repository's tags are
# immutable and the tag is the bento version (a content-derived id), so a version already there is never rebuilt.
#
# Run by Pulumi (pulumi_command local.Command, see stacks/aws/registry.py) from the project root on the machine
# that runs `pulumi up`. Needs bentoml (the project's .venv), docker and the AWS CLI v2 with the same credentials.
# Environment: BENTO (a bento tag; empty = the newest bento in the store), REPOSITORY_URL, REGION, PLATFORM.
# Prints one JSON line on stdout: {"bento": ..., "service": ..., "image": "<repository>@sha256:..."}.
set -euo pipefail

: "${REPOSITORY_URL:?}" "${REGION:?}" "${PLATFORM:?}"
export BENTOML_HOME="${BENTOML_HOME:-$PWD/.work/bentoml}"
export BENTOML_DO_NOT_TRACK=true
python=python3
bentoml=bentoml
if [[ -x .venv/bin/python ]]; then
  python=.venv/bin/python
  bentoml=.venv/bin/bentoml
fi

resolved=$("$python" -m stacks.images resolve "${BENTO:-}")
read -r bento service <<<"$resolved"
version="${bento#*:}"
registry="${REPOSITORY_URL%%/*}"
repository="${REPOSITORY_URL#*/}"
image="${REPOSITORY_URL}:${version}"

pushed() {
  aws ecr describe-images --region "$REGION" --repository-name "$repository" \
    --image-ids "imageTag=${version}" >/dev/null 2>&1
}

if ! pushed; then
  # The bento's Dockerfile template (bento/Dockerfile.template): the small, read-only-safe image the tests run.
  BENTOML="$bentoml" stacks/container/containerize.sh "$bento" "$image" --opt "platform=${PLATFORM}" >&2
  aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$registry" >&2
  docker push "$image" >&2
fi
# Instances run the image by digest: what was scanned on push is exactly what runs.
digest=$(aws ecr describe-images --region "$REGION" --repository-name "$repository" \
  --image-ids "imageTag=${version}" --query 'imageDetails[0].imageDigest' --output text)
printf '{"bento": "%s", "service": "%s", "image": "%s@%s"}\n' "$bento" "$service" "$REPOSITORY_URL" "$digest"
