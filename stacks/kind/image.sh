#!/usr/bin/env bash
# Build the bento's container image and load it into the kind cluster's node.
#
# Run by Pulumi (pulumi_command local.Command, see stacks/kind/image.py) from the project root on the machine that
# runs `pulumi up`. Needs bentoml (the project's .venv), docker and kind. `bentoml containerize` tags the image
# <bento name>:<bento version>, and the version is content-derived: a new bento is a new tag, the same bento is
# never rebuilt. Environment: BENTO (a bento tag; empty = the newest bento in the store), CLUSTER.
# Prints one JSON line on stdout: {"bento": ..., "service": ..., "image": ...}.
set -euo pipefail

: "${CLUSTER:?}"
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

if ! docker image inspect "$bento" >/dev/null 2>&1; then
  # The bento's Dockerfile template (bento/Dockerfile.template): the small, read-only-safe image the tests run.
  BENTOML="$bentoml" stacks/container/containerize.sh "$bento" "$bento" >&2
fi
# The node has no registry to pull from: the Deployments use imagePullPolicy IfNotPresent on this loaded image.
# Through an archive, not `kind load docker-image`: with Docker >= 29's containerd image store that fails with
# "content digest ... not found" (kind#3795, kind#4066); `docker save` + `kind load image-archive` works on both.
archive=$(mktemp "${TMPDIR:-/tmp}/modelops-image.XXXXXX.tar")
trap 'rm -f "$archive"' EXIT
docker save "$bento" -o "$archive"
kind load image-archive "$archive" --name "$CLUSTER" >&2
printf '{"bento": "%s", "service": "%s", "image": "%s"}\n' "$bento" "$service" "$bento"
