#!/usr/bin/env bash
# `bentoml containerize` of a bento whose bentofile names a Dockerfile template (bento/Dockerfile.template): what
# both stacks' image scripts and the container tests run.
#
# Usage: stacks/container/containerize.sh BENTO IMAGE_TAG [more `bentoml containerize` options, e.g. --opt ...]
# Environment: BENTOML (the bentoml executable; default: the project's .venv, else PATH), BENTOML_HOME (absolute).
set -euo pipefail

bento=${1:?usage: containerize.sh BENTO IMAGE_TAG [options]}
image=${2:?usage: containerize.sh BENTO IMAGE_TAG [options]}
shift 2
project=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bentoml=${BENTOML:-bentoml}
if [[ -z "${BENTOML:-}" && -x "$project/.venv/bin/bentoml" ]]; then
  bentoml="$project/.venv/bin/bentoml"
fi

if [[ "$bentoml" == */* && "$bentoml" != /* ]]; then
  bentoml="$PWD/$bentoml"  # relative to the caller's directory, which is left below
fi

# BentoML 1.4 reads the template from its temporary build context only if that context lies under the working
# directory and no part of its path starts with a dot (resolve_user_filepath, secure mode); from anywhere else it
# fails with "Accessing file outside of current working directory". So: a fresh directory, as both.
work=$(mktemp -d "${TMPDIR:-/tmp}/modelops-containerize.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
TMPDIR="$work" "$bentoml" containerize "$bento" --image-tag "$image" "$@"
